"""Writing a layer as it arrives: a big file's disk writes start while it is written, so the fsync
that ends it waits for the last few MiB only, and a layer's pages leave the page cache once on disk
(store/fsutil.EarlyWriteback), or never enter it (fsutil.DirectWriter); a pipeline's chunks are written as they are, never copied
(store/pipe.copy_checked_tar)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from isula_build.store import fsutil
from isula_build.registry.pipeline import _filled
from isula_build.store.pipe import CHUNK, BackgroundWriter, copy_checked_tar
from tests.store.pagecache import resident_bytes


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


def _write_through(path: Path, data: bytes, uncached: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with BackgroundWriter(fd, uncached=uncached) as out:
            for start in range(0, len(data), CHUNK):
                out.write_chunk(data[start:start + CHUNK])
        os.fsync(fd)
    finally:
        os.close(fd)


def test_a_layer_s_pages_leave_the_page_cache_once_on_disk(tmp_path: Path) -> None:
    data = os.urandom(CHUNK) * (6 * fsutil.WRITEBACK_STEP // CHUNK) + os.urandom(5000)
    dropped, kept = tmp_path / "layer", tmp_path / "copied-file"
    _write_through(dropped, data, uncached=True)
    _write_through(kept, data, uncached=False)
    # Written past the page cache (O_DIRECT), all but the last partial block.
    assert resident_bytes(dropped) < fsutil.DIRECT_BLOCK
    assert resident_bytes(kept) >= len(data)   # a COPY's file stays, for the commit to read
    assert dropped.read_bytes() == data == kept.read_bytes()


def _refuse_o_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Makes fcntl refuse O_DIRECT, as a filesystem without it does (EINVAL)."""
    real = fcntl.fcntl

    def refusing(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)
    monkeypatch.setattr(fsutil.fcntl, "fcntl", refusing)


def test_where_o_direct_is_refused_the_pages_are_dropped_once_on_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_o_direct(monkeypatch)
    dropped: list[tuple[int, int]] = []
    drop_written = fsutil._drop_written
    monkeypatch.setattr(fsutil, "_drop_written", lambda fd, offset, length: (
        dropped.append((offset, length)), drop_written(fd, offset, length)))
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 3 * fsutil.WRITEBACK_STEP
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    layer.seek(0)
    path = tmp_path / "layer"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        copy_checked_tar(layer, fd, uncached=True)
    finally:
        os.close(fd)
    step = fsutil.WRITEBACK_STEP
    assert dropped == [(0, step), (step, step)]   # each step once it is on disk, in order
    assert resident_bytes(path) <= 2 * step
    assert path.read_bytes() == layer.getvalue()


@pytest.mark.parametrize("length", [0, 100, 4096, 4097, fsutil.DIRECT_BLOCK,
                                    fsutil.DIRECT_BLOCK + 5000, 3 * fsutil.DIRECT_BLOCK - 1])
def test_a_file_written_past_the_page_cache_is_whole_and_its_descriptor_as_before(
        tmp_path: Path, length: int) -> None:
    data = os.urandom(length)
    path = tmp_path / "layer"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        direct = fsutil.DirectWriter.open(fd)
        assert direct is not None
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        for start in range(0, length, 777_777):   # pieces that straddle blocks
            direct.write(memoryview(data)[start:start + 777_777])
        direct.close()
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags
        os.write(fd, b"more")   # the descriptor writes as it did before
    finally:
        os.close(fd)
    assert path.read_bytes() == data + b"more"


def test_after_a_short_direct_write_the_rest_goes_through_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    short: list[int] = []

    def write_half_once(fd: int, data: memoryview) -> int:
        if not short and len(data) == fsutil.DIRECT_BLOCK:
            short.append(len(data) // 2)
            return real_write(fd, data[:len(data) // 2])
        return real_write(fd, data)
    data = os.urandom(2 * fsutil.DIRECT_BLOCK + 123)
    path = tmp_path / "layer"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        direct = fsutil.DirectWriter.open(fd)
        assert direct is not None
        monkeypatch.setattr(fsutil.os, "write", write_half_once)
        direct.write(memoryview(data))
        direct.close()
        monkeypatch.undo()
    finally:
        os.close(fd)
    assert short == [fsutil.DIRECT_BLOCK // 2]
    assert path.read_bytes() == data


def test_o_direct_is_not_asked_of_a_pipe() -> None:
    read_end, write_end = os.pipe()   # where O_DIRECT would make a pipe of packets
    try:
        assert fsutil.DirectWriter.open(write_end) is None
        assert not fcntl.fcntl(write_end, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(read_end)
        os.close(write_end)


def test_where_writeback_cannot_be_started_writing_goes_on(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()   # sync_file_range fails on a pipe (ESPIPE)
    try:
        writeback = fsutil.EarlyWriteback(write_end, drop_behind=True)
        os.set_blocking(read_end, False)
        for _ in range(3):
            os.write(write_end, b"x" * 4096)
            writeback.wrote(fsutil.WRITEBACK_STEP)
            assert os.read(read_end, 8192) == b"x" * 4096
    finally:
        os.close(read_end)
        os.close(write_end)


class _Chunks:
    """A stream of chunks made elsewhere, as registry/pipeline.ThreadedReader hands them on."""

    def __init__(self, chunks: list[bytearray]) -> None:
        self.chunks = chunks

    def read_chunk(self) -> bytes | bytearray:
        return self.chunks.pop(0) if self.chunks else b""


def test_a_pipeline_s_chunks_go_to_the_writer_as_they_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("big")
        info.size = 3 * CHUNK
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    data = layer.getvalue()
    chunks = [bytearray(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
    handed: list[int] = []
    write_chunk = BackgroundWriter.write_chunk
    monkeypatch.setattr(BackgroundWriter, "write_chunk",
                        lambda self, chunk: (handed.append(id(chunk)), write_chunk(self, chunk)))
    expected_ids = [id(chunk) for chunk in chunks]
    fd = os.open(tmp_path / "layer", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        digest, size = copy_checked_tar(_Chunks(chunks), fd)
    finally:
        os.close(fd)
    assert handed == expected_ids   # the very objects: no copy into buffers
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (tmp_path / "layer").read_bytes() == data


def test_a_download_chunk_is_filled_by_short_reads() -> None:
    source = io.BytesIO(os.urandom(CHUNK + 100))

    def short_readinto(view: memoryview) -> int:
        return source.readinto(view[:1000])

    first, second, end = _filled(short_readinto), _filled(short_readinto), _filled(short_readinto)
    assert (len(first), len(second), len(end)) == (CHUNK, 100, 0)
    assert bytes(first + second) == source.getvalue()
