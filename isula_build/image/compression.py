"""Compressed tar streams, recognised by their magic bytes and opened for reading.

Compression is told by content, never by file name or media type: archives in the wild label it
inconsistently, and ADD extracts an archive whatever its name. Every reader of possibly
compressed bytes (layers of archives, import tarballs, pulled blobs, ADD sources) asks here.

gzip is read with ISA-L (python-isal's igzip, two to three times zlib's speed) and zstd with the
zstandard binding; both release the GIL, so a decompressing thread overlaps the others.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import BinaryIO, cast

import zstandard
from isal import igzip, isal_zlib

from isula_build.image.compressionspec import GZIP, ZSTD

XZ = "xz"
BZIP2 = "bzip2"

_MAGIC = {
    b"\x1f\x8b": GZIP,
    b"\xfd7zXZ\x00": XZ,
    b"BZh": BZIP2,
    b"\x28\xb5\x2f\xfd": ZSTD,
}
# Enough leading bytes for every magic above.
HEAD_SIZE = 8
# What open_decompressed can read.
READABLE = frozenset({GZIP, XZ, BZIP2, ZSTD})
# What reading a damaged stream of any READABLE kind raises (EOFError: truncated gzip/xz/bzip2).
DECOMPRESSION_ERRORS: tuple[type[Exception], ...] = (
    OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError,
    cast(type[Exception], isal_zlib.error))  # python-isal's stubs call its class an instance
_ZSTD_READ = 1 << 20


def detect_compression(head: bytes) -> str | None:
    """GZIP, XZ, BZIP2, ZSTD or None (not compressed) from the first bytes of a stream."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_decompressed(stored: BinaryIO, kind: str) -> BinaryIO:
    """The decompressed stream of `stored`, compressed with `kind` (one of READABLE);
    closing it leaves `stored` open. Every read returns at most what was asked for, so a
    decompression bomb costs no more memory than a normal stream."""
    if kind == GZIP:
        return igzip.GzipFile(fileobj=stored, mode="rb")  # type: ignore[return-value]  # the decompressing files are binary streams
    if kind == ZSTD:
        # All frames, one after another, as zstd(1) reads them. A stream cut inside a frame
        # ends without an error here; every caller checks the tar's end and its diff ID.
        return zstandard.ZstdDecompressor().stream_reader(
            stored, read_size=_ZSTD_READ, read_across_frames=True, closefd=False)
    if kind == XZ:
        return lzma.LZMAFile(stored, mode="rb")  # type: ignore[return-value]  # the decompressing files are binary streams
    if kind == BZIP2:
        return bz2.BZ2File(stored, mode="rb")  # type: ignore[return-value]  # the decompressing files are binary streams
    raise ValueError(f"cannot decompress {kind}")
