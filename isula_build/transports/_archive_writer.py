"""What the docker-archive and oci-archive writers share: one archive file that collects several
images, writes each layer once, moves a name to the last image that claims it, and appears at its
path only when closed without error (nothing is left otherwise, even by a killed daemon)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, Sequence

from isula_build.errors import InvalidArgument
from isula_build.image import config as image_config
from isula_build.transports._tario import TarWriter
from isula_build.transports.base import ImageDestination, LayerInfo


class ArchiveWriter(ABC):
    """Base of the archive writers. Subclasses name layer members and write the metadata.

        with Writer(path) as archive:
            for image in images:
                with archive.image(names) as dst:
                    copy_image(src, dst, log)
        # the archive appears at path only when the with-block ends without an exception
    """

    def __init__(self, path: Path) -> None:
        self._tar = TarWriter(path)
        self._blobs: dict[str, int] = {}  # digest → size of every blob written
        self._finished = False

    def image(self, names: Sequence[str]) -> ImageDestination:
        """A destination for one more image, to carry the given names ("repo:tag")."""
        return _ArchiveImage(self, list(names))

    @abstractmethod
    def _layer_member(self, digest_hex: str) -> str:
        """The member name of a layer in the archive."""

    @abstractmethod
    def _commit_image(self, config: bytes, names: list[str]) -> str:
        """Records one image whose layers are written; returns its ID."""

    @abstractmethod
    def _image_count(self) -> int: ...

    @abstractmethod
    def _write_metadata(self) -> None:
        """Writes the files that list the images (manifest.json, index.json …)."""

    def _has_layer(self, diff_id: str | None) -> bool:
        return diff_id is not None and diff_id in self._blobs

    def _put_layer(self, layer: LayerInfo, stream: BinaryIO) -> LayerInfo:
        known = layer.diff_id is not None
        name = self._layer_member(layer.diff_id.removeprefix("sha256:")
                                  if layer.diff_id is not None else "pending")
        # A source whose diff ID is known and verified (the store) is copied without hashing.
        member = self._tar.add_stream(name, stream, trusted=known)
        diff_id = layer.diff_id or member.digest
        assert diff_id is not None
        if member.digest is not None and member.digest != diff_id:
            raise InvalidArgument(f"layer {diff_id} does not match its content (the data read "
                                  f"has digest {member.digest})")
        if not known:
            self._tar.rename(member, self._layer_member(diff_id.removeprefix("sha256:")))
        self._blobs[diff_id] = member.size
        return LayerInfo(diff_id, member.size)

    def _written_diff_ids(self, config: bytes) -> list[str]:
        """The config's diff IDs, all of which must have been written."""
        ids = image_config.diff_ids(image_config.parse_config(config))
        missing = [d for d in ids if d not in self._blobs]
        if missing:
            raise InvalidArgument(f"image config lists layers that were not written: {missing}")
        return ids

    @staticmethod
    def _claim_names(names_by_image: Sequence[list[str]], mine: list[str], names: list[str]) -> None:
        """Gives names to one image; as in the store, a later image takes a name over."""
        for name in names:
            for other in names_by_image:
                if other is not mine and name in other:
                    other.remove(name)
            if name not in mine:
                mine.append(name)

    def close(self) -> None:
        """Writes the metadata and puts the archive in place; on any failure nothing is left."""
        if self._finished:
            return
        try:
            if not self._image_count():
                raise InvalidArgument("no image was written to the archive")
            self._write_metadata()
        except BaseException:
            self.abort()
            raise
        self._finished = True
        self._tar.commit()

    def abort(self) -> None:
        """Removes everything written; no file appears at the target path."""
        if not self._finished:
            self._finished = True
            self._tar.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _ArchiveImage(ImageDestination):
    """One image going into an archive; the archive does the work."""

    def __init__(self, archive: ArchiveWriter, names: list[str]) -> None:
        self._archive = archive
        self._names = names
        self._config: bytes | None = None

    def has_layer(self, layer: LayerInfo) -> bool:
        return self._archive._has_layer(layer.diff_id)

    def put_layer(self, layer: LayerInfo, stream: BinaryIO) -> LayerInfo:
        return self._archive._put_layer(layer, stream)

    def put_config(self, config: bytes) -> None:
        self._config = config

    def commit(self) -> str:
        if self._config is None:
            raise InvalidArgument("image has no config")
        return self._archive._commit_image(self._config, self._names)
