"""Early writeback: a big file being stored has its disk writes started as it is written, so the
fsync that ends it waits for the last few MiB only (store/fsutil.EarlyWriteback)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from isula_build.store import fsutil
from isula_build.store.pipe import CHUNK, BackgroundWriter


def test_the_writer_starts_the_disk_writes_of_each_step_it_wrote(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[int, int]] = []
    start_writes = fsutil._start_writes
    monkeypatch.setattr(fsutil, "_start_writes", lambda fd, offset, length: (
        started.append((offset, length)), start_writes(fd, offset, length)))
    data = os.urandom(CHUNK) * 20 + b"tail"
    path = tmp_path / "blob"
    hasher = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with BackgroundWriter(fd, hasher) as out:
            for start in range(0, len(data), CHUNK):
                buffer = out.free_buffer()
                piece = data[start:start + CHUNK]
                buffer[:len(piece)] = piece
                out.write(buffer, len(piece))
        os.fsync(fd)
    finally:
        os.close(fd)
    step = fsutil.WRITEBACK_STEP
    # Whole steps, in order, without gaps or overlaps; the rest is left to the fsync.
    assert started == [(n * step, step) for n in range(len(data) // step)]
    assert path.read_bytes() == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_where_writeback_cannot_be_started_writing_goes_on(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()   # sync_file_range fails on a pipe (ESPIPE)
    try:
        writeback = fsutil.EarlyWriteback(write_end)
        os.set_blocking(read_end, False)
        for _ in range(3):
            os.write(write_end, b"x" * 4096)
            writeback.wrote(fsutil.WRITEBACK_STEP)
            assert os.read(read_end, 8192) == b"x" * 4096
    finally:
        os.close(read_end)
        os.close(write_end)
