"""The daemon's RSA key pair for secrets in transit (SPEC §6).

A fresh RSA-2048 pair is made at every start. The public key goes to
`<config dir>/isula-build.pub` (PEM SubjectPublicKeyInfo, mode 0400) for the client; the private
key never leaves memory. Clients encrypt the login password and proxy build args with RSA-OAEP
(SHA-512) and send the ciphertext hex-encoded; `decrypt_hex` undoes that. Build secrets come
sealed with AES-GCM under a key wrapped the same way (`decrypt`; daemon/secrets.py).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from isula_build.errors import InvalidArgument
from isula_build.store import inflight

PUBLIC_KEY_FILE = "isula-build.pub"
KEY_BITS = 2048
PUBLIC_KEY_MODE = 0o400


class KeyPair:
    def __init__(self) -> None:
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)

    def public_pem(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def write_public_key(self, config_dir: Path) -> Path:
        """Writes the public key atomically, replacing a key left by an earlier daemon."""
        config_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        target = config_dir / PUBLIC_KEY_FILE
        inflight.replace_file(target, self.public_pem(), PUBLIC_KEY_MODE)
        return target

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypts an RSA-OAEP (SHA-512) ciphertext made with our public key."""
        try:
            return self._private.decrypt(ciphertext, padding.OAEP(
                mgf=padding.MGF1(algorithm=hashes.SHA512()),
                algorithm=hashes.SHA512(),
                label=None))
        except ValueError as exc:
            # The key changes at every daemon start: a client holding an old key lands here.
            raise InvalidArgument("cannot decrypt the secret sent by the client (was it encrypted "
                                  f"with the current key in {PUBLIC_KEY_FILE}?)") from exc

    def decrypt_hex(self, ciphertext_hex: str) -> str:
        """Decrypts a hex-encoded RSA-OAEP (SHA-512) ciphertext made with our public key."""
        try:
            return self.decrypt(bytes.fromhex(ciphertext_hex)).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument("cannot decrypt the secret sent by the client (was it encrypted "
                                  f"with the current key in {PUBLIC_KEY_FILE}?)") from exc
