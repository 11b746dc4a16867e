"""ImageWriter: puts one image's layers and config into the store, then commits it.

    with store.writer() as w:
        w.put_layer(stream)            # each layer: an uncompressed tar, read once
        image_id = w.put_config(data)
        w.commit(["busybox:latest"])

Every blob goes to tmp/, is fsynced and renamed into blobs/ only when complete and verified;
commit() is one database transaction, the last step. Blobs the writer has put, and store
layers it relies on (pin_layers; put_config pins the layers its config lists), are pinned
against gc while it is open. Leaving the with-block without a commit removes what the writer
made that nothing else needs. put_layer and put_verified_layer may run on several threads at
once, beside the calls of the thread that owns the writer (a pull stores its layers side by side).

Layers the daemon wrote itself (a build's commit, builder/layertar.py) are hashed and tar-checked
while they are written; the caller hands such a file over with those facts
(put_verified_layer with an image.layerfile.VerifiedLayerFile), and the writer links that very
file into the store instead of reading, hashing and copying it again. Every stream (put_layer)
takes the full path, and is stopped when the data root's filesystem runs into the store's free
space reserve (store/space.py).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from isula_build.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from isula_build.image.config import parse_config
from isula_build.image.digest import hex_of, is_digest, sha256_hex
from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.image.reference import normalize_name
from isula_build.store import fsutil
from isula_build.store.created import parse_created
from isula_build.store.db import Database
from isula_build.store.pipe import copy_checked_tar
from isula_build.store.records import ImageRecord, LayerRecord
from isula_build.store.space import SpaceMeter

if TYPE_CHECKING:
    from isula_build.store.store import Store


def _link_open_file(fd: int, path: Path) -> None:
    """Hard-links the file open as fd at path: the open file itself, not a path that could
    have been swapped meanwhile. (linkat with AT_SYMLINK_FOLLOW on its /proc/self/fd entry;
    os.link only uses linkat when given a dir fd, plain link() would link the magic link.)"""
    proc_fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), path, src_dir_fd=proc_fds, follow_symlinks=True)
    finally:
        os.close(proc_fds)


def _check_expected(expected_diff_id: str | None) -> None:
    if expected_diff_id is not None and not is_digest(expected_diff_id):
        raise InvalidArgument(f'invalid layer digest "{expected_diff_id}"')


class ImageWriter:
    def __init__(self, store: Store, uncached: bool = False) -> None:
        self._store = store
        self._uncached = uncached   # see Store.writer
        self._layers: dict[str, LayerRecord] = {}  # put through this writer, by diff ID
        self._made: set[str] = set()  # blob hexes this writer installed
        self._config: bytes | None = None
        self._config_layers: list[LayerRecord] = []
        self._created: datetime | None = None
        self._committed: ImageRecord | None = None
        self._closed = False

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends the writer: its pins go, and without a commit its own blobs go too."""
        if self._closed:
            return
        self._closed = True
        self._store._unpin_all(id(self))
        if self._committed is None:
            self._store._discard_unreferenced(self._made)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the image writer is already closed")
        if self._committed is not None:
            raise FailedPrecondition("the image writer has already committed its image")

    # --- layers ------------------------------------------------------------------------------

    def has_layer(self, diff_id: str) -> bool:
        """True when the layer need not be put: this writer put or pinned it, or the store holds
        it. Only answers: pin_layers is what keeps a store layer for this writer."""
        self._check_open()
        return diff_id in self._layers or self._store.has_layer(diff_id)

    def pin_layers(self, diff_ids: Iterable[str]) -> bool:
        """Makes this writer rely on layers the store holds: each is pinned (its blob and layer
        dir stay, even if its image is removed meanwhile) until the writer closes, and counts as
        one of its layers. True when every one of them was there. A build pins its base layers
        at FROM, so a concurrent rm cannot take its lower dirs away."""
        self._check_open()
        return all([self._pin_stored(diff_id) for diff_id in diff_ids])

    def _pin_stored(self, diff_id: str) -> bool:
        if diff_id in self._layers:
            return True
        if not self._store.has_layer(diff_id):
            return False
        self._store._pin(id(self), hex_of(diff_id))
        # A remove and gc may have run between the check and the pin; once pinned, a blob that
        # is still there stays, and this writer remembers it as one of its layers.
        try:
            size = self._store.layout.blob(hex_of(diff_id)).stat().st_size
        except FileNotFoundError:
            return False
        self._layers[diff_id] = LayerRecord(diff_id, size)
        return True

    def put_layer(self, stream: BinaryIO, expected_diff_id: str | None = None,
                  limit: int | None = None) -> LayerRecord:
        """Stores an uncompressed layer tar read once from stream: hashed, written to tmp/ and
        checked for unsafe entries in the same pass. InvalidArgument for an unsafe or broken tar
        or a digest other than expected_diff_id; ResourceExhausted past limit bytes or when the
        free space falls below the store's reserve."""
        self._check_open()
        _check_expected(expected_diff_id)
        space = self._store.space.meter()
        tmp = self._store.layout.tmp
        fd, tmp_name = tempfile.mkstemp(prefix="layer-", dir=tmp)
        try:
            digest, size = self._copy_checked(stream, fd, limit, space, self._uncached)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            diff_id = f"sha256:{digest}"
            if expected_diff_id is not None and expected_diff_id != diff_id:
                raise InvalidArgument(f"layer digest mismatch: expected {expected_diff_id}, "
                                      f"got {diff_id}")
            self._install(digest, Path(tmp_name))
        finally:
            if fd >= 0:
                os.close(fd)
            Path(tmp_name).unlink(missing_ok=True)
        record = LayerRecord(diff_id, size)
        self._layers[diff_id] = record
        return record

    def put_verified_layer(self, file: VerifiedLayerFile, expected_diff_id: str | None = None,
                           limit: int | None = None) -> LayerRecord:
        """Stores a layer tar file this daemon wrote and verified itself: hard-linked into the
        store, neither read nor copied again, after the checks put_layer makes (same messages).
        A file changed since it was verified, or one on another filesystem, is read through
        put_layer instead."""
        self._check_open()
        _check_expected(expected_diff_id)
        with open(file.path, "rb") as stream:
            fd = stream.fileno()
            if file.unchanged(os.fstat(fd)):
                adopted = self._adopt(fd, file, expected_diff_id, limit)
                if adopted is not None:
                    self._layers[adopted.diff_id] = adopted
                    return adopted
            return self.put_layer(stream, expected_diff_id, limit)

    def _adopt(self, fd: int, file: VerifiedLayerFile, expected_diff_id: str | None,
               limit: int | None) -> LayerRecord | None:
        """Installs a verified file by hard link. None when it cannot be linked (another
        filesystem): the caller then takes the full path."""
        if limit is not None and file.size > limit:
            raise ResourceExhausted(f"layer is larger than the limit of {limit} bytes")
        if expected_diff_id is not None and expected_diff_id != file.diff_id:
            raise InvalidArgument(f"layer digest mismatch: expected {expected_diff_id}, "
                                  f"got {file.diff_id}")
        os.fsync(fd)
        tmp_path = self._store.layout.tmp / f"layer-{uuid.uuid4().hex}"
        try:
            _link_open_file(fd, tmp_path)
        except OSError:
            return None
        try:
            self._install(hex_of(file.diff_id), tmp_path)
        finally:
            tmp_path.unlink(missing_ok=True)
        return LayerRecord(file.diff_id, file.size)

    @staticmethod
    def _copy_checked(stream: BinaryIO, fd: int, limit: int | None,
                      space: SpaceMeter, uncached: bool) -> tuple[str, int]:
        return copy_checked_tar(stream, fd, limit, space.wrote, uncached)

    def _install(self, hex_digest: str, tmp_path: Path) -> None:
        """Moves a complete, fsynced temporary file to blobs/<hex> (pinned first against gc)."""
        self._store._pin(id(self), hex_digest)
        target = self._store.layout.blob(hex_digest)
        if target.exists():
            return  # content-addressed: the same bytes are already there
        os.rename(tmp_path, target)
        fsutil.fsync_dir(target.parent)
        self._made.add(hex_digest)

    # --- config and commit -------------------------------------------------------------------

    def put_config(self, data: bytes) -> str:
        """Stores the image config; returns the image ID (sha256 of data). The config must be a
        JSON object whose rootfs.diff_ids are layers put through this writer or in the store."""
        self._check_open()
        config = self._parse_config(data)
        layers = []
        for diff_id in config["rootfs"]["diff_ids"]:
            # The image needs every layer it lists: a store layer is pinned until the commit.
            if self._pin_stored(diff_id):
                layers.append(self._layers[diff_id])
            else:
                raise InvalidArgument(f"image config lists layer {diff_id}, which was neither "
                                      "put nor found in the store")
        created = config.get("created")
        self._created = parse_created(created) if created else datetime.now(timezone.utc)
        image_id = sha256_hex(data)
        tmp_path = fsutil.write_durable_tmp(self._store.layout.tmp, "config-", data)
        try:
            self._install(image_id, tmp_path)
        finally:
            tmp_path.unlink(missing_ok=True)
        self._config = data
        self._config_layers = layers
        return image_id

    @staticmethod
    def _parse_config(data: bytes) -> dict:
        config = parse_config(data)
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) and is_digest(d)
                                                     for d in diff_ids):
            raise InvalidArgument('image config has no valid "rootfs.diff_ids" list of '
                                  '"sha256:<hex>" digests')
        created = config.get("created")
        if created is not None and not isinstance(created, str):
            raise InvalidArgument('image config "created" is not a string')
        return config

    def commit(self, names: Sequence[str]) -> ImageRecord:
        """Makes the image visible with the given names, in one transaction. A name held by
        another image moves here; an image already stored only gains the names (SPEC §9)."""
        self._check_open()
        if self._config is None:
            raise FailedPrecondition("commit before put_config: the image has no config")
        normalized = [normalize_name(name) for name in names]
        image_id = sha256_hex(self._config)
        store = self._store
        with store._lock:
            for hex_digest in [image_id, *(hex_of(l.diff_id) for l in self._config_layers)]:
                if not store.layout.blob(hex_digest).is_file():
                    raise FailedPrecondition(f"blob sha256:{hex_digest} vanished before commit")
            assert self._created is not None
            with store._db.transaction() as conn:
                Database.add_image(conn, image_id, self._created, self._config_layers)
                for name in normalized:
                    Database.set_name(conn, name, image_id)
            self._committed = store._db.images([image_id])[0]
        return self._committed
