"""Compressed tar streams, recognised by their magic bytes and opened with the standard library.

Compression is told by content, never by file name or media type: archives in the wild label it
inconsistently, and ADD extracts an archive whatever its name. Every reader of possibly
compressed bytes (layers of archives, import tarballs, pulled blobs, ADD sources) asks here.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from typing import BinaryIO

GZIP = "gzip"
XZ = "xz"
BZIP2 = "bzip2"
ZSTD = "zstd"

_MAGIC = {
    b"\x1f\x8b": GZIP,
    b"\xfd7zXZ\x00": XZ,
    b"BZh": BZIP2,
    b"\x28\xb5\x2f\xfd": ZSTD,
}
# Enough leading bytes for every magic above.
HEAD_SIZE = 8
# What open_decompressed can read (the standard library has no zstd before Python 3.14).
READABLE = frozenset({GZIP, XZ, BZIP2})


def detect_compression(head: bytes) -> str | None:
    """GZIP, XZ, BZIP2, ZSTD or None (not compressed) from the first bytes of a stream."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_decompressed(stored: BinaryIO, kind: str) -> BinaryIO:
    """The decompressed stream of `stored`, compressed with `kind` (one of READABLE);
    closing it leaves `stored` open."""
    if kind == GZIP:
        return gzip.GzipFile(fileobj=stored, mode="rb")  # type: ignore[return-value]  # the decompressing files are binary streams
    if kind == XZ:
        return lzma.LZMAFile(stored, mode="rb")  # type: ignore[return-value]  # the decompressing files are binary streams
    if kind == BZIP2:
        return bz2.BZ2File(stored, mode="rb")  # type: ignore[return-value]  # the decompressing files are binary streams
    raise ValueError(f"cannot decompress {kind}")
