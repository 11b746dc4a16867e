"""Gzip-compressed tarballs written and read as streams: nothing is extracted, and memory use
does not depend on the size of what passes through.

The writer hashes the compressed bytes as they leave, so the checksum the manifest records costs
no second pass; it also hashes every layer it stores and refuses one that is not what the
caller said it was. The reader walks a tarball member by member (gzip cannot seek) and hands
out one member as a stream.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Self

from isula_build.errors import InvalidArgument, NotFound
from isula_build.separated.layout import MEMBER_MTIME
from isula_build.store.fsutil import write_all
from isula_build.transports._tario import normalize_member

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # the buffer type io's stubs give readinto

CHUNK = 1 << 20
# gzip's own default: the original (Go's compress/gzip) uses it too; 9 costs twice the time
# for a few per cent.
COMPRESS_LEVEL = 6
_BLOCK = 512
# Reading a tarball fails in these ways when it is not a complete gzip-compressed tar.
_READ_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, tarfile.TarError)


class _HashingSink:
    """The file under the gzip stream: writes to a descriptor, hashing what it writes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.hash = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        self.hash.update(view)
        write_all(self._fd, view)
        return len(data)

    def flush(self) -> None:
        """gzip calls this; every write already went to the descriptor."""


class GzipTarWriter:
    """Writes a new gzip-compressed tar at path (which must not exist); finish() returns the
    sha256 hex of the file, abort() removes it."""

    def __init__(self, path: Path, cancel: Callable[[], None]) -> None:
        self.path = path
        self._cancel = cancel
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._sink = _HashingSink(self._fd)
        # mtime=0 and no file name in the gzip header: the same content gives the same bytes.
        self._gzip = gzip.GzipFile(fileobj=self._sink, mode="wb",
                                   compresslevel=COMPRESS_LEVEL, mtime=0)
        self._open = True

    @staticmethod
    def _header(name: str, size: int, kind: bytes) -> bytes:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
        info.mtime = MEMBER_MTIME
        return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._gzip.write(bytes(_BLOCK - size % _BLOCK))

    def add_directory(self, name: str) -> None:
        self._gzip.write(self._header(name.rstrip("/") + "/", 0, tarfile.DIRTYPE))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._gzip.write(self._header(name, len(data), tarfile.REGTYPE))
        self._gzip.write(data)
        self._pad(len(data))

    def add_layer(self, name: str, size: int, stream: BinaryIO, diff_id: str) -> None:
        """Copies exactly size bytes of an uncompressed layer tar, checking they hash to diff_id."""
        if size < 0:
            raise InvalidArgument(f"layer {diff_id} has no known size")
        self._gzip.write(self._header(name, size, tarfile.REGTYPE))
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        copied = 0
        while True:
            self._cancel()
            n = stream.readinto(view)  # type: ignore[attr-defined]  # typing.BinaryIO lacks readinto; these streams have it
            if not n:
                break
            copied += n
            if copied > size:
                break
            digest.update(view[:n])
            self._gzip.write(view[:n])
        if copied != size or f"sha256:{digest.hexdigest()}" != diff_id:
            raise InvalidArgument(f"layer {diff_id} does not match its content ({copied} bytes "
                                  f"read, {size} expected)")
        self._pad(size)

    def finish(self) -> str:
        """Ends the tar and the gzip stream, flushes the file to disk; the sha256 hex of it."""
        self._gzip.write(bytes(2 * _BLOCK))
        self._gzip.close()
        os.fsync(self._fd)
        self._close_fd()
        return self._sink.hash.hexdigest()

    def abort(self) -> None:
        if self._open:
            self._close_fd()
            self.path.unlink(missing_ok=True)

    def _close_fd(self) -> None:
        if self._open:
            self._open = False
            os.close(self._fd)


class _MemberStream(io.RawIOBase):
    """One member of a tarball being read; closing it closes the whole tarball."""

    def __init__(self, reader: GzipTarReader, data: BinaryIO) -> None:
        super().__init__()
        self._reader = reader
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._reader.cancel()
        try:
            return self._data.readinto(buffer)  # type: ignore[attr-defined]  # typing.BinaryIO lacks readinto; these streams have it
        except _READ_ERRORS as exc:
            raise self._reader.broken(exc) from None

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


class GzipTarReader:
    """Reads a gzip-compressed tar front to back (`what` names it in errors: "app tarball")."""

    def __init__(self, path: Path, what: str, cancel: Callable[[], None]) -> None:
        self.path = path
        self.what = what
        self.cancel = cancel
        try:
            self._file = open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"{what} {path} does not exist") from None
        except OSError as exc:
            raise InvalidArgument(f"cannot open {what} {path}: {exc.strerror}") from None
        try:
            self._gzip = gzip.GzipFile(fileobj=self._file, mode="rb")
            self._tar = tarfile.open(fileobj=self._gzip, mode="r|", bufsize=CHUNK)
        except _READ_ERRORS as exc:
            self._file.close()
            raise self.broken(exc) from None
        except BaseException:
            self._file.close()
            raise

    def broken(self, exc: BaseException) -> InvalidArgument:
        return InvalidArgument(f"{self.what} {self.path} is not a valid gzip-compressed tar: "
                               f"{exc or type(exc).__name__}")

    def members(self) -> Iterator[tuple[str, tarfile.TarInfo]]:
        """(normalized name, info) of each regular file, in archive order."""
        while True:
            self.cancel()
            try:
                info = self._tar.next()
            except _READ_ERRORS as exc:
                raise self.broken(exc) from None
            if info is None:
                return
            if info.isreg():
                yield normalize_member(info.name), info

    def read(self, info: tarfile.TarInfo, limit: int) -> bytes:
        """The content of the current member, which must be small (metadata)."""
        if info.size > limit:
            raise InvalidArgument(f"{self.what} {self.path}: {info.name!r} is {info.size} bytes, "
                                  f"more than the {limit} allowed")
        data = self._extract(info)
        try:
            return data.read()
        except _READ_ERRORS as exc:
            raise self.broken(exc) from None

    def _extract(self, info: tarfile.TarInfo) -> BinaryIO:
        data = self._tar.extractfile(info)
        assert data is not None  # a regular file always has data
        return data  # type: ignore[return-value]  # tarfile's ExFileObject is a binary stream

    def open_member(self, name: str) -> BinaryIO:
        """A stream of member name (the reader is used up; closing the stream closes it)."""
        try:
            for member, info in self.members():
                if member == name:
                    return io.BufferedReader(_MemberStream(self, self._extract(info)), CHUNK)
        except BaseException:
            self.close()
            raise
        self.close()
        raise InvalidArgument(f"{self.what} {self.path} has no {name!r}")

    def close(self) -> None:
        self._tar.close()
        self._gzip.close()
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def sha256_file(path: Path, what: str, cancel: Callable[[], None]) -> str:
    """The sha256 hex of a file, read in chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            while n := f.readinto(view):
                cancel()
                digest.update(view[:n])
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{what} {path} is not a regular file") from None
    return digest.hexdigest()
