"""The local store as an image source (save, push, outputs) and destination (load, import, pull)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO, Sequence

from isula_build.errors import InvalidArgument
from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.store import ImageRecord, ImageWriter, Store
from isula_build.transports.base import ImageDestination, ImageSource, LayerInfo


class StoreSource(ImageSource):
    """An image of the store. Layers are opened as the plain blob files, which the store verified
    when it wrote them, so archive writers may copy them in the kernel without re-hashing."""

    def __init__(self, store: Store, image: ImageRecord) -> None:
        if image.is_manifest_list:
            # Refused before anything is copied: a list has no config or layers to copy.
            what = image.names[0] if image.names else image.id
            raise InvalidArgument(f"{what} is a manifest list, not an image: push it with "
                                  '"isula-build manifest push"')
        self._store = store
        self._image = image

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(layer.diff_id, layer.size) for layer in self._image.layers]

    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        if layer.diff_id is None:
            raise InvalidArgument("a store layer always has a diff ID")
        return open(self._store.layer_blob_path(layer.diff_id), "rb")

    def config_bytes(self) -> bytes:
        return self._store.config_bytes(self._image.id)


class StoreDestination(ImageDestination):
    """Writes one image into the store through an ImageWriter and names it at commit.

    Use as a context manager (or call close): leaving without commit discards what was written.
    """

    # The writer's put_layer may run on several threads at once (store/writer.py): a pull
    # stores the layers it downloads side by side.
    parallel_layers = 4

    def __init__(self, store: Store, names: Sequence[str], uncached: bool = False) -> None:
        """uncached: see Store.writer (a pull's layers)."""
        self._names = list(names)
        self._writer: ImageWriter = store.writer(uncached)

    def has_layer(self, layer: LayerInfo) -> bool:
        # copy_image does not copy a layer found here, so the image will rely on the stored one:
        # it is pinned from now until the commit.
        return layer.diff_id is not None and self._writer.pin_layers([layer.diff_id])

    def pin_layers(self, diff_ids: Iterable[str]) -> bool:
        """Keeps the store's layers from gc until this destination closes (see
        ImageWriter.pin_layers); True when the store has them all."""
        return self._writer.pin_layers(diff_ids)

    def put_layer(self, layer: LayerInfo, stream: BinaryIO) -> LayerInfo:
        record = self._writer.put_layer(stream, expected_diff_id=layer.diff_id)
        return LayerInfo(record.diff_id, record.size)

    def put_verified_layer(self, layer: LayerInfo, file: VerifiedLayerFile) -> LayerInfo:
        record = self._writer.put_verified_layer(file, expected_diff_id=layer.diff_id)
        return LayerInfo(record.diff_id, record.size)

    def put_config(self, config: bytes) -> None:
        self._writer.put_config(config)

    def commit(self) -> str:
        return self._writer.commit(self._names).id

    def close(self) -> None:
        # Without a commit, the writer removes the blobs it made that nothing else needs.
        self._writer.close()
