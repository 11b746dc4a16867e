"""How much of a file is in the page cache, for tests of what a writer leaves there."""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path


def resident_bytes(path: Path) -> int:
    """How much of the file is in the page cache (mincore over a mapping nobody touches)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vector = (ctypes.c_ubyte * pages)()
    # A private mapping: writable for ctypes, over a file that may be read-only (a store blob).
    with open(path, "rb") as file, \
            mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY) as mapping:
        anchor = ctypes.c_char.from_buffer(mapping)
        try:
            assert libc.mincore(ctypes.addressof(anchor), size, vector) == 0, ctypes.get_errno()
        finally:
            del anchor   # the mapping cannot close while a ctypes object holds its buffer
    return sum(byte & 1 for byte in vector) * mmap.PAGESIZE
