"""BuildRequest.secrets (`build --secret`) opened: the AES-256 key unwrapped with the daemon's
private key (RSA-OAEP, SHA-512), the value opened with AES-256-GCM, the additional data
"<buildID>\\n<id>" binding it to this build and id (see BuildSecret in control.proto).

Errors name the secret's id only; the values go nowhere but into the ClientSecrets the build
reads (builder/session.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from isula_build.api import control_pb2 as pb
from isula_build.api.sealed import KEY_BYTES, MAX_SECRET_SIZE, NONCE_BYTES, TAG_BYTES, secret_aad
from isula_build.builder.session import ClientSecrets
from isula_build.daemon.keys import KeyPair
from isula_build.errors import InvalidArgument


def open_secrets(keys: KeyPair, build_id: str, sealed: Iterable[pb.BuildSecret]) -> ClientSecrets:
    values: dict[str, bytes] = {}
    for secret in sealed:
        if not secret.id:
            raise InvalidArgument("a build secret without an id")
        if secret.id in values:
            raise InvalidArgument(f'build secret "{secret.id}" is given twice')
        if len(secret.sealed) > MAX_SECRET_SIZE + TAG_BYTES:
            raise InvalidArgument(f'build secret "{secret.id}" is larger than '
                                  f"{MAX_SECRET_SIZE // 1024} KiB")
        key = keys.decrypt(secret.wrappedKey)
        if len(key) != KEY_BYTES or len(secret.nonce) != NONCE_BYTES:
            raise InvalidArgument(f'build secret "{secret.id}" is not sealed with AES-256-GCM')
        try:
            values[secret.id] = AESGCM(key).decrypt(secret.nonce, secret.sealed,
                                                    secret_aad(build_id, secret.id))
        except InvalidTag:
            raise InvalidArgument(f'build secret "{secret.id}" does not open: it was sealed for '
                                  "another build or id, or changed on the way") from None
    return ClientSecrets(values)


__all__ = ["open_secrets"]
