"""Secrets in transit (SPEC §6): RSA-OAEP with SHA-512 under the daemon's public key, hex-encoded;
build secrets, which can be large, sealed with AES-256-GCM under a key sent that way (`seal`).

cryptography is imported only here and only when something is encrypted (login, or a build
with proxy build args or --secret), so the other commands start without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# The daemon's public key file is tiny; anything bigger is not it.
MAX_KEY_FILE = 64 * 1024


def load_public_key(path: str) -> RSAPublicKey:
    """Reads the daemon's PEM (SubjectPublicKeyInfo) RSA public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    from isula_build.errors import InvalidArgument

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise InvalidArgument(f"read public key {path} failed: {exc.strerror}. "
                              "Is the isula-builder running with this configuration directory "
                              "(ISULABUILD_CONFIG_DIR)?") from None
    if len(data) > MAX_KEY_FILE:
        raise InvalidArgument(f"public key {path} is too large")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InvalidArgument(f"public key {path} is not a PEM public key") from None
    if not isinstance(key, RSAPublicKey):
        raise InvalidArgument(f"public key {path} is not an RSA key")
    return key


def encrypt(text: str, key: RSAPublicKey) -> str:
    """RSA-OAEP (SHA-512 for both the hash and MGF1, no label), hex-encoded."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    ciphertext = key.encrypt(
        text.encode(),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA512()), algorithm=hashes.SHA512(),
                     label=None))
    return ciphertext.hex()


def seal(plain: bytes, aad: bytes, key: RSAPublicKey) -> tuple[bytes, bytes, bytes]:
    """Hybrid encryption for values of any size (build secrets): a random AES-256 key wrapped
    with RSA-OAEP as `encrypt` does, the value sealed with AES-256-GCM under it and `aad`.
    Returns (wrapped key, nonce, ciphertext with its tag)."""
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from isula_build.api.sealed import KEY_BYTES, NONCE_BYTES

    secret_key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    wrapped = key.encrypt(secret_key, padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA512()),
                                                   algorithm=hashes.SHA512(), label=None))
    return wrapped, nonce, AESGCM(secret_key).encrypt(nonce, plain, aad)
