"""build --secret: BuildKit's syntax, read by the client and sealed for the daemon.

`--secret id=ID,src=FILE` (or `source=`), `--secret id=ID,env=VARIABLE`, `type=file|env`
(with type=env, `src` names the variable), and `--secret id=ID` alone: the variable ID when
it is set, else the file ID (buildx's rule). The client reads every value itself — the daemon
never opens a path on a client's say-so — and sends it sealed with the daemon's public key
(crypto.seal; BuildSecret in control.proto).
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from isula_build.api.sealed import MAX_SECRET_SIZE, MAX_SECRETS_SIZE
from isula_build.errors import InvalidArgument

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

SECRET_TYPES = ("file", "env")


@dataclass(frozen=True)
class SecretSource:
    id: str
    file: str = ""   # as given (read relative to the client's directory)
    env: str = ""


def _fields(value: str) -> list[str]:
    try:
        records = list(csv.reader(io.StringIO(value), strict=True))
    except csv.Error as exc:
        raise InvalidArgument(f"invalid --secret {value!r}: {exc}") from None
    if len(records) != 1:
        raise InvalidArgument(f"invalid --secret {value!r}: expected one line of key=value fields")
    return records[0]


def parse_secret(value: str, environ: Mapping[str, str]) -> SecretSource:
    kind, ident, source, env = "", "", "", ""
    for field in _fields(value):
        key, eq, text = field.partition("=")
        key = key.strip().lower()
        if not eq:
            raise InvalidArgument(f"invalid --secret {value!r}: field '{field}' must be a "
                                  "key=value pair")
        if key == "type":
            if text not in SECRET_TYPES:
                raise InvalidArgument(f"invalid --secret {value!r}: unsupported secret type "
                                      f"{text!r} (use file or env)")
            kind = text
        elif key == "id":
            ident = text
        elif key in ("src", "source"):
            source = text
        elif key == "env":
            env = text
        else:
            raise InvalidArgument(f"invalid --secret {value!r}: unexpected key '{key}' (use "
                                  "id, src, env or type)")
    if not ident:
        raise InvalidArgument(f"invalid --secret {value!r}: the id is missing (id=ID)")
    if kind == "env" and not env:
        source, env = "", source or ident
    if source and env:
        raise InvalidArgument(f"invalid --secret {value!r}: give src or env, not both")
    if not source and not env:
        if kind != "file" and ident in environ:
            env = ident
        else:
            source = ident
    return SecretSource(ident, source, env)


def _read_file(source: SecretSource) -> bytes:
    try:
        fd = os.open(source.file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        raise InvalidArgument(f'--secret id={source.id}: cannot read {source.file}: '
                              f"{exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidArgument(f"--secret id={source.id}: {source.file} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_SECRET_SIZE + 1)


def read_secret(source: SecretSource, environ: Mapping[str, str]) -> bytes:
    if source.env:
        if source.env not in environ:
            raise InvalidArgument(f"--secret id={source.id}: the environment variable "
                                  f"{source.env} is not set")
        value = os.fsencode(environ[source.env])
    else:
        value = _read_file(source)
    if len(value) > MAX_SECRET_SIZE:
        raise InvalidArgument(f"--secret id={source.id}: the secret is larger than "
                              f"{MAX_SECRET_SIZE // 1024} KiB")
    return value


def load_secrets(values: list[str], environ: Mapping[str, str]) -> dict[str, bytes]:
    """The secrets of the --secret flags, read; refused: a repeated id, too much in all."""
    secrets: dict[str, bytes] = {}
    for value in values:
        source = parse_secret(value, environ)
        if source.id in secrets:
            raise InvalidArgument(f"--secret id={source.id} is given twice")
        secrets[source.id] = read_secret(source, environ)
    if sum(len(v) for v in secrets.values()) > MAX_SECRETS_SIZE:
        raise InvalidArgument(f"the secrets of one build may hold {MAX_SECRETS_SIZE >> 20} MiB "
                              "in all")
    return secrets


def seal_secrets(secrets: Mapping[str, bytes], build_id: str, key: RSAPublicKey) -> list[Any]:
    """The BuildSecret messages of `secrets`, each sealed for this build and id."""
    from isula_build.api import control_pb2
    from isula_build.api.sealed import secret_aad
    from isula_build.cli.crypto import seal

    sealed = []
    for ident, value in secrets.items():
        wrapped, nonce, box = seal(value, secret_aad(build_id, ident), key)
        sealed.append(control_pb2.BuildSecret(id=ident, wrappedKey=wrapped, nonce=nonce,
                                              sealed=box))
    return sealed


__all__ = ["SecretSource", "load_secrets", "parse_secret", "read_secret", "seal_secrets"]
