"""TLS settings of one registry: the system roots plus `certs.d/HOST[:PORT]/` of the config dir.

As docker and containers/image do, every `*.crt` there is an extra CA, and each `X.cert` with its
`X.key` is a client certificate (the daemon's files use `client.cert` / `client.key`).
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from pathlib import Path

from isula_build.errors import InvalidArgument

CERTS_DIR = "certs.d"


def certs_dir(config_dir: Path, registry: str) -> Path:
    return config_dir / CERTS_DIR / registry


def ssl_context(config_dir: Path, registry: str, verify: bool = True) -> ssl.SSLContext:
    """A client context for registry; verify=False only for registries listed as insecure.

    Contexts are made once per process for the same certs.d files (a changed, added or removed
    file makes a new one): loading the system roots costs tens of milliseconds, more than a
    small pull. As with Go's system cert pool in docker and containers/image, the system roots
    are read once per daemon. An SSLContext may serve many connections on many threads."""
    directory = certs_dir(config_dir, registry)
    return _context(str(directory), verify, _files_of(directory))


def system_context() -> ssl.SSLContext:
    """The system roots only, verifying (made once, like the others)."""
    return _context("", True, ())


def _files_of(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What identifies the contents of directory's files: names, sizes and change times."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return ()
    except OSError as exc:
        raise InvalidArgument(f"cannot use the certificates in {directory}: {exc}") from None
    files = []
    for entry in entries:
        try:
            info = entry.stat()
        except OSError:
            continue
        files.append((entry.name, info.st_size, info.st_mtime_ns))
    return tuple(sorted(files))


_making = threading.Lock()


def _context(directory_name: str, verify: bool,
             files: tuple[tuple[str, int, int], ...]) -> ssl.SSLContext:
    # One maker at a time: threads asking at once (a build reads its cache while it pulls its
    # base) wait for the context the first one makes instead of each making one.
    with _making:
        return _make_context(directory_name, verify, files)


@functools.lru_cache(maxsize=32)
def _make_context(directory_name: str, verify: bool,
                  files: tuple[tuple[str, int, int], ...]) -> ssl.SSLContext:
    if verify:
        context = ssl.create_default_context()
    else:
        # An insecure registry's certificate is not checked: no system roots to load (the
        # tens of milliseconds that loading them costs).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = Path(directory_name)
    if not files:
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
