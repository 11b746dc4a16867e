"""A shared build cache in a registry (cachedoc.py's artifact): read it, stream its snapshots,
write it.

Everything goes through the registry client under the daemon's registry settings, as pulls and
pushes do (registries.toml's blocked and insecure registries, auth.json, certs.d), with a short
timeout: a cache that does not answer is worth less than the build waiting for it. A write puts
every blob first and the manifest last, so a reader never finds a manifest whose blobs are
missing, and of two writers of one reference the last manifest wins whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from isula_build.distribution.cachedoc import CacheBlob, CacheDocument, read_config, read_manifest
from isula_build.errors import InternalError
from isula_build.image import mediatypes
from isula_build.registry.blobinfo import BlobInfoCache
from isula_build.registry.connect import open_client
from isula_build.registry.names import parse_remote
from isula_build.registry.pipeline import layer_stream
from isula_build.registry.settings import RegistrySettings
from isula_build.transports.base import LayerInfo
from isula_build.transports.registry import OCI_FORMAT, RegistryDestination

# Seconds without progress on a connection: a registry slower than this is treated as down.
CACHE_TIMEOUT = 10.0


class CacheRepository:
    """The cache at one reference (REGISTRY/REPOSITORY[:TAG])."""

    def __init__(self, settings: RegistrySettings, name: str, push: bool = False,
                 timeout: float = CACHE_TIMEOUT) -> None:
        self.name = name
        self.settings = settings
        self.ref = parse_remote(name)
        self.client = open_client(settings, self.ref, push=push, timeout=timeout)

    def read(self) -> CacheDocument:
        """The cache's document (NotFound when there is none yet)."""
        manifest = self.client.get_manifest(self.ref.repository, self.ref.tag)
        config, layers = read_manifest(manifest.data, self.name)
        data = self.client.get_small_blob(self.ref.repository, config.digest)
        return read_config(data, layers, self.name)

    def open_snapshot(self, blob: CacheBlob) -> BinaryIO:
        """The snapshot's tar, uncompressed as it arrives; the read of its end raises when the
        blob's digest is not the one the manifest says."""
        raw = self.client.open_blob(self.ref.repository, blob.digest)
        return layer_stream(raw, blob.digest, f"snapshot {blob.digest} of {self.name}")  # type: ignore[return-value]  # a RawIOBase is a binary stream

    def has(self, digest: str) -> bool:
        return self.client.blob_exists(self.ref.repository, digest)

    def mount(self, digest: str, source: CacheRepository) -> bool:
        """Links a blob another repository of the same registry holds, without a transfer."""
        if source.ref.registry != self.ref.registry or \
                source.ref.repository == self.ref.repository:
            return False
        return self.client.mount_blob(self.ref.repository, digest, source.ref.repository)

    def upload(self, produce: Callable[[], Iterator[bytes]]) -> tuple[str, int]:
        """Uploads a blob (produce is called again for another try); (digest, size)."""
        return self.client.upload_blob(self.ref.repository, produce)

    def push_layer(self, diff_id: str, size: int, path: Path) -> CacheBlob:
        """A stage layer (an uncompressed tar) in the repository, as an image push puts it:
        found with HEAD or mounted when a push of an image already sent it (the blob-info
        cache knows its gzip), else compressed and uploaded."""
        blobinfo = BlobInfoCache(self.settings.data_root)
        try:
            destination = RegistryDestination(self.client, self.ref, OCI_FORMAT, blobinfo)
            layer = LayerInfo(diff_id, size)
            if not destination.has_layer(layer):
                with open(path, "rb") as stream:
                    destination.put_layer(layer, stream)
            for blob in blobinfo.compressed(diff_id):
                if self.ref.repository in blobinfo.locations(blob.digest, self.ref.registry):
                    return CacheBlob(blob.digest, blob.size, diff_id, size)
        finally:
            blobinfo.close()
        raise InternalError(f"layer {diff_id} was pushed to {self.name}, but its blob is unknown")

    def write(self, document: CacheDocument) -> str:
        """Puts the config, then the manifest (its blobs must be there already); the digest."""
        config = document.config_bytes()
        self.client.put_small_blob(self.ref.repository, config)
        return self.client.put_manifest(self.ref.repository, self.ref.tag,
                                        document.manifest_bytes(config), mediatypes.OCI_MANIFEST)


__all__ = ["CACHE_TIMEOUT", "CacheRepository"]
