"""A file writer on a thread of its own, so reading and checking a stream overlap hashing and
writing it."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

from isula_build.store.fsutil import write_all

# Large chunks keep the per-chunk Python overhead negligible next to hashing and writing.
CHUNK = 1 << 20
_BUFFERS = 4


class BackgroundWriter:
    """Writes filled buffers to fd in order on a worker thread and hands them back for reuse;
    with `hasher`, each buffer is hashed there too, just before it is written (hashlib releases
    the GIL, so this runs beside the reader's work).

    Use as a context manager; leaving it waits for every write and re-raises a write error.
    """

    def __init__(self, fd: int, hasher: _Hash | None = None) -> None:
        self._fd = fd
        self._hasher = hasher
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(_BUFFERS):
            self._free.put(bytearray(CHUNK))
        self._full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
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
        self._full.put((buffer, length))

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            buffer, length = item
            if self._error is None:
                data = memoryview(buffer)[:length]
                if self._hasher is not None:
                    self._hasher.update(data)
                try:
                    write_all(self._fd, data)
                except OSError as exc:
                    self._error = exc  # reported to the reader at its next buffer or at exit
            self._free.put(buffer)
