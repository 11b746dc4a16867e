"""Pull and push as the daemon does them, for the handlers and the build engine.

    pull_image(state, "busybox", log) -> ImageRecord            # FROM of a missing image
    push_image(state, "app:1", "127.0.0.1:5000/app:1", "docker", log)  # build -o docker://…

Both go through the one copy routine, so they print the copy lines of SPEC §4. Registries come
from the daemon's parsed registries.toml, credentials from auth.json, TLS from certs.d.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from isula_build.errors import FailedPrecondition, NotFound, RegistryUnavailable
from isula_build.registry.blobinfo import BlobInfoCache
from isula_build.registry.client import RegistryClient
from isula_build.registry.config import RegistryPolicy
from isula_build.registry.credentials import AuthFile, Credentials
from isula_build.registry.names import RemoteRef, parse_remote
from isula_build.store import ImageRecord
from isula_build.transports.copy import copy_image
from isula_build.transports.registry import RegistryDestination, RegistrySource
from isula_build.transports.store import StoreDestination, StoreSource

if TYPE_CHECKING:
    from isula_build.daemon.options import DaemonOptions
    from isula_build.daemon.state import DaemonState

_log = logging.getLogger(__name__)
Log = Callable[[str], None]
POLICY_TRANSPORT = "docker"  # the transport name policy.json uses for registries


def open_client(options: DaemonOptions, ref: RemoteRef, push: bool = False) -> RegistryClient:
    """A client for ref's registry with the daemon's settings; refuses blocked registries and
    images policy.json rejects."""
    policy = RegistryPolicy(options.registries)
    policy.check_allowed(ref)
    if not options.policy.accepts(POLICY_TRANSPORT, ref.repo_path):
        raise FailedPrecondition(f"policy.json rejects images of {ref.repo_path}")
    return RegistryClient(ref.registry, options.config_dir, policy.is_insecure(ref.registry),
                          AuthFile(options.config_dir).get(ref.registry), push=push)


def pull_image(state: DaemonState, name: str, log: Log) -> ImageRecord:
    """Pulls name (a short name is tried under each registries.search entry, in order) into the
    store, named registry/repository:tag; returns the stored image."""
    candidates = RegistryPolicy(state.options.registries).candidates(name)
    failures: list[str] = []
    for ref in candidates:
        try:
            return _pull(state, ref, log)
        except (NotFound, RegistryUnavailable, FailedPrecondition) as exc:
            if len(candidates) == 1:
                raise
            _log.info("pull %s from %s: %s", name, ref.registry, exc)
            failures.append(f"{ref.name}: {exc}")
    raise NotFound(f'image "{name}" not found in the search registries: ' + "; ".join(failures))


def _pull(state: DaemonState, ref: RemoteRef, log: Log) -> ImageRecord:
    client = open_client(state.options, ref)
    blobinfo = BlobInfoCache(state.options.data_root)
    try:
        with RegistrySource(client, ref, blobinfo) as src, \
                StoreDestination(state.store, [ref.name]) as dst:
            image_id = copy_image(src, dst, log)
    finally:
        blobinfo.close()
    _log.info("pulled %s as image %s", ref.name, image_id)
    return state.store.lookup(image_id)


def push_image(state: DaemonState, image_ref: str, dest: str, image_format: str,
               log: Log) -> str:
    """Pushes the stored image image_ref to dest (registry/repository[:tag]) in image_format
    ("docker" or "oci"); returns the manifest digest."""
    ref = parse_remote(dest)
    image = state.store.lookup(image_ref)
    client = open_client(state.options, ref, push=True)
    blobinfo = BlobInfoCache(state.options.data_root)
    try:
        with StoreSource(state.store, image) as src, \
                RegistryDestination(client, ref, image_format, blobinfo) as dst:
            copy_image(src, dst, log)
            digest = dst.manifest_digest
    finally:
        blobinfo.close()
    assert digest is not None
    _log.info("pushed image %s to %s (%s)", image.id, ref.name, digest)
    return digest


def login_check(options: DaemonOptions, server: str, credentials: Credentials) -> None:
    """FailedPrecondition unless the registry accepts the credentials."""
    policy = RegistryPolicy(options.registries)
    policy.check_registry(server)
    RegistryClient(server, options.config_dir, policy.is_insecure(server),
                   credentials).check_login()
