"""gzip compression of layers on every CPU, as pigz does, for pushes.

The tar is cut into blocks; each is deflated on its own with ISA-L (python-isal: several times
zlib's speed at the size of zlib -1; it releases the GIL) and ended with a sync flush, so the
compressed blocks simply follow one another, and an empty final block ends the stream.

The same input always gives the same bytes — fixed block size and level, mtime 0, and the
framing (header, stored blocks, the end, the trailer) written here rather than by a library — so
a layer compressed again has the same digest as before. The deflated blocks are ISA-L's, so
they differ from the zlib ones of versions before it: a layer pushed by such a version is
found again through the blob-info cache (registry/blobinfo.py), not by compressing it again.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from isal import isal_zlib

from isula_build.image.compressionspec import DEFAULT_GZIP_LEVEL

BLOCK = 1 << 20
SAMPLE = 64 << 10
INCOMPRESSIBLE = 0.95  # a sample compressed to more than this share is stored uncompressed
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, unknown OS
_END = b"\x03\x00"  # a final, empty block with fixed codes
_STORED_MAX = 0xFFFF  # the most bytes one stored block holds
_executor = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2),
                               thread_name_prefix="gzip")


def _stored(block: bytes) -> bytes:
    # Non-final stored blocks (BTYPE 00): every block before starts and ends on a byte
    # boundary (a sync flush), so each is the byte 0, LEN, NLEN and the bytes themselves.
    parts: list[bytes] = []
    for start in range(0, len(block), _STORED_MAX):
        piece = block[start:start + _STORED_MAX]
        parts += (struct.pack("<BHH", 0, len(piece), len(piece) ^ 0xFFFF), piece)
    return b"".join(parts)


def _deflate(block: bytes, level: int) -> bytes:
    # Data that does not shrink (already compressed files, random bytes) is stored as is,
    # as Go's flate (and so skopeo) does; a sample of the block tells.
    sample = block[:SAMPLE]
    if len(isal_zlib.compress(sample, 0, -isal_zlib.MAX_WBITS)) > len(sample) * INCOMPRESSIBLE:
        return _stored(block)
    compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -isal_zlib.MAX_WBITS)
    return compressor.compress(block) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)


def gzip_stream(source: BinaryIO, level: int = DEFAULT_GZIP_LEVEL) -> Iterator[bytes]:
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
                crc = isal_zlib.crc32(block, crc)
                size += len(block)
                pending.append(_executor.submit(_deflate, block, level))
            while pending and (len(pending) >= window or not block):
                yield pending.popleft().result()
            if not block:
                break
    finally:
        for future in pending:
            future.cancel()
    yield _END + struct.pack("<II", crc, size & 0xFFFFFFFF)
