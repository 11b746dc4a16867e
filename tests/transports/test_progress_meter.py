"""The progress meter the copy puts around a layer stream (isula_build/progress.py)."""

from __future__ import annotations

import io
from pathlib import Path

from isula_build import progress
from isula_build.progress import BlobMeter, BlobProgress, Event, metered
from isula_build.transports._tario import _plain_file


def test_a_metered_plain_file_stays_a_plain_file(tmp_path: Path) -> None:
    path = tmp_path / "layer"
    path.write_bytes(b"x" * 3_000_000)
    events: list[Event] = []
    meter = BlobMeter(events.append, "sha256:aa", 3_000_000)
    stream = metered(open(path, "rb"), meter)
    # Archive writers still see a file they may copy in the kernel.
    assert _plain_file(stream) is not None
    meter.start()
    assert stream.read(1000) == b"x" * 1000
    stream.readinto(bytearray(1 << 20))
    stream.seek(0)          # an upload retried reads it again
    assert len(stream.read()) == 3_000_000
    stream.close()
    meter.finish()
    assert events[0] == BlobProgress("sha256:aa", 0, 3_000_000, 0.0)
    last = events[-1]
    assert isinstance(last, BlobProgress) and (last.done, last.total) == (3_000_000, 3_000_000)


def test_reports_are_few_however_many_reads(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    events: list[Event] = []
    meter = BlobMeter(events.append, "", -1)
    stream = metered(io.BytesIO(b"y" * 100_000), meter)  # type: ignore[arg-type]
    meter.start()
    reads = 0
    while stream.read(10):
        reads += 1
        clock[0] += 0.001   # a read a millisecond: a report every 100 reads
    meter.finish("sha256:bb")
    assert reads == 10_000
    # The start, one each REPORT_INTERVAL, and the end, which names the digest that became
    # known and sets the total.
    assert 2 + 90 <= len(events) <= 2 + 100   # not one a read (float steps blur the count)
    assert events[-1] == BlobProgress("sha256:bb", 100_000, 100_000, events[-1].seconds)


def test_only_finish_reports_a_blob_complete(monkeypatch) -> None:
    """A pull's download thread may count every byte before start(), or before the layer is
    stored: the client takes done == total as "copied", so only finish() may report it."""
    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    events: list[Event] = []
    meter = BlobMeter(events.append, "sha256:cc", 1000)
    meter.add(1000)
    meter.start()
    clock[0] += 1
    meter.add(0)
    meter.finish()
    meter.finish()
    assert [(e.done, e.total) for e in events if isinstance(e, BlobProgress)] == \
        [(999, 1000), (999, 1000), (1000, 1000)]
