"""Extracting a layer tar into a directory that overlayfs can use as a lower dir.

The tar's whiteouts become overlay's: `.wh.NAME` a character device 0:0 named NAME, and
`.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory. Owners, modes, mtimes,
symlinks, hard links, xattrs and device nodes are kept. Every entry is checked again with
image/tarsafety.py's EntryChecker and written at the path it returns, so a file can never land
outside the directory, whatever the tar says: no entry is written through a symlink, symlinks
are made as they are (their targets are resolved inside the container, never here), and the
metadata of directories, set last, is set through descriptors reached without following links.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from pathlib import Path

from isula_build.errors import InvalidArgument
from isula_build.image.tarsafety import EntryChecker
from isula_build.store.fsutil import delete_tree
from isula_build.store.nofollow import open_dir_nofollow
from isula_build.store.space import SpaceMeter

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX_PREFIX = "SCHILY.xattr."
# overlayfs keeps its own bookkeeping in trusted.overlay.*; a tar must not forge it.
_FORBIDDEN_XATTR_PREFIX = "trusted.overlay."
_COPY_BUFFER = 1 << 20


def _remove_existing(path: Path, keep_dir: bool) -> None:
    """Clears the way for a new entry; an existing directory stays when the entry is one too."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        delete_tree(path)
    else:
        os.unlink(path)


def _set_xattrs(target: Path | int, member: tarfile.TarInfo, follow: bool) -> None:
    for key, value in member.pax_headers.items():
        if not key.startswith(_XATTR_PAX_PREFIX):
            continue
        name = key[len(_XATTR_PAX_PREFIX):]
        if name.startswith(_FORBIDDEN_XATTR_PREFIX):
            continue
        try:
            os.setxattr(target, name, value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise


def _set_metadata(target: Path | int, member: tarfile.TarInfo) -> None:
    """Metadata of the entry at `target`: the path of what was just made (a symlink's own owner
    and times), or a descriptor of a directory (see nofollow.py)."""
    # os functions refuse follow_symlinks=False with a descriptor, which names the entry anyway.
    follow = isinstance(target, int)
    # Order matters: chown clears set-id bits and file capabilities, so mode and xattrs follow it;
    # the mtime comes last because the other changes do not touch it but writes would.
    os.chown(target, member.uid, member.gid, follow_symlinks=follow)
    if not member.issym():
        os.chmod(target, member.mode & 0o7777)
    _set_xattrs(target, member, follow)
    os.utime(target, ns=(_mtime_ns(member),) * 2, follow_symlinks=follow)


def _mtime_ns(member: tarfile.TarInfo) -> int:
    """The entry's mtime in nanoseconds; a PAX mtime is read exactly (tarfile's float loses
    the last digits of one written to the nanosecond, as the build cache's tars are)."""
    text = member.pax_headers.get("mtime")
    if text:
        seconds, _, fraction = text.partition(".")
        if seconds.lstrip("-").isdigit() and (not fraction or fraction.isdigit()):
            nanos = int((fraction + "000000000")[:9])
            whole = int(seconds)
            return whole * 1_000_000_000 + (-nanos if seconds.startswith("-") else nanos)
    return int(member.mtime * 1e9)


def _ensure_parent(root: Path, rel: str) -> None:
    # Parents missing from the tar are made 0755 root-owned, as docker does. The checker has
    # already refused any path through a symlink, so makedirs cannot be led outside root.
    parent = os.path.dirname(rel)
    if parent:
        os.makedirs(root / parent, mode=0o755, exist_ok=True)


def _whiteout(root: Path, rel: str, member: tarfile.TarInfo) -> None:
    parent, _, base = rel.rpartition("/")
    if parent:
        os.makedirs(root / parent, mode=0o755, exist_ok=True)
    if base == OPAQUE_MARKER:
        os.setxattr(root / parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
        return
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return  # other aufs metadata (.wh..wh.plnk etc.) has no overlay meaning
    target_name = base[len(WHITEOUT_PREFIX):]
    if target_name in ("", ".", ".."):
        raise InvalidArgument(f'unsafe layer tar entry "{member.name}": invalid whiteout')
    target = root / parent / target_name
    _remove_existing(target, keep_dir=False)
    os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    os.chown(target, member.uid, member.gid, follow_symlinks=False)


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, _COPY_BUFFER)


def extract_layer(blob: Path, dest: Path, space: SpaceMeter | None = None) -> None:
    """Extracts the layer tar blob into dest, which must not exist yet; `space` is told the size
    of each file before it is written."""
    os.mkdir(dest, 0o755)
    checker = EntryChecker()
    directories: list[tuple[str, tarfile.TarInfo]] = []
    with tarfile.open(blob, "r:", encoding="utf-8", errors="surrogateescape") as tar:
        for member in tar:
            rel = checker.check(member.name, member.type, member.linkname)
            if rel.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
                _whiteout(dest, rel, member)
                continue
            path = dest / rel if rel else dest
            _ensure_parent(dest, rel)
            _remove_existing(path, keep_dir=member.isdir())
            if member.isdir():
                if not path.exists():
                    os.mkdir(path, 0o700)
                directories.append((rel, member))
                continue  # its metadata is set after its children are written
            if member.isreg():
                if space is not None:
                    space.wrote(member.size)
                _write_file(tar, member, path)
            elif member.issym():
                os.symlink(member.linkname, path)
            elif member.islnk():
                os.link(dest / checker.hardlink_target(member.linkname), path, follow_symlinks=False)
                continue  # a hard link shares its target's inode and metadata
            elif member.ischr() or member.isblk():
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            elif member.isfifo():
                os.mkfifo(path, 0o600)
            _set_metadata(path, member)
    for rel, member in reversed(directories):
        # A later entry may have replaced the directory or a parent with a symlink: never follow.
        with open_dir_nofollow(dest, rel) as fd:
            if fd is not None:
                _set_metadata(fd, member)
