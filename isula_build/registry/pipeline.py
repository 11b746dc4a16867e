"""A pulled layer as a pipeline of threads: download and blob digest, then decompression (gzip,
zstd or none, told by the first bytes), then (in the store) the diff ID, the tar checks and the
disk.

Each stage runs on a thread of its own and hands 1 MiB chunks to the next through a bounded
queue, so the stages overlap (socket reads, hashlib, ISA-L and zstd release the GIL; every byte
is read once) and memory stays bounded (a few MiB a layer). An error in any stage is raised to
the reader; closing the reader stops every stage. The blob digest is compared at the end of the download, before the last
chunk is handed on, so a corrupt blob never completes a layer.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from isula_build.errors import InvalidArgument
from isula_build.image.compression import (
    DECOMPRESSION_ERRORS, HEAD_SIZE, detect_compression, open_decompressed)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # the buffer type io's stubs give readinto

CHUNK = 1 << 20
DEPTH = 8           # chunks a stage may run ahead of the next


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ThreadedReader(io.RawIOBase):
    """The bytes an iterator produces on another thread, read as a stream."""

    def __init__(self, produce: Callable[[threading.Event], Iterator[bytes | bytearray]],
                 name: str) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._chunks: queue.Queue[bytes | bytearray | _End] = queue.Queue(DEPTH)
        self._current = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[threading.Event], Iterator[bytes | bytearray]]) -> None:
        error: BaseException | None = None
        try:
            for chunk in produce(self._stop):
                if not self._put(chunk):
                    return
        except BaseException as exc:  # handed to the reading thread
            error = exc
        self._put(_End(error))

    def _put(self, item: bytes | bytearray | _End) -> bool:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._current:
            if self._done:
                return 0
            item = self._chunks.get()
            if isinstance(item, _End):
                self._done = True
                if item.error is not None:
                    raise item.error
                return 0
            self._current = memoryview(item)
        out = memoryview(buffer)
        n = min(out.nbytes, len(self._current))
        out[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def read_chunk(self) -> bytes | bytearray:
        """The next chunk as the producing thread made it, without a copy (what is left of
        one that readinto began, else a whole one); b"" at the end."""
        if self._current:
            rest, self._current = self._current, memoryview(b"")
            return bytes(rest)
        if self._done:
            return b""
        item = self._chunks.get()
        if isinstance(item, _End):
            self._done = True
            if item.error is not None:
                raise item.error
            return b""
        return item

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            self._thread.join()
        super().close()


Producer = Callable[[threading.Event], Iterator[bytes | bytearray]]


def _download(raw: BinaryIO, digest: str, what: str) -> Producer:
    def produce(stop: threading.Event) -> Iterator[bytes | bytearray]:
        hasher = hashlib.sha256()
        readinto = getattr(raw, "readinto", None)
        try:
            held: bytes | bytearray | None = None  # the last chunk waits for the digest check
            while not stop.is_set():
                if readinto is None:
                    chunk: bytes | bytearray = raw.read(CHUNK)
                else:   # a new buffer each time, handed on as it is (read() would copy it)
                    chunk = _filled(readinto)
                if not chunk:
                    break
                hasher.update(chunk)
                if held is not None:
                    yield held
                held = chunk
            actual = f"sha256:{hasher.hexdigest()}"
            if not stop.is_set() and actual != digest:
                raise InvalidArgument(f"{what}: digest mismatch: the descriptor says {digest}, "
                                      f"the content is {actual}")
            if held is not None:
                yield held
        finally:
            raw.close()
    return produce


def _filled(readinto: Callable[[memoryview], int | None]) -> bytearray:
    """A new chunk of up to CHUNK bytes, filled by as many readinto calls as it takes."""
    chunk = bytearray(CHUNK)
    with memoryview(chunk) as view:
        filled = 0
        while filled < CHUNK and (n := readinto(view[filled:])):
            filled += n
    del chunk[filled:]
    return chunk


def _decompress(compressed: ThreadedReader, what: str) -> Producer:
    def produce(stop: threading.Event) -> Iterator[bytes]:
        try:
            head = b""
            while len(head) < HEAD_SIZE and (more := compressed.read(HEAD_SIZE - len(head))):
                head += more
            kind = detect_compression(head)
            stored = _Prefixed(head, compressed)  # the reader that follows reads the head again
            data: BinaryIO = stored if kind is None else open_decompressed(stored, kind)  # type: ignore[assignment,arg-type]  # a RawIOBase is a binary stream
            with data:
                while not stop.is_set():
                    try:
                        chunk = data.read(CHUNK)
                    except DECOMPRESSION_ERRORS as exc:
                        raise InvalidArgument(f"{what}: cannot decompress: {exc}") from None
                    if not chunk:
                        break
                    yield chunk
        finally:
            compressed.close()
    return produce


class _Prefixed(io.RawIOBase):
    """head, then the rest of a stream: the bytes a format check has already taken."""

    def __init__(self, head: bytes, rest: ThreadedReader) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if not self._head:
            return self._rest.readinto(buffer)
        out = memoryview(buffer)
        n = min(out.nbytes, len(self._head))
        out[:n] = self._head[:n]
        self._head = self._head[n:]
        return n


def layer_stream(raw: BinaryIO, digest: str, what: str) -> ThreadedReader:
    """The uncompressed tar of a downloaded layer blob, checked against the blob's digest."""
    downloaded = ThreadedReader(_download(raw, digest, what), "blob-download")
    return ThreadedReader(_decompress(downloaded, what), "blob-decompress")
