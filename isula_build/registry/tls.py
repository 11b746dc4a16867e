"""TLS settings of one registry: the system roots plus `certs.d/HOST[:PORT]/` of the config dir.

As docker and containers/image do, every `*.crt` there is an extra CA, and each `X.cert` with its
`X.key` is a client certificate (the daemon's files use `client.cert` / `client.key`).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from isula_build.errors import InvalidArgument

CERTS_DIR = "certs.d"


def certs_dir(config_dir: Path, registry: str) -> Path:
    return config_dir / CERTS_DIR / registry


def ssl_context(config_dir: Path, registry: str, verify: bool = True) -> ssl.SSLContext:
    """A client context for registry; verify=False only for registries listed as insecure."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = certs_dir(config_dir, registry)
    if not directory.is_dir():
        return context
    try:
        for ca in sorted(directory.glob("*.crt")):
            context.load_verify_locations(cafile=str(ca))
        for cert in sorted(directory.glob("*.cert")):
            key = cert.with_suffix(".key")
            if not key.is_file():
                raise InvalidArgument(f"client certificate {cert} has no key file {key.name}")
            context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise InvalidArgument(f"cannot use the certificates in {directory}: {exc}") from None
    return context
