"""image/digest.py: digests of bytes, their validation, and the hashing reader."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given, strategies as st

from isula_build.errors import InvalidArgument
from isula_build.image.digest import (HashingReader, digest_of, hex_of, is_digest, is_hex_id,
                                      sha256_hex, validate_digest)

EMPTY_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_sha256_of_bytes() -> None:
    assert sha256_hex(b"") == EMPTY_HEX
    assert digest_of(b"") == "sha256:" + EMPTY_HEX
    assert digest_of(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("value", [
    "sha256:" + EMPTY_HEX,
    "sha256:" + "0" * 64,
])
def test_valid_digests(value: str) -> None:
    assert is_digest(value)
    assert validate_digest(value) == value
    assert hex_of(value) == value[7:]


@pytest.mark.parametrize("value", [
    "", EMPTY_HEX, "sha256:" + EMPTY_HEX.upper(), "sha256:" + EMPTY_HEX[:-1],
    "sha256:" + EMPTY_HEX + "0", "sha512:" + EMPTY_HEX, "sha256:" + "g" * 64, " sha256:" + EMPTY_HEX,
    "sha256:" + EMPTY_HEX + "\n",
])
def test_invalid_digests(value: str) -> None:
    assert not is_digest(value)
    with pytest.raises(InvalidArgument, match="invalid digest"):
        validate_digest(value)
    with pytest.raises(InvalidArgument):
        hex_of(value)


def test_hex_ids() -> None:
    assert is_hex_id(EMPTY_HEX)
    assert not is_hex_id("sha256:" + EMPTY_HEX)
    assert not is_hex_id(EMPTY_HEX[:12])


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
def test_hashing_reader_read(data: bytes, step: int) -> None:
    reader = HashingReader(io.BytesIO(data))
    out = b""
    while chunk := reader.read(step):
        out += chunk
    assert out == data
    assert reader.count == len(data)
    assert reader.digest == digest_of(data)
    assert reader.hexdigest == sha256_hex(data)


def test_hashing_reader_readinto_and_read_all() -> None:
    data = bytes(range(256)) * 40
    reader = HashingReader(io.BytesIO(data))
    buffer = bytearray(1000)
    n = reader.readinto(buffer)
    assert n == 1000 and bytes(buffer) == data[:1000]
    rest = reader.read()
    assert rest == data[1000:]
    assert reader.count == len(data) and reader.digest == digest_of(data)
