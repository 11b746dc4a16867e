"""Copying one file system entry's bytes and metadata, for COPY and ADD.

Regular files are copied through two descriptors: the source opened without touching its
access time, the new file created with its final permission bits, then only the metadata
updates still needed (each one is an inode change), xattrs and times set on the descriptor.
Large files are written on a second thread while the next chunk is read and hashed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import IO

from isula_build.store.fsutil import delete_tree, write_all
from isula_build.store.pipe import BackgroundWriter

CHUNK = 1 << 20


def lstat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def remove_entry(path: Path) -> None:
    """Removes a file, link or whole directory tree (links are not followed)."""
    if os.path.isdir(path) and not os.path.islink(path):
        delete_tree(path)
    else:
        os.unlink(path)


def write_new_file(fin: IO[bytes], target: Path) -> str:
    """Streams `fin` into a new file (0600) at `target`; returns the sha256 hex of the content."""
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _open_source(path: Path) -> int:
    """Opens a file to copy without touching its access time (reading a file whose atime is not
    newer than its mtime would otherwise cost an inode write per file)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOATIME)
    except PermissionError:
        return os.open(path, os.O_RDONLY)  # O_NOATIME needs the file's owner or CAP_FOWNER


def copy_regular(src: Path, target: Path, st: os.stat_result, mode: int, uid: int,
                 gid: int) -> str:
    """Copies the regular file `src` (lstat `st`) to a new file at `target` with its final mode,
    owner, xattrs and times; returns the sha256 hex of the content.

    Everything goes through the two open descriptors: no path is resolved again, and the new
    file gets only the metadata updates it needs (each one is an inode change).
    """
    fin = _open_source(src)
    try:
        digest = hashlib.sha256()
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o777)
        try:
            if st.st_size < CHUNK:
                while chunk := os.read(fin, CHUNK):
                    digest.update(chunk)
                    write_all(out, memoryview(chunk))
            else:
                _copy_large(fin, out, digest)
            made = os.fstat(out)
            if (made.st_uid, made.st_gid) != (uid, gid):
                os.fchown(out, uid, gid)
                made = os.fstat(out)  # a change of owner clears set-id bits
            if stat.S_IMODE(made.st_mode) != mode:
                os.fchmod(out, mode)
            copy_xattrs(fin, out)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(fin)
    return digest.hexdigest()


def _copy_large(fin: int, out: int, digest: "hashlib._Hash") -> None:
    """Copies fin to out in 1 MiB chunks, each written on a second thread while the next one is
    read and hashed (both release the GIL)."""
    with BackgroundWriter(out) as writer:
        while True:
            buffer = writer.free_buffer()
            n = os.readv(fin, [buffer])
            if not n:
                writer.give_back(buffer)
                return
            digest.update(memoryview(buffer)[:n])
            writer.write(buffer, n)


def set_xattr(path: Path | int, name: str, value: bytes) -> None:
    try:
        if isinstance(path, int):
            os.setxattr(path, name, value)
        else:
            os.setxattr(path, name, value, follow_symlinks=False)
    except OSError as exc:
        # Filesystems without xattr support (or a name space we may not write) lose the
        # attribute rather than failing the build, as docker's BestEffortXattrs does.
        if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP, errno.EINVAL):
            raise


def copy_xattrs(src: Path | int, target: Path | int) -> None:
    """Copies xattrs between paths (links not followed) or open descriptors."""
    nofollow = {} if isinstance(src, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(src, **nofollow)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "security.selinux")):
            continue  # overlay's own bookkeeping and host labels are not the file's content
        try:
            value = os.getxattr(src, name, **nofollow)
        except OSError:
            continue
        set_xattr(target, name, value)
