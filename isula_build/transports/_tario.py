"""Reading members of an archive in place, and writing archives atomically.

Reading never extracts: the tar is indexed once (tarfile seeks over member data on a seekable
file) and a member is then read straight from its offset in the archive with pread, so several
streams may be open at once and a 50 GiB archive costs no disk space or memory to load.

Writing goes to a new file that appears at the target only when complete (newfile.py), so
neither a failure nor a killed daemon leaves a partial archive. Layer data is copied in the
kernel (copy_file_range, or sendfile) when it comes from a plain file, which is what makes
saving as fast as a file copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from isula_build.errors import InvalidArgument, NotFound, ResourceExhausted
from isula_build.image import jsondoc
from isula_build.image.compression import HEAD_SIZE, READABLE, detect_compression
from isula_build.store.fsutil import write_all
from isula_build.transports.newfile import NewFile

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # the buffer type io's stubs give readinto

CHUNK = 1 << 20
MAX_ARCHIVE_SIZE = 50 << 30      # SPEC §8: a load tarball is at most 50 GiB
MAX_MEMBERS = 100_000            # an index entry costs memory; real archives have a few hundred
MAX_JSON_SIZE = 16 << 20         # manifest.json, index.json, configs and manifests
_BLOCK = 512


class _Section(io.RawIOBase):
    """size bytes of a file descriptor from offset, read with pread (no shared file position)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        want = min(memoryview(buffer).nbytes, self._end - self._pos)
        if want <= 0:
            return 0
        n = os.preadv(self._fd, [memoryview(buffer)[:want]], self._pos)
        if n == 0:
            raise InvalidArgument("archive is truncated: a member ends past the end of the file")
        self._pos += n
        return n


def normalize_member(name: str) -> str:
    """A member name as archives refer to it: no leading "./" or "/", no "a/../b"."""
    clean = posixpath.normpath("/" + name).lstrip("/")
    return clean if clean != "." else ""


class MemberIndex(Protocol):
    """Named files of an image archive read in place: a tar (TarIndex) or an OCI layout
    directory (oci_layout.LayoutIndex); the archive readers take either."""

    path: Path

    def acquire(self) -> MemberIndex: ...
    def release(self) -> None: ...
    def __contains__(self, name: str) -> bool: ...
    def member(self, name: str, what: str) -> object: ...
    def size(self, name: str, what: str) -> int: ...
    def open(self, name: str, what: str) -> BinaryIO: ...
    def read(self, name: str, what: str, limit: int = MAX_JSON_SIZE) -> bytes: ...
    def read_json(self, name: str, what: str) -> Any: ...


class TarIndex:
    """The regular-file members of an archive on disk, readable in place.

    Shared by every image source read from the archive; each holds a reference and the file is
    closed when the last one lets go.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"archive {path} does not exist") from None
        except OSError as exc:
            raise InvalidArgument(f"cannot open archive {path}: {exc.strerror}") from None
        self._fd = fd
        self._refs = 1
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidArgument(f"{path} is not a regular file")
            self._size = st.st_size
            if self._size > MAX_ARCHIVE_SIZE:
                raise ResourceExhausted(f"archive {path} is {self._size} bytes, more than the "
                                        f"limit of {MAX_ARCHIVE_SIZE} bytes (50 GiB)")
            self._members = self._index()
        except BaseException:
            os.close(fd)
            raise

    def _index(self) -> dict[str, tarfile.TarInfo]:
        if detect_compression(os.pread(self._fd, HEAD_SIZE, 0)) in READABLE:
            raise InvalidArgument(f"{self.path} is a compressed file; decompress it first, a "
                                  "docker-archive or oci-archive is an uncompressed tar")
        members: dict[str, tarfile.TarInfo] = {}
        # tarfile only reads headers and seeks over data; closefd=False keeps our descriptor.
        with open(self._fd, "rb", closefd=False) as f:
            try:
                with tarfile.open(fileobj=f, mode="r:") as tar:
                    for count, info in enumerate(tar):
                        if count >= MAX_MEMBERS:
                            raise InvalidArgument(f"{self.path} has more than {MAX_MEMBERS} entries")
                        name = normalize_member(info.name)
                        if info.isreg() or info.issym() or info.islnk():
                            members[name] = info
            except tarfile.TarError as exc:
                raise InvalidArgument(f"{self.path} is not a valid tar archive: {exc}") from None
        for info in members.values():
            if info.isreg() and info.offset_data + info.size > self._size:
                raise InvalidArgument(f"{self.path} is truncated: {info.name} ends past the end")
        if not members:
            raise InvalidArgument(f"{self.path} is not an image archive: it contains no files")
        return members

    def acquire(self) -> TarIndex:
        self._refs += 1
        return self

    def release(self) -> None:
        self._refs -= 1
        if self._refs == 0:
            os.close(self._fd)

    def __contains__(self, name: str) -> bool:
        return self._resolve(name) is not None

    def _resolve(self, name: str) -> tarfile.TarInfo | None:
        """The regular member a name leads to, following symbolic and hard links in the archive."""
        current = normalize_member(name)
        for _ in range(16):  # old docker save links duplicate layers; deeper chains are bogus
            info = self._members.get(current)
            if info is None or info.isreg():
                return info
            if info.issym():
                current = normalize_member(posixpath.join(posixpath.dirname(current), info.linkname))
            else:
                current = normalize_member(info.linkname)
        return None

    def member(self, name: str, what: str) -> tarfile.TarInfo:
        info = self._resolve(name)
        if info is None:
            raise InvalidArgument(f"{self.path}: {what} {name!r} is missing from the archive")
        return info

    def size(self, name: str, what: str) -> int:
        """Bytes of a member as stored."""
        return self.member(name, what).size

    def open(self, name: str, what: str) -> BinaryIO:
        """A raw stream of a member's bytes."""
        info = self.member(name, what)
        return _Section(self._fd, info.offset_data, info.size)  # type: ignore[return-value]  # a RawIOBase is a binary stream

    def read(self, name: str, what: str, limit: int = MAX_JSON_SIZE) -> bytes:
        info = self.member(name, what)
        if info.size > limit:
            raise InvalidArgument(f"{self.path}: {what} {name!r} is {info.size} bytes, more than "
                                  f"the {limit} bytes allowed")
        data = os.pread(self._fd, info.size, info.offset_data)
        if len(data) != info.size:
            raise InvalidArgument(f"{self.path} is truncated in {name!r}")
        return data

    def read_json(self, name: str, what: str) -> Any:
        return read_json_member(self, name, what)


