"""Progress of transfers and builds as plain values handed to a callable (issue 15).

The daemon passes a `Report` down from its handlers only when the client asked for progress;
every lower layer takes `progress: Report | None` and does nothing extra when it is None, so
the original's client (which never asks) costs nothing and sees only the log lines. The
events say "bytes of blob X done of total" and "step N took S seconds"; how they travel and
how a terminal shows them is the daemon's and the client's business.

Standard library only: transports and the builder use it, the daemon turns the events into
wire messages.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # the buffer type io's stubs give readinto

# A blob's progress is reported at most this often (plus its start and its end): a terminal
# redraws ten times a second, and a fast copy must not flood the stream with messages.
REPORT_INTERVAL = 0.1


@dataclass(frozen=True)
class BlobProgress:
    id: str      # "sha256:<hex>" as its "Copying blob" line names it; "" while unknown
    done: int    # bytes copied so far
    total: int   # bytes in all, -1 when unknown; the last event of a blob has done == total
    seconds: float  # since the blob's copy started


@dataclass(frozen=True)
class StepTime:
    step: int        # the N of its "STEP  N:" line; 0 for the whole build
    seconds: float


Event = BlobProgress | StepTime
Report = Callable[[Event], None]


class BlobMeter:
    """Counts the bytes of one blob and reports them: at start(), at most every
    REPORT_INTERVAL while they pass, and at finish(). add() may be called on another thread
    than the others (a pull downloads on a thread of its own).

    `total` may be changed until start(): the source that opens the blob knows best what its
    bytes are (a registry's compressed blob rather than the uncompressed layer)."""

    def __init__(self, report: Report, blob_id: str, total: int) -> None:
        self._report = report
        self._id = blob_id
        self.total = total
        self._done = 0
        self._begun = self._last = 0.0
        self._lock = threading.Lock()
        self._started = False
        self._finished = False

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._begun = self._last = time.monotonic()
            event = BlobProgress(self._id, self._not_complete(), self.total, 0.0)
        self._report(event)

    def _not_complete(self) -> int:
        """Bytes done as reported before finish(): only finish() says done == total (a reader
        may have counted every byte before start() or before the blob is stored)."""
        return min(self._done, self.total - 1) if self.total > 0 else self._done

    def add(self, n: int) -> None:
        with self._lock:
            self._done += n
            now = time.monotonic()
            if not self._started or self._finished or now - self._last < REPORT_INTERVAL \
                    or self.total == 0:
                return
            self._last = now
            event = BlobProgress(self._id, self._not_complete(), self.total, now - self._begun)
        self._report(event)

    def rewind(self, position: int) -> None:
        """The stream was read again from `position` (an upload retried)."""
        with self._lock:
            self._done = position

    def finish(self, blob_id: str | None = None) -> None:
        """The blob is complete: one last event with done == total. blob_id: its digest when
        it became known only now (an imported tarball)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            done = max(self._done, self.total)
            seconds = time.monotonic() - self._begun
        self._report(BlobProgress(blob_id or self._id, done, done, seconds))


class MeteredStream(io.RawIOBase):
    """A binary stream whose reads are counted by a BlobMeter; closing it closes the stream."""

    def __init__(self, stream: BinaryIO, meter: BlobMeter) -> None:
        super().__init__()
        self._stream = stream
        self._meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = self._stream.readinto(buffer)  # type: ignore[attr-defined]  # typing.BinaryIO lacks readinto; the streams metered have it
        if n:
            self._meter.add(n)
        return n

    def read(self, size: int = -1) -> bytes:
        # The stream's own read (an HTTP response's) saves the copy RawIOBase.read would make.
        data = self._stream.read(size)
        if data:
            self._meter.add(len(data))
        return data

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class MeteredFile(io.BufferedReader):
    """A plain file whose reads are counted, still a plain file to those who look
    (`isinstance(stream, io.BufferedReader) and isinstance(stream.raw, io.FileIO)`), so a
    destination that trusts store files keeps copying them in the kernel; such a copy is not
    seen by the meter, which then reports the blob only when it is finished."""

    def __init__(self, file: io.BufferedReader, meter: BlobMeter) -> None:
        # Our own descriptor at the same offset; the file handed over is closed here, so
        # nothing else holds the raw file object.
        raw = io.FileIO(os.dup(file.fileno()), "rb")
        raw.seek(file.tell())
        file.close()
        super().__init__(raw, 1 << 20)
        self._meter = meter

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._meter.add(len(data))
        return data

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self._meter.add(len(data))
        return data

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = super().readinto(buffer)
        self._meter.add(n)
        return n

    def readinto1(self, buffer: WriteableBuffer) -> int:
        n = super().readinto1(buffer)
        self._meter.add(n)
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = super().seek(offset, whence)
        self._meter.rewind(position)
        return position


def metered(stream: BinaryIO, meter: BlobMeter) -> BinaryIO:
    """stream with its reads counted by meter; a plain file stays a plain file."""
    if isinstance(stream, io.BufferedReader) and isinstance(stream.raw, io.FileIO):
        return MeteredFile(stream, meter)
    return MeteredStream(stream, meter)  # type: ignore[return-value]  # a RawIOBase is a binary stream
