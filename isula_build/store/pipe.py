"""A file writer on a thread of its own, so reading and checking a stream overlap hashing and
writing it; and the copy of a layer tar that the store, and a build fetching a layer, make
through it."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hashlib import _Hash

from isula_build.errors import ResourceExhausted
from isula_build.image.tarsafety import TarStreamChecker
from isula_build.store.fsutil import DirectWriter, EarlyWriteback, write_all

Chunk = bytes | bytearray | memoryview


@runtime_checkable
class ChunkSource(Protocol):
    """A stream that hands on chunks it made whole (registry/pipeline.ThreadedReader): copying
    them into buffers would hold the GIL for a memcpy of every byte. b"" at the end."""

    def read_chunk(self) -> Chunk: ...


# Large chunks keep the per-chunk Python overhead negligible next to hashing and writing.
CHUNK = 1 << 20
_BUFFERS = 4


class BackgroundWriter:
    """Writes filled buffers to fd in order on a worker thread and hands them back for reuse;
    with `hasher`, each buffer is hashed there too, just before it is written (hashlib releases
    the GIL, so this runs beside the reader's work). uncached: the file is written past the
    page cache (fsutil.DirectWriter) or, where its filesystem refuses that, its pages are
    dropped once on disk (fsutil.EarlyWriteback).

    Use as a context manager; leaving it waits for every write and re-raises a write error.
    """

    def __init__(self, fd: int, hasher: _Hash | None = None, uncached: bool = False) -> None:
        self._fd = fd
        self._hasher = hasher
        self._direct = DirectWriter.open(fd) if uncached else None
        self._writeback = EarlyWriteback(fd, uncached)
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(_BUFFERS):
            self._free.put(bytearray(CHUNK))
        # (what to write, its length, the free buffer to hand back once it is written)
        self._full: queue.Queue[tuple[Chunk, int, bytearray] | None] = queue.Queue()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="blob-writer", daemon=True)
        self._thread.start()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._full.put(None)
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def free_buffer(self) -> bytearray:
        buffer = self._free.get()
        if self._error is not None:
            raise self._error
        return buffer

    def give_back(self, buffer: bytearray) -> None:
        self._free.put(buffer)

    def write(self, buffer: bytearray, length: int) -> None:
        self._full.put((buffer, length, buffer))

    def write_chunk(self, chunk: Chunk) -> None:
        """Writes a chunk the caller hands over whole (it must not change it afterwards), with
        no copy into a buffer; waits, as free_buffer does, while every buffer is in flight."""
        self._full.put((chunk, len(chunk), self.free_buffer()))

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            buffer, length, free = item
            if self._error is None:
                data = memoryview(buffer)[:length]
                if self._hasher is not None:
                    self._hasher.update(data)
                try:
                    if self._direct is not None:
                        self._direct.write(data)
                    else:
                        write_all(self._fd, data)
                        self._writeback.wrote(length)
                except OSError as exc:
                    self._error = exc  # reported to the reader at its next buffer or at exit
            self._free.put(free)
        if self._direct is not None:
            try:
                self._direct.close(write_rest=self._error is None)
            except OSError as exc:
                self._error = exc


def copy_checked_tar(stream: BinaryIO | ChunkSource, fd: int, limit: int | None = None,
                     counted: Callable[[int], None] | None = None,
                     uncached: bool = False) -> tuple[str, int]:
    """Copies an uncompressed layer tar read once from stream to fd: the tar checks on this
    thread while the writer's thread hashes and writes; (sha256 hex, size). InvalidArgument
    for a tar the checker refuses; ResourceExhausted past limit bytes. counted is told each
    chunk's length before it is written (the store's free-space meter may refuse it).
    uncached: the layer is written past the page cache (for a layer that came over the
    network, read again only when a build extracts it, maybe never); see BackgroundWriter."""
    checker = TarStreamChecker()
    hasher = hashlib.sha256()
    size = 0
    chunks, plain = (stream, None) if isinstance(stream, ChunkSource) else (None, stream)
    with BackgroundWriter(fd, hasher, uncached) as out:
        while True:
            buffer: bytearray | None = None
            if chunks is not None:   # handed on as they are
                chunk = chunks.read_chunk()
            else:
                assert plain is not None
                buffer = out.free_buffer()
                chunk = _read_into(plain, buffer)
            if not chunk:
                if buffer is not None:
                    out.give_back(buffer)
                break
            size += len(chunk)
            if limit is not None and size > limit:
                raise ResourceExhausted(f"layer is larger than the limit of {limit} bytes")
            if counted is not None:
                counted(len(chunk))
            checker.feed(chunk)
            if buffer is None:
                out.write_chunk(chunk)
            else:
                out.write(buffer, len(chunk))
    checker.finish()
    return hasher.hexdigest(), size


def _read_into(stream: BinaryIO, buffer: bytearray) -> Chunk:
    """Fills the front of buffer from stream (readinto when it has one, else read and copy) and
    returns a view of the bytes read: the background writer writes the buffer itself."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        n = readinto(buffer) or 0
    else:
        data = stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
    return memoryview(buffer)[:n]
