"""Push as the daemon does it, for the handlers and the build engine (`build -o docker://…`):

    push_image(store, settings, "app:1", "127.0.0.1:5000/app:1", "docker", log) -> digest
    push_image(..., "oci", log, parse_compression("zstd:3"))   # zstd layers (OCI only)

The copy goes through copy_image, so it prints the copy lines of SPEC §4. Registries come from
the settings' registries.toml, credentials from auth.json, TLS from certs.d; the compressed
blobs pushed are remembered in the settings' blob-info cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from isula_build.image.compressionspec import DEFAULT_COMPRESSION, LayerCompression
from isula_build.progress import Report
from isula_build.image.manifest import Descriptor
from isula_build.registry.blobinfo import BlobInfoCache
from isula_build.registry.connect import open_client
from isula_build.registry.names import parse_remote
from isula_build.registry.settings import RegistrySettings
from isula_build.store import Store
from isula_build.transports.copy import copy_image
from isula_build.transports.registry import RegistryDestination
from isula_build.transports.store import StoreSource

_log = logging.getLogger(__name__)


def push_image(store: Store, settings: RegistrySettings, image_ref: str, dest: str,
               image_format: str, log: Callable[[str], None],
               progress: Report | None = None,
               compression: LayerCompression = DEFAULT_COMPRESSION) -> str:
    """Pushes the stored image image_ref to dest (registry/repository[:tag]) in image_format
    ("docker" or "oci"), its layers compressed with `compression` (zstd needs "oci": refused
    before the registry is contacted); returns the manifest digest. progress: told the bytes of
    each layer read for its upload (see copy_image)."""
    return _push(store, settings, image_ref, dest, image_format, log, False, progress,
                 compression).digest


def push_list_image(store: Store, settings: RegistrySettings, image_ref: str, dest: str,
                    image_format: str, log: Callable[[str], None]) -> Descriptor:
    """Pushes an image of a manifest list into dest's repository under its digest (no tag);
    returns the descriptor of the manifest put, for the list's entry."""
    return _push(store, settings, image_ref, dest, image_format, log, True)


def _push(store: Store, settings: RegistrySettings, image_ref: str, dest: str,
          image_format: str, log: Callable[[str], None], by_digest: bool,
          progress: Report | None = None,
          compression: LayerCompression = DEFAULT_COMPRESSION) -> Descriptor:
    ref = parse_remote(dest)
    image = store.lookup(image_ref)
    client = open_client(settings, ref, push=True)
    blobinfo = BlobInfoCache(settings.data_root)
    try:
        with StoreSource(store, image) as src, \
                RegistryDestination(client, ref, image_format, blobinfo, compression,
                                    by_digest) as dst:
            copy_image(src, dst, log, progress)
            manifest = dst.manifest
    finally:
        blobinfo.close()
    assert manifest is not None
    _log.info("pushed image %s to %s (%s)", image.id, ref.name, manifest.digest)
    return manifest
