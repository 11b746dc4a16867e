"""Durability helpers: data reaches the disk before the name that makes it visible."""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import stat
import tempfile
import uuid
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_SYNC_FILE_RANGE_WRITE = 2
# WAIT_BEFORE | WRITE | WAIT_AFTER: the range is on disk when the call returns.
_SYNC_FILE_RANGE_WAIT_ALL = 1 | 2 | 4
# A few MiB: large enough that the calls cost nothing, small enough that the fsync at the end
# of a file waits for little more than this.
WRITEBACK_STEP = 8 << 20


def fsync_dir(path: Path) -> None:
    """Makes a rename or unlink inside path durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(path: Path) -> None:
    """Flushes the whole filesystem holding path: cheaper than an fsync per extracted file."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


class EarlyWriteback:
    """Starts the disk writes of a file written front to back while it is still being written
    (sync_file_range(SYNC_FILE_RANGE_WRITE) every few MiB, as dpkg does before its fsyncs), so
    the fsync that ends it waits for the last few MiB instead of the whole file, and the disk
    works while the CPU does. Only an fsync makes the file durable; this only starts writes,
    and a filesystem without it just leaves them to the fsync.

    With drop_behind (for a file nobody reads soon, a layer of a pulled image, on a
    filesystem that refuses DirectWriter's O_DIRECT), each step's pages also leave the page
    cache once they are on disk (as `dd oflag=nocache` does), a step after their writes were
    started: the file then holds two steps of memory instead of its size. A
    pull of many GB does not push out of memory what the server is using, and the writes
    reuse the same few MiB of page cache: on a VM whose host takes back the guest's free
    memory (this one: 224 MB written into fresh page cache cost 0.65 CPU-s instead of 0.05),
    growing the page cache is what costs most. Waiting for those writes also keeps a fast
    stream from running ahead of a slow disk."""

    def __init__(self, fd: int, drop_behind: bool = False) -> None:
        self._fd = fd
        self._drop_behind = drop_behind
        self._dropped = 0  # bytes on disk and out of the page cache so far (drop_behind)
        self._started = 0  # bytes handed to the disk so far
        self._written = 0

    def wrote(self, length: int) -> None:
        self._written += length
        if self._written - self._started >= WRITEBACK_STEP:
            _start_writes(self._fd, self._started, self._written - self._started)
            if self._drop_behind and self._started > self._dropped:
                _drop_written(self._fd, self._dropped, self._started - self._dropped)
                self._dropped = self._started
            self._started = self._written


def _start_writes(fd: int, offset: int, length: int) -> None:
    # The ctypes call releases the GIL; it may wait while the device queue is full. Its result
    # is not looked at: where it fails (a pipe, a filesystem without it), the fsync does it all.
    _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _drop_written(fd: int, offset: int, length: int) -> None:
    """Waits for the writes of a range started earlier, then drops its clean pages. Where
    either cannot be done (a pipe), the pages stay: nothing is lost but memory."""
    _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WAIT_ALL)
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


# One O_DIRECT write: the write waits for the device, so it must be large for that wait to be
# paid rarely (this VM's disk: 1 MiB writes 0.70 GB/s, 4 MiB 2.0 GB/s).
DIRECT_BLOCK = 4 << 20
# What O_DIRECT asks of the buffer's address, the length and the offset of each write: the
# logical block size of the device (512 or 4096 bytes); a page satisfies both.
_DIRECT_ALIGN = mmap.PAGESIZE


