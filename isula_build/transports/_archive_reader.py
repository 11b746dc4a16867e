"""What the docker-archive and oci-archive readers share: one image read in place from an
indexed archive, each layer streamed (decompressed and checked) straight out of its member."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from isula_build.errors import InvalidArgument
from isula_build.progress import BlobMeter, metered
from isula_build.transports._layerstream import open_layer_stream
from isula_build.transports._tario import MemberIndex
from isula_build.transports.base import ImageSource, LayerInfo


@dataclass(frozen=True)
class StoredLayer:
    """Where a layer lies in the archive, as stored (plain or compressed)."""

    member: str                 # the archive member holding it
    kind: str                   # how errors name the member ("layer", "layer blob")
    what: str                   # how errors name the layer while it streams
    blob_digest: str | None     # checked against the stored bytes as they stream; None when
                                # the stored bytes are the plain tar (the diff ID covers them)


class ArchiveSource(ImageSource):
    """Base of the archive readers: subclasses fill in the config, the layers and where each
    layer is stored, closing the source when their constructor fails."""

    def __init__(self, index: MemberIndex) -> None:
        self._index = index.acquire()
        self._closed = False
        self._config = b""
        self._layers: list[LayerInfo] = []
        self._stored: dict[str, StoredLayer] = {}  # by diff ID

    def layers(self) -> list[LayerInfo]:
        return list(self._layers)

    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        return self._open(layer, None)

    def open_metered(self, layer: LayerInfo, meter: BlobMeter) -> BinaryIO:
        # The member as stored (compressed or not) against its size in the archive.
        return self._open(layer, meter)

    def _open(self, layer: LayerInfo, meter: BlobMeter | None) -> BinaryIO:
        stored = self._stored.get(layer.diff_id) if layer.diff_id is not None else None
        if stored is None:
            raise InvalidArgument(f"layer {layer.diff_id} is not part of this image")
        raw = self._index.open(stored.member, stored.kind)
        if meter is not None:
            meter.total = self._index.size(stored.member, stored.kind)
            raw = metered(raw, meter)
        # The destination verifies the diff ID of what it reads (LayerInfo carries it).
        return open_layer_stream(raw, stored.what, stored.blob_digest)

    def config_bytes(self) -> bytes:
        return self._config

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._index.release()
