"""Pull as the daemon does it, for the handlers and the build engine (FROM of a missing image):

    pull_image(store, settings, "busybox", log) -> ImageRecord

The copy goes through copy_image, so it prints the copy lines of SPEC §4. Registries come from
the settings' registries.toml, credentials from auth.json, TLS from certs.d.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from isula_build.errors import FailedPrecondition, NotFound, RegistryUnavailable
from isula_build.image.platform import Platform
from isula_build.progress import Report
from isula_build.registry.blobinfo import BlobInfoCache
from isula_build.registry.config import RegistryPolicy
from isula_build.registry.connect import open_client
from isula_build.registry.names import RemoteRef
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store
from isula_build.transports.copy import copy_image
from isula_build.transports.registry import RegistrySource
from isula_build.transports.store import StoreDestination

_log = logging.getLogger(__name__)


def pull_image(store: Store, settings: RegistrySettings, name: str,
               log: Callable[[str], None], progress: Report | None = None,
               platform: Platform | None = None, named: bool = True) -> ImageRecord:
    """Pulls name (a short name is tried under each registries.search entry, in order) into the
    store, named registry/repository:tag unless not `named`; returns the stored image. From a
    manifest list, the entry for `platform` (this machine's by default). progress: told the
    bytes of each blob downloaded (see copy_image)."""
    candidates = RegistryPolicy(settings.registries).candidates(name)
    failures: list[str] = []
    for ref in candidates:
        try:
            return _pull(store, settings, ref, log, progress, platform, named)
        except (NotFound, RegistryUnavailable, FailedPrecondition) as exc:
            if len(candidates) == 1:
                raise
            _log.info("pull %s from %s: %s", name, ref.registry, exc)
            failures.append(f"{ref.name}: {exc}")
    raise NotFound(f'image "{name}" not found in the search registries: ' + "; ".join(failures))


def _pull(store: Store, settings: RegistrySettings, ref: RemoteRef, log: Callable[[str], None],
          progress: Report | None, platform: Platform | None, named: bool) -> ImageRecord:
    client = open_client(settings, ref)
    blobinfo = BlobInfoCache(settings.data_root)
    try:
        with RegistrySource(client, ref, blobinfo, platform=platform) as src, \
                StoreDestination(store, [ref.name] if named else []) as dst:
            image_id = copy_image(src, dst, log, progress)
    finally:
        blobinfo.close()
    _log.info("pulled %s as image %s", ref.name, image_id)
    return store.lookup(image_id)
