"""A root filesystem tarball (plain, gzip or xz tar) presented as a one-layer image, for import.

The layer's diff ID cannot be known without reading the whole file, so the source does not read
it twice: layers() reports the diff ID as unknown (None, size -1), the destination computes it
while storing the stream and returns it from put_layer, copy_image hands the result back through
layers_copied(), and only then is the config (which must list the diff ID) made.

The limit of SPEC §8, 1 GiB, bounds what the import writes: the layer tar as stored, that is
the decompressed content of a gzip or xz file. The original checks only the file's size (in its
client); counting only that let a 3 MB gzip bomb become a 3 GB image. Here the decompressed
bytes are counted as they pass, and the import stops, leaving nothing behind, once they exceed
the limit. The
file's own size is checked against the same limit before anything is read: content never
compresses to more than it was (a few bytes aside), so a larger file could only be refused later.
Device nodes, fifos and the rest of a real root filesystem (a debootstrap'd /dev) are kept, as
docker import keeps them; the store's tar checks still refuse entries that would land outside
the layer.
"""

from __future__ import annotations

import os
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from isula_build.errors import InvalidArgument, NotFound, ResourceExhausted
from isula_build.image.config import import_config
from isula_build.image.compression import GZIP, HEAD_SIZE, XZ, detect_compression
from isula_build.progress import BlobMeter, metered
from isula_build.transports._layerstream import open_layer_stream
from isula_build.transports.base import ImageSource, LayerInfo
from isula_build.units import format_binary_size

MAX_IMPORT_SIZE = 1 << 30  # SPEC §8: an import is at most 1 GiB, uncompressed (see above)
_SUPPORTED = {None, GZIP, XZ}


class ImportSource(ImageSource):
    """The root filesystem tarball at path as a one-layer image of at most `limit` bytes."""

    def __init__(self, path: Path, limit: int = MAX_IMPORT_SIZE) -> None:
        self._path = path
        self._limit = limit
        try:
            self._file = open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"file {path} does not exist") from None
        except IsADirectoryError:
            raise InvalidArgument(f"{path} is a directory, not a tarball") from None
        except OSError as exc:
            raise InvalidArgument(f"cannot open {path}: {exc.strerror}") from None
        try:
            size = os.fstat(self._file.fileno()).st_size
            if size > limit:
                raise ResourceExhausted(f"tarball {path} is {size} bytes, more than the import "
                                        f"limit of {format_binary_size(limit)} ({limit} bytes)")
            kind = detect_compression(self._file.read(HEAD_SIZE))
            if kind not in _SUPPORTED:
                raise InvalidArgument(f"{path}: {kind} compression is not supported for import "
                                      "(use a plain, gzip or xz tarball)")
        except BaseException:
            self._file.close()
            raise
        self._layer = LayerInfo(diff_id=None, size=-1)
        self._stored: list[LayerInfo] | None = None
        self._when = datetime.now(timezone.utc)

    def layers(self) -> list[LayerInfo]:
        return [self._layer]

    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        return self._open(None)

    def open_metered(self, layer: LayerInfo, meter: BlobMeter) -> BinaryIO:
        # The file as it is (compressed or not) against its size.
        return self._open(meter)

    def _open(self, meter: BlobMeter | None) -> BinaryIO:
        # Look at the first tar header through a stream of its own (decompressing one block is
        # cheap), so that content which is no tar at all is refused before anything is stored.
        with self._stream(None) as probe:
            _check_tar_header(probe.read(tarfile.BLOCKSIZE), self._path)
        return self._stream(meter)

    def _stream(self, meter: BlobMeter | None) -> BinaryIO:
        # Reopening through /proc gives each stream its own position on the very file that was
        # checked (not whatever the path names now), and closing it leaves the source usable.
        raw: BinaryIO = open(f"/proc/self/fd/{self._file.fileno()}", "rb")
        if meter is not None:
            meter.total = os.fstat(raw.fileno()).st_size
            raw = metered(raw, meter)
        return open_layer_stream(raw, f"tarball {self._path}", limit=self._limit)

    def layers_copied(self, stored: list[LayerInfo]) -> None:
        self._stored = stored

    def config_bytes(self) -> bytes:
        if self._stored is None:
            raise InvalidArgument("the import config is made after its layer was stored")
        return import_config([layer.diff_id for layer in self._stored if layer.diff_id], self._when)

    def close(self) -> None:
        self._file.close()


def _check_tar_header(block: bytes, path: Path) -> None:
    """Refuses, before anything is stored, content that does not start like a tar archive."""
    if len(block) == tarfile.BLOCKSIZE and not block.strip(b"\0"):
        raise InvalidArgument(f"tarball {path} contains no files")
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        raise InvalidArgument(f"{path} is not a tar archive (plain, gzip or xz)") from None


__all__ = ["ImportSource", "MAX_IMPORT_SIZE"]
