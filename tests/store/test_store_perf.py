"""put_layer speed on a ~500 MB layer, printed next to a plain copy of the same file (not asserted:
machines differ; run with -s to see it)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

from isula_build.store import Store

FILE_SIZE = 50 << 20
FILES = 10


class _Pattern(io.RawIOBase):
    """size bytes of a repeating random block, without holding them in memory."""

    def __init__(self, block: bytes, size: int) -> None:
        self._block, self._left = block, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, len(self._block))
        buffer[:n] = self._block[:n]
        self._left -= n
        return n


def make_big_layer(path: Path) -> None:
    block = os.urandom(1 << 20)
    with tarfile.open(path, "w") as tar:
        for i in range(FILES):
            info = tarfile.TarInfo(f"big/file{i}")
            info.size = FILE_SIZE
            tar.addfile(info, io.BufferedReader(_Pattern(block, FILE_SIZE)))


def plain_copy_seconds(source: Path, target: Path) -> float:
    start = time.perf_counter()
    with open(source, "rb") as src, open(target, "wb") as dst:
        buffer = bytearray(1 << 20)
        while n := src.readinto(buffer):
            dst.write(memoryview(buffer)[:n])
        dst.flush()
        os.fsync(dst.fileno())
    return time.perf_counter() - start


def test_put_layer_speed(store: Store, tmp_path: Path) -> None:
    layer = tmp_path / "big.tar"
    make_big_layer(layer)
    size = layer.stat().st_size
    assert size > FILES * FILE_SIZE
    plain = plain_copy_seconds(layer, tmp_path / "copy.tar")
    (tmp_path / "copy.tar").unlink()
    with store.writer() as w, open(layer, "rb") as stream:
        start = time.perf_counter()
        record = w.put_layer(stream)
        elapsed = time.perf_counter() - start
    print(f"\nput_layer of {size / 1e6:.0f} MB: {size / elapsed / 1e6:.0f} MB/s "
          f"({elapsed:.2f} s); plain read+write+fsync of the same file: "
          f"{size / plain / 1e6:.0f} MB/s ({plain:.2f} s)")
    with open(layer, "rb") as f:
        assert record.diff_id == "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    assert record.size == size
