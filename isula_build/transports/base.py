"""The two sides of every image copy: where an image comes from and where it goes.

Each transport (the store, docker-archive, oci-archive, a root filesystem tarball …) implements one
or both classes; `copy.copy_image` is the only code that moves an image between them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Self

from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.progress import BlobMeter, metered


@dataclass(frozen=True)
class LayerInfo:
    """One layer as the copy routine sees it.

    diff_id is None when the source cannot know it before the layer is read (a root filesystem
    tarball being imported); the destination then computes it while writing and returns it from
    put_layer.
    """

    diff_id: str | None  # "sha256:<hex>" of the uncompressed tar
    size: int            # uncompressed size in bytes, -1 when unknown


class ImageSource(ABC):
    """Reads one image. Close it (or use it as a context manager) when done."""

    # How many layers open_layer may stream at once, each on a thread of its own (copy_image
    # uses the smaller of this and the destination's). A registry's layers are independent
    # downloads; files and builds are read one after another.
    parallel_layers = 1

    @abstractmethod
    def layers(self) -> list[LayerInfo]:
        """The layers, bottom first."""

    @abstractmethod
    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        """An uncompressed tar stream of the layer; the caller closes it.

        Returning a plain file (`open(path, "rb")`) vouches that its bytes match layer.diff_id:
        archive writers then copy it in the kernel without hashing. Sources of unverified data
        return any other stream, which destinations hash and check.
        """

    def open_metered(self, layer: LayerInfo, meter: BlobMeter) -> BinaryIO:
        """open_layer with the bytes read counted by meter (a client watches the progress).
        By default the uncompressed stream is counted against layer.size; a source whose
        layers are stored compressed counts the stored bytes instead, against their size
        (setting meter.total), since those are what take the time."""
        return metered(self.open_layer(layer), meter)

    def verified_file(self, layer: LayerInfo) -> VerifiedLayerFile | None:
        """The layer as a file this daemon wrote and verified itself (a build's own layer), or
        None: copy_image then hands the file with its facts to put_verified_layer instead of
        opening the layer. Default None."""
        return None

    @abstractmethod
    def config_bytes(self) -> bytes:
        """The image config. copy_image asks for it only after every layer was copied."""

    def layers_copied(self, stored: list[LayerInfo]) -> None:
        """Told what the destination stored for each layer (diff IDs and sizes, in order).

        A source whose layers() had unknown diff IDs builds its config from these; the others
        have nothing to learn.
        """

    def close(self) -> None:
        """Releases open files."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ImageDestination(ABC):
    """Writes one image. Nothing is visible until commit; close without commit discards."""

    # How many put_layer calls may run at once, on threads of their own. Destinations that
    # write the layers in the order they come (archives, a registry's manifest) keep 1.
    parallel_layers = 1

    @abstractmethod
    def has_layer(self, layer: LayerInfo) -> bool:
        """True when the layer is already there and need not be copied."""

    @abstractmethod
    def put_layer(self, layer: LayerInfo, stream: BinaryIO) -> LayerInfo:
        """Stores an uncompressed layer tar; returns its actual diff ID and size.

        When layer.diff_id is known the destination refuses data that does not match it
        (InvalidArgument), so sources need not hash layers themselves.
        """

    def put_verified_layer(self, layer: LayerInfo, file: VerifiedLayerFile) -> LayerInfo:
        """Stores a layer the source wrote and verified itself (ImageSource.verified_file). By
        default it is opened and put as a plain file (archive writers copy it in the kernel);
        the store's destination links the file in without reading it."""
        with open(file.path, "rb") as stream:
            return self.put_layer(layer, stream)

    @abstractmethod
    def put_config(self, config: bytes) -> None:
        """Stores the image config (after the layers)."""

    @abstractmethod
    def commit(self) -> str:
        """Writes the manifest and makes the image visible; returns the image ID."""

    def close(self) -> None:
        """Releases resources; without a prior commit, discards what was written."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
