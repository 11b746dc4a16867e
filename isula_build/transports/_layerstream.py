"""Turning the bytes of a layer as stored (plain, gzip, zstd, bzip2 or xz tar) into a checked tar stream.

Compression is recognised by magic bytes, never by name or media type, because archives in the
wild label it inconsistently. Every failure while reading (bad compression, wrong blob digest,
too much data) surfaces as an IsulaBuildError naming the layer, in the middle of the copy.
"""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, BinaryIO

from isula_build.errors import InvalidArgument, ResourceExhausted
from isula_build.image.compression import (
    DECOMPRESSION_ERRORS, HEAD_SIZE, detect_compression, open_decompressed)
from isula_build.units import format_binary_size

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # the buffer type io's stubs give readinto

CHUNK = 1 << 20


class _Stored(io.RawIOBase):
    """The stored bytes of a layer as a raw stream for io.BufferedReader; when `hashed`, every
    byte read is hashed (for _Checked's blob digest check)."""

    def __init__(self, raw: BinaryIO, hashed: bool) -> None:
        super().__init__()
        self._raw = raw
        self._hash = hashlib.sha256() if hashed else None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]  # typing.BinaryIO lacks readinto; every stored stream has it
        if n and self._hash is not None:
            self._hash.update(memoryview(buffer)[:n])
        return n

    @property
    def digest(self) -> str:
        assert self._hash is not None, "digest of an unhashed layer"
        return f"sha256:{self._hash.hexdigest()}"

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _Checked(io.RawIOBase):
    """The decompressed bytes of a layer, with the stored bytes hashed on the way.

    At the end of the data the stored bytes are drained (a decompressor may stop before trailing
    padding) and their digest compared with the descriptor's, so a corrupt blob fails the copy.
    """

    def __init__(self, stored: io.BufferedReader[_Stored], data: BinaryIO, hashing: _Stored | None,
                 what: str, blob_digest: str | None, limit: int | None) -> None:
        super().__init__()
        self._stored = stored
        self._data = data
        self._hashing = hashing
        self._what = what
        self._blob_digest = blob_digest
        self._limit = limit
        self._count = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        try:
            n = self._data.readinto(buffer)  # type: ignore[attr-defined]  # typing.BinaryIO lacks readinto; these streams have it
        except DECOMPRESSION_ERRORS as exc:
            raise InvalidArgument(f"{self._what}: cannot decompress: {exc}") from None
        if n:
            self._count += n
            if self._limit is not None and self._count > self._limit:
                raise ResourceExhausted(
                    f"{self._what}: uncompressed data exceeds the limit of "
                    f"{format_binary_size(self._limit)} ({self._limit} bytes)")
            return n
        if not self._done:
            self._done = True
            self._verify()
        return 0

    def _verify(self) -> None:
        if self._hashing is None or self._blob_digest is None:
            return
        # Bytes already in the buffer were hashed when the buffer read them; drain the rest.
        while self._hashing.read(CHUNK):
            pass
        actual = self._hashing.digest
        if actual != self._blob_digest:
            raise InvalidArgument(f"{self._what}: digest mismatch: the descriptor says "
                                  f"{self._blob_digest}, the content is {actual}")

    def close(self) -> None:
        if not self.closed:
            self._data.close()
            self._stored.close()
        super().close()


def open_layer_stream(raw: BinaryIO, what: str, blob_digest: str | None = None,
                      limit: int | None = None) -> io.BufferedReader:
    """The uncompressed tar stream of a stored layer; closing it closes raw.

    raw: the stored bytes (a raw or buffered binary stream supporting readinto).
    what: how to name the layer in errors, e.g. 'layer "blobs/sha256/ab…" of archive.tar'.
    blob_digest: when given, the digest the stored (possibly compressed) bytes must have.
    limit: the most uncompressed bytes allowed (a bound against decompression bombs).
    """
    source = _Stored(raw, hashed=bool(blob_digest))
    hashing = source if blob_digest else None
    stored = io.BufferedReader(source, CHUNK)
    kind = detect_compression(stored.peek(HEAD_SIZE)[:HEAD_SIZE])
    # Every kind detect_compression knows is READABLE.
    data: BinaryIO = stored if kind is None else open_decompressed(stored, kind)
    checked = _Checked(stored, data, hashing, what, blob_digest, limit)
    return io.BufferedReader(checked, CHUNK)