class DirectWriter:
    """Writes a file front to back past the page cache (O_DIRECT), for a file nobody reads
    soon (a pulled layer): its bytes are gathered into one page-aligned block and written
    from there straight to the disk, so writing it neither grows the page cache nor copies
    into it. On a VM whose host takes back the guest's free memory, growing the page cache is
    what a big write costs most (224 MB into fresh page cache: 0.65 CPU-s; through O_DIRECT:
    0.04). The last, partial block is written through the page cache as usual.

    open() returns None where the filesystem refuses O_DIRECT (some FUSE ones; tmpfs before
    Linux 6.6) or fd is not a regular file: the caller writes as usual. close() writes the rest and gives the descriptor its flags back;
    only an fsync makes the file durable, as for any write."""

    def __init__(self, fd: int, flags: int) -> None:
        self._fd = fd
        self._flags = flags
        self._block = mmap.mmap(-1, DIRECT_BLOCK)
        self._view = memoryview(self._block)
        self._filled = 0

    @classmethod
    def open(cls, fd: int) -> DirectWriter | None:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None   # O_DIRECT on a pipe means something else (packets)
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
        except OSError:
            return None
        return cls(fd, flags)

    def write(self, data: memoryview) -> None:
        while data:
            n = min(len(data), DIRECT_BLOCK - self._filled)
            self._view[self._filled:self._filled + n] = data[:n]
            self._filled += n
            data = data[n:]
            if self._filled == DIRECT_BLOCK:
                self._write_block(DIRECT_BLOCK)

    def _write_block(self, length: int) -> None:
        written = os.write(self._fd, self._view[:length])
        if written != length:
            # A short write (the disk filling up) leaves the offset unaligned: the rest goes
            # through the page cache, where the next write reports the error if there is one.
            self._buffered()
            write_all(self._fd, self._view[written:length])
        self._filled = 0

    def _buffered(self) -> None:
        fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags)

    def close(self, write_rest: bool = True) -> None:
        """Writes what is gathered (unless a write failed before: write_rest=False)."""
        try:
            if not write_rest:
                return
            filled = self._filled
            aligned = filled - filled % _DIRECT_ALIGN
            if aligned:
                self._write_block(aligned)
            self._buffered()
            write_all(self._fd, self._view[aligned:filled])
        finally:
            self._view.release()
            self._block.close()


def write_durable_tmp(directory: Path, prefix: str, data: bytes, mode: int = 0o600) -> Path:
    """A new file in directory holding data, fsynced and closed, ready to be renamed into place.
    Nothing is left behind when writing fails."""
    fd, name = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        write_all(fd, memoryview(data))
        if mode != 0o600:  # mkstemp's own mode
            os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def replace_atomically(target: Path, data: bytes, mode: int = 0o600) -> None:
    """Writes target so that readers see the old file or the whole new one, never a part."""
    tmp = write_durable_tmp(target.parent, f".{target.name}.", data, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_tree(path: Path, tmp: Path) -> None:
    """Removes a directory so that a crash midway leaves only a leftover under tmp/.

    The rename is atomic: the tree leaves its visible place at once, and start-up empties tmp/.
    """
    doomed = tmp / f"delete-{path.name}-{uuid.uuid4().hex}"
    try:
        os.rename(path, doomed)
    except FileNotFoundError:
        return
    delete_tree(doomed, ignore_errors=True)


def empty_dir(path: Path) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            delete_tree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


def delete_tree(path: Path | str, *, ignore_errors: bool = False, dirs: bool = True) -> None:
    """shutil.rmtree without recursion: Python 3.11's recurses once per directory level, so a
    tree a RUN made deeper than the interpreter's recursion limit raised RecursionError (which
    ignore_errors does not catch) and stayed. With dirs=False only the non-directories go.

    Each directory is opened without following a symbolic link and emptied through that
    descriptor, so only what is inside it is removed; one descriptor is open at a time.
    """
    top = os.fspath(path)
    if os.path.islink(top):
        if ignore_errors:
            return
        raise OSError(f"cannot remove {top}: it is a symbolic link")
    stack: list[tuple[str, bool]] = [(top, False)]    # (directory, already emptied)
    while stack:
        current, emptied = stack.pop()
        try:
            if emptied:
                os.rmdir(current)
                continue
            if dirs:
                stack.append((current, True))
            stack.extend((os.path.join(current, name), False)
                         for name in _remove_entries(current, ignore_errors))
        except OSError:
            if not ignore_errors:
                raise


def _remove_entries(directory: str, ignore_errors: bool) -> list[str]:
    """Unlinks the non-directories of `directory`; returns the names of its subdirectories."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        subdirs = []
        with os.scandir(fd) as entries:
            found = list(entries)
        for entry in found:
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.name)
                else:
                    os.unlink(entry.name, dir_fd=fd)
            except OSError:
                if not ignore_errors:
                    raise
        return subdirs
    finally:
        os.close(fd)


def tree_size(top: Path | str, *, on_disk: bool = False) -> int:
    """Bytes of the files under `top`, each hard-linked file once, walked without recursion and
    without following links; entries that vanish meanwhile are skipped. `on_disk`: the blocks
    everything takes (directories too, what `du` counts) rather than the files' sizes."""
    total, seen = 0, set()
    stack = [os.fspath(top)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
                total += st.st_blocks * 512 if on_disk else 0
            elif (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512 if on_disk else st.st_size
    return total
