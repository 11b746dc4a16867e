"""A build's work dir, `<data_root>/tmp/build-<build ID>`: made, discarded, and swept after a crash.

The work dir holds each stage's upper, work and merged dirs and layer tar, RUN bundles and the
throwaway mounts of COPY --from. Two costs of ext4 (without a journal) shape how it is made
and removed: ext4 passes over inodes freed in the last half minute one by one for every new
inode it allocates in that block group, so creating the 2,000 files of a COPY right where an
earlier build's tree was just deleted took ~0.8 ms each instead of ~25 µs.

- create_work_dir makes the dir as the top of a directory hierarchy (FS_TOPDIR_FL, chattr +T):
  the Orlov allocator then puts it in the block group with the fewest directories instead of
  next to its parent, and the build's files go with it.
- discard_work_dir does not make the client wait for thousands of unlinks: the tree is renamed
  into the store's tmp/ (emptied at every start-up) at once, its files are deleted on a thread
  right away and its directories RECENTLY_DELETED_SECONDS later; while they stand, the next
  build's tree goes to another group, and by the time they go their inodes are free to reuse.
- sweep_stale_builds removes what builds of a daemon that died left, mounts first.
"""

from __future__ import annotations

import array
import fcntl
import os
import threading
import time
import uuid
from pathlib import Path

from isula_build.builder.mounts import detach, mount_points
from isula_build.store.fsutil import delete_tree

WORK_PREFIX = "build-"
# The archives -o docker-daemon: and -o isulad: stage under <data_root>/tmp while docker or isula
# loads them (transports/docker_daemon.py, isulad.py); a killed daemon leaves them behind.
_ENGINE_ARCHIVE_PREFIXES = ("docker-daemon-", "isulad-")
# ext4 (no journal) passes over inodes freed this recently (30 s, 35 while not yet written back).
RECENTLY_DELETED_SECONDS = 35.0
# linux/fs.h: the inode flags ioctls and "top of directory hierarchy" (chattr +T)
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def create_work_dir(tmp_dir: Path, build_id: str) -> Path:
    """Makes `<tmp_dir>/build-<build_id>` (0700; tmp_dir too when missing) as the top of a
    directory hierarchy, and returns it. Filesystems without the flag get a plain directory."""
    tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = tmp_dir / f"{WORK_PREFIX}{build_id}"
    work.mkdir(mode=0o700)
    try:
        fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return work
    try:
        flags = array.array("l", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
        flags[0] |= _FS_TOPDIR_FL
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
    except OSError:
        pass  # not ext2/3/4 (tmpfs, overlay…): placement is only an optimization
    finally:
        os.close(fd)
    return work


def discard_work_dir(work: Path, trash: Path) -> None:
    """Removes the work dir: renamed into `trash` (the store's tmp/, emptied at start-up, so a
    crash midway leaves nothing for good) and deleted there on a thread of its own.

    A work dir with a mount still inside (an unmount failed) is removed here and now:
    sweep_stale_builds only looks for mounts under `<data_root>/tmp`.
    """
    prefix = str(work) + "/"
    if any(point.startswith(prefix) for point in mount_points()):
        delete_tree(work, ignore_errors=True)
        return
    doomed = trash / f"delete-{work.name}-{uuid.uuid4().hex}"
    try:
        os.rename(work, doomed)
    except FileNotFoundError:
        return
    except OSError:  # the store's tmp/ on another filesystem, say
        delete_tree(work, ignore_errors=True)
        return
    threading.Thread(target=_remove_in_two_passes, args=(doomed,), name=f"remove-{work.name}",
                     daemon=True).start()


def _remove_in_two_passes(tree: Path) -> None:
    """Removes everything but the directories at once (the space is back), the directories
    RECENTLY_DELETED_SECONDS later (see the module docstring)."""
    delete_tree(tree, ignore_errors=True, dirs=False)  # what fails gets another try below
    time.sleep(RECENTLY_DELETED_SECONDS)
    delete_tree(tree, ignore_errors=True)


def sweep_stale_builds(data_root: Path) -> list[Path]:
    """Unmounts and removes what builds of a daemon that died left under `<data_root>/tmp`.

    Call at daemon start-up, before serving builds. Returns the work dirs removed.
    """
    tmp = Path(data_root) / "tmp"
    if not tmp.is_dir():
        return []
    prefix = str(tmp) + "/"
    for target in sorted((m for m in mount_points() if m.startswith(prefix)), reverse=True):
        detach(Path(target))
    removed = []
    for entry in tmp.iterdir():
        if entry.name.startswith((WORK_PREFIX, *_ENGINE_ARCHIVE_PREFIXES)):
            if entry.is_dir() and not entry.is_symlink():
                delete_tree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