def read_json_member(index: MemberIndex, name: str, what: str) -> Any:
    """A member parsed as JSON (read_json of every MemberIndex)."""
    data = index.read(name, what)
    try:
        return jsondoc.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{index.path}: {what} {name!r} is not valid JSON: {exc}") from None


def _plain_file(stream: BinaryIO) -> int | None:
    """The descriptor of stream when it is an ordinary file opened for reading, else None."""
    if isinstance(stream, io.BufferedReader) and isinstance(stream.raw, io.FileIO):
        return stream.fileno()
    return None


@dataclass(frozen=True)
class WrittenMember:
    header_at: int
    name: str
    digest: str | None  # sha256 of the data, when it was hashed
    size: int


class TarWriter:
    """Writes a tar archive that appears at target when commit() ends it (never before)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        directory = target.parent
        if not directory.is_dir():
            raise NotFound(f"directory {directory} does not exist")
        self._file = NewFile(target)
        self._fd = self._file.fd
        self._pos = 0

    def _write(self, data: bytes | memoryview) -> None:
        write_all(self._fd, memoryview(data))
        self._pos += len(data)

    @staticmethod
    def _header(name: str, size: int, directory: bool = False) -> bytes:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o755 if directory else 0o644
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        info.mtime = 0  # fixed, so the same images always give the same archive bytes
        # GNU format encodes any size in the one 512-byte block, so a header written before the
        # size is known can be rewritten in place afterwards.
        header = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")
        assert len(header) == _BLOCK, name
        return header

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._write(bytes(_BLOCK - size % _BLOCK))

    def add_directory(self, name: str) -> None:
        # Extractors create missing parents anyway; the entries make the layout explicit.
        self._write(self._header(name, 0, directory=True))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(self._header(name, len(data)))
        self._write(data)
        self._pad(len(data))

    def add_stream(self, name: str, stream: BinaryIO, trusted: bool) -> WrittenMember:
        """Copies stream as member name.

        A trusted plain file is copied in the kernel without hashing (the store verified it when
        it was written); anything else is hashed on the way so the caller can verify it.
        """
        header_at = self._pos
        self._write(self._header(name, 0))
        fd = _plain_file(stream) if trusted else None
        if fd is not None:
            digest, size = None, self._copy_fd(fd, stream.tell())
        else:
            digest, size = self._copy_hashing(stream)
        self._pad(size)
        member = WrittenMember(header_at, name, digest, size)
        os.pwrite(self._fd, self._header(name, size), header_at)
        return member

    def rename(self, member: WrittenMember, name: str) -> None:
        """Gives a written member another name (when it is named after its digest, known late)."""
        os.pwrite(self._fd, self._header(name, member.size), member.header_at)

    def _copy_fd(self, fd: int, offset: int) -> int:
        remaining = os.fstat(fd).st_size - offset
        total = 0
        while remaining > 0:
            try:
                n = os.copy_file_range(fd, self._fd, min(remaining, 1 << 30), offset + total)
            except OSError:
                # Across file systems on old kernels: sendfile still avoids user space.
                n = os.sendfile(self._fd, fd, offset + total, min(remaining, 1 << 30))
            if n == 0:
                break
            total += n
            remaining -= n
        # copy_file_range and sendfile advanced our descriptor's offset, not our count.
        self._pos += total
        return total

    def _copy_hashing(self, stream: BinaryIO) -> tuple[str, int]:
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        total = 0
        while True:
            n = stream.readinto(view)  # type: ignore[attr-defined]  # typing.BinaryIO lacks readinto; these streams have it
            if not n:
                break
            digest.update(view[:n])
            self._write(view[:n])
            total += n
        return f"sha256:{digest.hexdigest()}", total

    def commit(self) -> None:
        """Ends the archive, flushes it to disk and puts it at the target (AlreadyExists when
        something took that name meanwhile); on any failure nothing is left."""
        try:
            self._write(bytes(2 * _BLOCK))
        except BaseException:
            self._file.abort()
            raise
        self._file.commit()

    def abort(self) -> None:
        """Discards what was written; the target is left as it was."""
        self._file.abort()
