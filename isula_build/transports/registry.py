"""A registry as an image source (pull) and destination (push), over registry/client.py.

Source: the manifest (a manifest list or OCI index is resolved to the platform asked for, this
machine's by default), the config checked against its digest, the layers streamed through the
decompressor with the blob digest checked as the bytes pass (the store checks the diff ID), so a
corrupt blob fails the copy before anything is committed.

Destination: each layer compressed once (gzip, or zstd for OCI images) while it uploads
(chunked PATCH); its compressed digest is remembered (registry/blobinfo.py) so that a later push
with the same algorithm asks the registry (HEAD) or mounts it from another repository instead of
compressing it again. Docker schema 2 or OCI manifests by format.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import BinaryIO

from isula_build.errors import InvalidArgument, NotFound
from isula_build.image import config as image_config
from isula_build.image import mediatypes
from isula_build.image.compressionspec import (
    DEFAULT_COMPRESSION, ZSTD, LayerCompression, require_oci_for_zstd)
from isula_build.image.digest import HashingReader, digest_of
from isula_build.image.jsondoc import load_json_object
from isula_build.image.manifest import Descriptor, choose_platform, is_index, parse_descriptor
from isula_build.image.platform import Platform, matches, of_fields
from isula_build.progress import BlobMeter, metered
from isula_build.registry.blobinfo import BlobInfoCache, CompressedBlob
from isula_build.registry.client import RegistryClient
from isula_build.registry.gzipper import gzip_stream
from isula_build.registry.names import RemoteRef
from isula_build.registry.pipeline import layer_stream
from isula_build.registry.zstdstream import zstd_stream
from isula_build.transports.base import ImageDestination, ImageSource, LayerInfo

DOCKER_FORMAT = "docker"
OCI_FORMAT = "oci"
_COMPRESSED_TYPES = mediatypes.GZIP_LAYER_TYPES | mediatypes.ZSTD_LAYER_TYPES


class RegistrySource(ImageSource):
    # Layers are separate downloads. containers/image runs up to 6 at once; with each layer
    # already a pipeline of threads, 3 keep a few CPUs and the disk busy.
    parallel_layers = 3

    def __init__(self, client: RegistryClient, ref: RemoteRef,
                 blobinfo: BlobInfoCache | None = None, reference: str | None = None,
                 platform: Platform | None = None) -> None:
        """`platform`: the list entry to take (this machine's by default); an image that is
        not a list must be of that platform when one is asked for."""
        self._client = client
        self._ref = ref
        self._blobinfo = blobinfo
        what = f"{ref.repo_path}:{ref.tag}"
        manifest = client.get_manifest(ref.repository, reference or ref.tag)
        listed = is_index(manifest.data, manifest.media_type)
        if listed:
            chosen = choose_platform(load_json_object(manifest.data, what), what, platform)
            manifest = client.get_manifest(ref.repository, chosen.digest)
            if is_index(manifest.data, manifest.media_type):
                raise InvalidArgument(f"{what}: a manifest list inside a manifest list")
        self.manifest = manifest
        document = load_json_object(manifest.data, f"manifest of {what}")
        if document.get("schemaVersion") != 2:
            raise InvalidArgument(f"{what}: only schema 2 / OCI manifests are supported "
                                  f"(schemaVersion {document.get('schemaVersion')!r})")
        config_desc = parse_descriptor(document.get("config"), f"{what}: config")
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument(f"{what}: manifest without a layers array")
        self._blobs = [parse_descriptor(l, f"{what}: layer {n}") for n, l in enumerate(layers)]
        for blob in self._blobs:
            if blob.media_type and blob.media_type not in mediatypes.LAYER_TYPES:
                raise InvalidArgument(f"{what}: layer {blob.digest} has the unsupported media "
                                      f"type {blob.media_type}")
        self._config = client.get_small_blob(ref.repository, config_desc.digest)
        self.config = image_config.parse_config(self._config)
        self._diff_ids = image_config.diff_ids(self.config)
        have = of_fields(self.config)
        if platform is not None and not listed and not matches(platform, have):
            raise NotFound(f"{what}: the image is for {have or 'no platform'}, not {platform}")
        if len(self._diff_ids) != len(self._blobs):
            raise InvalidArgument(f"{what}: the manifest has {len(self._blobs)} layers, the "
                                  f"config {len(self._diff_ids)}")
        self._fetched: list[int] = []

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(diff_id, -1) for diff_id in self._diff_ids]

    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        return self._open(layer, None)

    def open_metered(self, layer: LayerInfo, meter: BlobMeter) -> BinaryIO:
        # What takes the time is the download: the compressed blob against its size.
        return self._open(layer, meter)

    def _open(self, layer: LayerInfo, meter: BlobMeter | None) -> BinaryIO:
        position = next(n for n, d in enumerate(self._diff_ids)
                        if d == layer.diff_id and n not in self._fetched)
        self._fetched.append(position)
        blob = self._blobs[position]
        what = f"layer {blob.digest} of {self._ref.repo_path}"
        blob_stream = self._client.open_blob(self._ref.repository, blob.digest)
        if meter is not None:
            meter.total = blob.size
            blob_stream = metered(blob_stream, meter)
        return layer_stream(blob_stream, blob.digest, what)  # type: ignore[return-value]  # a BufferedReader is a binary stream

    def layers_copied(self, stored: list[LayerInfo]) -> None:
        # Only fetched layers: their blob digest and diff ID were both verified on the way.
        if self._blobinfo is None:
            return
        for position in self._fetched:
            blob = self._blobs[position]
            if blob.media_type in _COMPRESSED_TYPES:
                self._blobinfo.record(self._diff_ids[position],
                                      CompressedBlob(blob.digest, blob.size, blob.media_type),
                                      self._client.registry, self._ref.repository)

    def config_bytes(self) -> bytes:
        return self._config


class RegistryDestination(ImageDestination):
    """Pushes one image to ref (`registry/repository:tag`) in docker or OCI format, its layers
    compressed with `compression` (gzip by default; zstd only in OCI format)."""

    def __init__(self, client: RegistryClient, ref: RemoteRef, image_format: str,
                 blobinfo: BlobInfoCache,
                 compression: LayerCompression = DEFAULT_COMPRESSION,
                 by_digest: bool = False) -> None:
        """by_digest: the manifest is put under its digest, not ref's tag (an image of a
        manifest list, which the list names by digest)."""
        if image_format not in (DOCKER_FORMAT, OCI_FORMAT):
            raise InvalidArgument(f'unknown image format "{image_format}"')
        require_oci_for_zstd(compression, image_format, "the push")
        self._client = client
        self._ref = ref
        self._oci = image_format == OCI_FORMAT
        self._compression = compression
        self._blobinfo = blobinfo
        self._layers: list[tuple[str, CompressedBlob]] = []
        self._config: bytes | None = None
        self._by_digest = by_digest
        self.manifest: Descriptor | None = None  # what was put, once committed

    @property
    def _layer_type(self) -> str:
        if self._compression.algorithm == ZSTD:
            return mediatypes.OCI_LAYER_ZSTD
        return mediatypes.OCI_LAYER_GZIP if self._oci else mediatypes.DOCKER_LAYER_GZIP

    def _compress(self, source: BinaryIO) -> Iterator[bytes]:
        if self._compression.algorithm == ZSTD:
            return zstd_stream(source, self._compression.level)
        return gzip_stream(source, self._compression.level)

    def has_layer(self, layer: LayerInfo) -> bool:
        if layer.diff_id is None:
            return False
        repository = self._ref.repository
        # A blob compressed with the algorithm asked for, at whatever level (as containers/image
        # reuses blobs): the docker and OCI spellings of a gzip layer are the same bytes.
        kinds = mediatypes.ZSTD_LAYER_TYPES if self._compression.algorithm == ZSTD \
            else mediatypes.GZIP_LAYER_TYPES
        for blob in self._blobinfo.compressed(layer.diff_id):
            if blob.media_type not in kinds:
                continue
            found = self._client.blob_exists(repository, blob.digest)
            for other in [] if found else self._blobinfo.locations(blob.digest,
                                                                   self._client.registry):
                if other != repository and self._client.mount_blob(repository, blob.digest, other):
                    found = True
                    break
                self._blobinfo.forget_location(blob.digest, self._client.registry, other)
            if found:
                self._blobinfo.record(layer.diff_id, blob, self._client.registry, repository)
                self._layers.append((layer.diff_id, blob))
                return True
        return False

    def put_layer(self, layer: LayerInfo, stream: BinaryIO) -> LayerInfo:
        # A plain store file vouches for its diff ID (base.py); anything else is hashed.
        vouched = isinstance(stream, io.BufferedReader) and isinstance(stream.raw, io.FileIO) \
            and layer.diff_id is not None
        readers: list[HashingReader | None] = []  # one per try of the upload

        def produce() -> Iterator[bytes]:
            if readers:  # a new try: read the layer again from its start
                if not stream.seekable():
                    raise InvalidArgument("the layer stream cannot be read again for a retry")
                stream.seek(0)
            reader = None if vouched else HashingReader(stream)
            readers.append(reader)
            return self._compress(reader if reader is not None else stream)  # type: ignore[arg-type]  # HashingReader is a binary stream

        digest, size = self._client.upload_blob(self._ref.repository, produce)
        diff_id, count = layer.diff_id, layer.size
        last = readers[-1]
        if last is not None:
            diff_id, count = last.digest, last.count
            if layer.diff_id is not None and layer.diff_id != diff_id:
                raise InvalidArgument(f"layer digest mismatch: expected {layer.diff_id}, "
                                      f"got {diff_id}")
        assert diff_id is not None
        blob = CompressedBlob(digest, size, self._layer_type)
        self._blobinfo.record(diff_id, blob, self._client.registry, self._ref.repository)
        self._layers.append((diff_id, blob))
        return LayerInfo(diff_id, count)

    def put_config(self, config: bytes) -> None:
        self._config = config

    def manifest_bytes(self) -> tuple[bytes, str]:
        assert self._config is not None
        if self._oci:
            media_type, config_type = mediatypes.OCI_MANIFEST, mediatypes.OCI_CONFIG
        else:
            media_type, config_type = mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_CONFIG
        document = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": Descriptor(config_type, digest_of(self._config), len(self._config)).to_json(),
            "layers": [Descriptor(self._layer_type, blob.digest, blob.size).to_json()
                       for _, blob in self._layers],
        }
        return json.dumps(document, indent=3).encode(), media_type

    def commit(self) -> str:
        if self._config is None:
            raise InvalidArgument("push: no image config was given")
        repository = self._ref.repository
        self._client.put_small_blob(repository, self._config)
        data, media_type = self.manifest_bytes()
        reference = digest_of(data) if self._by_digest else self._ref.tag
        digest = self._client.put_manifest(repository, reference, data, media_type)
        self.manifest = Descriptor(media_type, digest, len(data))
        return digest_of(self._config).split(":", 1)[1]
