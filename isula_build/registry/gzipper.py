"""gzip compression of layers on every CPU, as pigz does, for pushes.

The tar is cut into blocks; each is deflated on its own (zlib releases the GIL) and ended with a
sync flush, so the compressed blocks simply follow one another, and an empty final block ends the
stream. The same input always gives the same bytes (fixed block size and level, mtime 0), so a
layer compressed again has the same digest as before.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

BLOCK = 1 << 20
LEVEL = 1  # fast: pushes are bound by compression; level 1 costs a few percent of size
SAMPLE = 64 << 10
INCOMPRESSIBLE = 0.95  # a sample compressed to more than this share is stored uncompressed
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, unknown OS
_executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                               thread_name_prefix="gzip")


def _deflate(block: bytes, level: int) -> bytes:
    # zlib spends the most time on data it cannot shrink (already compressed files, random
    # bytes): when a sample of the block does not shrink, the block is stored as is, which is
    # what Go's flate (and so skopeo) does for such data too.
    sample = block[:SAMPLE]
    if len(zlib.compress(sample, 1)) > len(sample) * INCOMPRESSIBLE:
        level = 0
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_stream(source: BinaryIO, level: int = LEVEL) -> Iterator[bytes]:
    """The gzip of everything read from source, in chunks as they are ready."""
    window = (os.cpu_count() or 2) * 2  # blocks in flight: bounds memory
    pending: deque[Future[bytes]] = deque()
    crc = 0
    size = 0
    yield _HEADER
    try:
        while True:
            block = source.read(BLOCK)
            if block:
                crc = zlib.crc32(block, crc)
                size += len(block)
                pending.append(_executor.submit(_deflate, block, level))
            while pending and (len(pending) >= window or not block):
                yield pending.popleft().result()
            if not block:
                break
    finally:
        for future in pending:
            future.cancel()
    final = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    yield final.flush(zlib.Z_FINISH) + struct.pack("<II", crc, size & 0xFFFFFFFF)
