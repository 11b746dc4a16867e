"""What client and daemon agree on for a sealed build secret (BuildSecret in control.proto)."""

from __future__ import annotations

KEY_BYTES = 32      # AES-256
NONCE_BYTES = 12    # the GCM nonce
TAG_BYTES = 16      # the GCM tag, after the ciphertext
MAX_SECRET_SIZE = 500 * 1024    # one secret's value at most (BuildKit's MaxSecretSize)
# All of a build's secrets at most: the request must stay within gRPC's 4 MiB.
MAX_SECRETS_SIZE = 2 << 20


def secret_aad(build_id: str, secret_id: str) -> bytes:
    """The additional data a secret is sealed with: it opens for this build and id only."""
    return f"{build_id}\n{secret_id}".encode()
