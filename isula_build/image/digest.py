"""Digests: the "sha256:<64 hex>" strings that name blobs, and a reader that hashes as it reads."""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

from isula_build.errors import InvalidArgument

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_HEX_RE = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The bare 64-hex sha256 of data (an image ID when data is a config)."""
    return hashlib.sha256(data).hexdigest()


def digest_of(data: bytes) -> str:
    """The "sha256:<hex>" digest of data."""
    return f"{ALGORITHM}:{sha256_hex(data)}"


def is_digest(value: str) -> bool:
    return _DIGEST_RE.fullmatch(value) is not None


def is_hex_id(value: str) -> bool:
    """True for a bare 64-hex lower-case ID."""
    return _HEX_RE.fullmatch(value) is not None


def validate_digest(value: str) -> str:
    """Returns value when it is "sha256:<64 lower-case hex>"; InvalidArgument otherwise."""
    if not is_digest(value):
        raise InvalidArgument(f'invalid digest "{value}": want "sha256:" and 64 lower-case hex digits')
    return value


def hex_of(digest: str) -> str:
    """The 64 hex of a validated digest."""
    return validate_digest(digest).split(":", 1)[1]


class HashingReader:
    """Wraps a binary stream; every byte read through it is hashed and counted.

    After the stream is drained, `digest` is the sha256 digest of everything read and `count`
    its length — so a copy can verify content while passing it on, without reading it twice.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self._hash.update(data)
            self.count += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = self._stream.readinto(buffer)  # type: ignore[attr-defined]  # typing.BinaryIO lacks readinto; these streams have it
        if n:
            self._hash.update(memoryview(buffer)[:n])
            self.count += n
        return n

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    @property
    def digest(self) -> str:
        return f"{ALGORITHM}:{self._hash.hexdigest()}"
