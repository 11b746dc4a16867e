"""zstd compression of layers for pushes (OCI `tar+zstd`), on every CPU.

zstandard compresses on worker threads of its own (zstd's multi-threaded mode). Its output
depends only on the input, the level and the parameters fixed here — not on the number of
workers (zstd ≥ 1.5 guarantees that for any count ≥ 1) — so a layer compressed again on
another machine has the same digest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

CHUNK = 1 << 20


def zstd_stream(source: BinaryIO, level: int) -> Iterator[bytes]:
    """The zstd frame of everything read from source, in chunks as they are ready."""
    compressor = zstandard.ZstdCompressor(
        level=level, threads=max(1, os.cpu_count() or 1),
        write_checksum=True,        # as zstd(1) does: a damaged blob fails its decompression
        write_content_size=False)   # the size is not known up front on every path: never written
    stream = compressor.compressobj()
    while block := source.read(CHUNK):
        if out := stream.compress(block):
            yield out
    yield stream.flush()
