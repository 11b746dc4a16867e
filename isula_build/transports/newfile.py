"""A new file that appears at its path only complete, and of which a killed daemon leaves nothing.

`save -o FILE` and `build -o docker-archive:FILE` write gigabytes. A temporary with a name
(`.FILE.<random>.tmp`) renamed at the end would stay for ever when the daemon is killed while
writing it, so the file is made unnamed in the target's directory instead (O_TMPFILE: on the
same filesystem), written, fsynced, and given its name by linkat(AT_EMPTY_PATH) in one step,
complete and with the mode it was made with (0600, like `docker save -o`). A kill before that
leaves nothing: an inode without a name is freed with its last descriptor. linkat never
replaces, so a target made meanwhile gives the AlreadyExists an existing output gives.

The descriptor itself is linked, not /proc/self/fd/N (linking that fails with EXDEV in some
sandboxes). Linking a descriptor needs CAP_DAC_READ_SEARCH before Linux 6.10 (since then, the
credentials it was opened with); whether it is allowed is asked as the file is made, by linking
it to "." of its directory, which can only fail: EEXIST when allowed, ENOENT when not.

Where this cannot work (a filesystem without O_TMPFILE: NFS, CIFS, FUSE, vfat, older overlayfs;
or no right to link), the file gets a hidden name beside the target, kept in the in-flight
records that the daemon's next start removes (inflight.py), and is hard-linked into place (so an
existing target is still refused) before its hidden name goes; where there are no hard links
(vfat), it is renamed after a check that the target is still absent.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from isula_build.errors import AlreadyExists
from isula_build.store import inflight

_libc = ctypes.CDLL(None, use_errno=True)
_libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_int]
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
# open(O_TMPFILE) on a filesystem without it, or a kernel older than 3.11 (EISDIR).
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK}


def output_exists(path: Path) -> AlreadyExists:
    """The error for an output path that is taken (checked first, and again at the end)."""
    return AlreadyExists(f'output file already exist: "{path}", try to remove existing '
                         "tarball or rename output file")


class NewFile:
    """Open for writing at `fd`; commit() puts it at target, abort() or a failed commit leaves
    nothing. The target's directory must exist."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._record: inflight.Record | None = None
        fd = _open_unnamed(target.parent)
        if fd is None:
            fd, self._record = inflight.new_file(target)
        self.fd = fd
        self._done = False

    def commit(self) -> None:
        """Flushes the file to disk and gives it its name; AlreadyExists if the name is taken."""
        try:
            os.fsync(self.fd)
            if self._record is None:
                _link(self.fd, self.target)
            else:
                _move_into_place(self._record.path, self.target)
        except BaseException:
            self.abort()
            raise
        self._done = True
        os.close(self.fd)
        if self._record is not None:
            self._record.forget()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        os.close(self.fd)
        if self._record is not None:
            self._record.path.unlink(missing_ok=True)
            self._record.forget()


def _linkat(fd: int, dir_fd: int, name: bytes) -> int:
    """linkat(fd, "", dir_fd, name, AT_EMPTY_PATH); the errno, 0 on success."""
    if _libc.linkat(fd, b"", dir_fd, name, _AT_EMPTY_PATH) == 0:
        return 0
    return ctypes.get_errno()


def _open_unnamed(directory: Path) -> int | None:
    """An unnamed file in directory that may be linked there, or None where there cannot be."""
    try:
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in _NO_TMPFILE:
            return None
        raise
    try:
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            allowed = _linkat(fd, dir_fd, b".") == errno.EEXIST
        finally:
            os.close(dir_fd)
    except BaseException:
        os.close(fd)
        raise
    if allowed:
        return fd
    os.close(fd)
    return None


def _link(fd: int, target: Path) -> None:
    err = _linkat(fd, _AT_FDCWD, os.fsencode(target))
    if err == errno.EEXIST:
        raise output_exists(target)
    if err:
        raise OSError(err, os.strerror(err), str(target))


def _move_into_place(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise output_exists(target) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here: a rename, with a short race against a target made meanwhile.
        if os.path.lexists(target):
            raise output_exists(target) from None
        os.rename(tmp, target)
        return
    os.unlink(tmp)
