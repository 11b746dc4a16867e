"""Separated save: app images into one base tarball, one lib tarball and one tarball per app.

Everything is checked before a byte is written: names (never IDs), that each app sits on the
lib's layers and the lib on the base's, in order, and the tarball names after renaming. The
tarballs are then streamed straight from the store's layer blobs through the one copy routine
(one copy per app, so the usual "Copying blob" lines are printed), into a temporary directory
beside the destination that is renamed into place only when the manifest is written. The
temporary directory is recorded as in flight (store/inflight.py), so a daemon killed during
the save removes it at its next start.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isula_build.errors import InvalidArgument
from isula_build.image.reference import normalize_name
from isula_build.progress import Report
from isula_build.separated import layout
from isula_build.separated.manifest import TarballInfo, dump_manifest
from isula_build.separated.rename import load_renames
from isula_build.separated.tarball import GzipTarWriter
from isula_build.store import ImageRecord, Store, inflight
from isula_build.store.fsutil import fsync_dir, write_all
from isula_build.transports.base import ImageDestination, LayerInfo
from isula_build.transports.copy import copy_image
from isula_build.transports.store import StoreSource

Log = Callable[[str], None]
Cancel = Callable[[], None]

DIR_MODE = 0o700  # parents of the destination that save creates (the original's DefaultRootDirMode)


@dataclass(frozen=True)
class NamedImage:
    name: str             # normalized "repository:tag"
    record: ImageRecord

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.record.layers]


@dataclass(frozen=True)
class SavePlan:
    """What a separated save will write, decided before anything is."""

    base: NamedImage
    lib: NamedImage | None
    apps: list[NamedImage]          # sorted by name, as the original orders them
    base_tarball: str
    lib_tarball: str
    app_tarballs: dict[str, str]    # app name → tarball name

    @property
    def base_count(self) -> int:
        return len(self.base.record.layers)

    @property
    def lib_count(self) -> int:
        """Layers the lib adds above the base."""
        return len(self.lib.record.layers) - self.base_count if self.lib else 0


def _by_name(store: Store, ref: str, what: str) -> NamedImage:
    """The image a name refers to; an ID (or ID prefix) is refused, as the original does."""
    if not ref:
        raise InvalidArgument(f"{what} image name is empty")
    refused = InvalidArgument(f'using image ID "{ref}" as image name to save separated image '
                              "is not allowed")
    if ref.startswith("sha256:"):
        raise refused
    record = store.lookup(ref)
    if record.id.startswith(ref):
        raise refused
    return NamedImage(normalize_name(ref), record)


def _sits_on(upper: NamedImage, lower: NamedImage) -> bool:
    """True when upper's layers start with all of lower's, in order, and add at least one."""
    low, up = lower.diff_ids, upper.diff_ids
    return len(up) > len(low) and up[:len(low)] == low


def plan_save(store: Store, base: str, lib: str, apps: Sequence[str],
              rename_file: Path | None) -> SavePlan:
    if not apps:
        raise InvalidArgument("no app image given to save")
    base_image = _by_name(store, base, "base")
    if not base_image.record.layers:
        raise InvalidArgument(f"base image {base_image.name} has no layers")
    lib_image = _by_name(store, lib, "lib") if lib else None
    if lib_image is not None and not _sits_on(lib_image, base_image):
        raise InvalidArgument(f"lib image {lib_image.name} is not between base image "
                              f"{base_image.name} and the app images: its layers must be the "
                              "base image's layers followed by at least one of its own")
    lower = lib_image or base_image
    app_images: dict[str, NamedImage] = {}
    for ref in apps:
        app = _by_name(store, ref, "app")
        if not _sits_on(app, base_image):
            raise InvalidArgument(f"app image {app.name} is not built on base image "
                                  f"{base_image.name}: its layers do not start with the base "
                                  "image's layers, or it adds none")
        if not _sits_on(app, lower):
            raise InvalidArgument(f"app image {app.name} is not built on lib image {lower.name}:"
                                  " its layers do not start with the lib image's layers, or it "
                                  "adds none")
        app_images[app.name] = app
    ordered = [app_images[name] for name in sorted(app_images)]
    renames = load_renames(rename_file) if rename_file else {}

    def final(name: str) -> str:
        return renames.get(name, name)

    # The original names the shared base and lib tarballs after the first app (in name order).
    first = ordered[0].name
    base_tarball = final(layout.tarball_name(first, layout.BASE_SUFFIX))
    lib_tarball = final(layout.tarball_name(first, layout.LIB_SUFFIX)) if lib_image else ""
    app_tarballs = {a.name: final(layout.tarball_name(a.name, layout.APP_SUFFIX)) for a in ordered}
    owners: dict[str, str] = {}
    for owner, tarball in [("base image", base_tarball), ("lib image", lib_tarball),
                           *((f"app image {n}", t) for n, t in app_tarballs.items())]:
        if not tarball:
            continue
        if tarball in owners:
            raise InvalidArgument(f"the tarballs of the {owners[tarball]} and the {owner} would "
                                  f"both be named {tarball}; give them distinct names with a "
                                  "rename file (-r)")
        owners[tarball] = owner
    return SavePlan(base_image, lib_image, ordered, base_tarball, lib_tarball, app_tarballs)


# --------------------------------------------------------------------------- the destination dir

def _prepare_destination(dest: Path) -> inflight.Record:
    """Checks dest (absent, or an empty directory) and makes the temporary directory beside it."""
    if not dest.is_absolute():
        raise InvalidArgument(f'destination path "{dest}" must be absolute')
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise InvalidArgument(f"destination {dest} exists and is not a directory")
    if dest.is_dir() and any(os.scandir(dest)):
        raise InvalidArgument(f"destination directory {dest} is not empty; give an empty or new "
                              "directory")
    _make_parents(dest)
    return inflight.new_dir(dest)


def _make_parents(dest: Path) -> None:
    """Makes the missing parents of dest as the original does (Go's MkdirAll with 0700: every
    directory made gets the mode, where Python's mkdir(parents=True) would give the upper ones
    0755). They are left in place if the save fails, as the original leaves them."""
    missing = []
    directory = dest.parent
    while not directory.is_dir():
        if directory.exists() or directory.is_symlink():
            raise InvalidArgument(f"cannot create the destination {dest}: {directory} exists "
                                  "and is not a directory")
        missing.append(directory)
        directory = directory.parent
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)


def _put_in_place(tmp: Path, dest: Path) -> None:
    fsync_dir(tmp)
    try:
        # rename(2) replaces an empty directory and fails on a non-empty one, so a directory
        # someone filled meanwhile is never overwritten.
        os.rename(tmp, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise InvalidArgument(f"destination {dest} changed during the save and is no longer "
                                  "an empty directory") from None
        raise
    fsync_dir(dest.parent)


# ------------------------------------------------------------------------------------ the writing

class _Shared:
    """The base or lib tarball: written along with the first app, then only referred to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: GzipTarWriter | None = None
        self.sha256 = ""


class _AppDestination(ImageDestination):
    """Where copy_image puts one app image: each layer goes to the base, lib or app tarball by
    its position. copy_image asks has_layer once per layer, bottom first, and calls put_layer
    right after a False answer; the position is counted on that order (and checked)."""

    def __init__(self, saver: _Saver, app: NamedImage, app_writer: GzipTarWriter,
                 config: bytes) -> None:
        self._saver = saver
        self._app_writer = app_writer
        self._config = config
        self._diff_ids = app.diff_ids
        self._ids = layout.layer_ids(self._diff_ids)
        self._next = 0
        self._pending: int | None = None

    def _part(self, index: int) -> _Shared | None:
        """The shared tarball of a layer, or None for the app's own layers."""
        plan = self._saver.plan
        if index < plan.base_count:
            return self._saver.base
        if index < plan.base_count + plan.lib_count:
            assert self._saver.lib is not None  # lib_count is 0 without a lib
            return self._saver.lib
        return None

    def has_layer(self, layer: LayerInfo) -> bool:
        index, self._next = self._next, self._next + 1
        if index >= len(self._diff_ids) or layer.diff_id != self._diff_ids[index]:
            raise InvalidArgument(f"layer {layer.diff_id} is not layer {index} of the image")
        shared = self._part(index)
        if shared is not None and shared.sha256:
            return True  # written with an earlier app
        self._pending = index
        return False

    def put_layer(self, layer: LayerInfo, stream: BinaryIO) -> LayerInfo:
        index, self._pending = self._pending, None
        if index is None or layer.diff_id != self._diff_ids[index]:
            raise InvalidArgument(f"layer {layer.diff_id} arrived out of order")
        shared = self._part(index)
        if shared is None:
            writer = self._app_writer
        else:
            if shared.writer is None:
                shared.writer = GzipTarWriter(shared.path, self._saver.cancel)
            writer = shared.writer
        layer_id = self._ids[index]
        size = layer.size  # the store knows it; add_layer checks it
        writer.add_directory(layer_id)
        writer.add_bytes(f"{layer_id}/VERSION", b"1.0")
        writer.add_bytes(f"{layer_id}/json",
                         layout.layer_json(layer_id, self._ids[index - 1] if index else None))
        writer.add_layer(layout.layer_member(layer_id), size, stream, layer.diff_id)
        return LayerInfo(layer.diff_id, size)

    def put_config(self, config: bytes) -> None:
        if config != self._config:
            raise InvalidArgument("the image config changed while the image was being saved")

    def commit(self) -> str:
        if self._next != len(self._diff_ids):
            raise InvalidArgument("not every layer of the image was saved")
        for shared in (self._saver.base, self._saver.lib):
            if shared is not None and shared.writer is not None and not shared.sha256:
                shared.sha256 = shared.writer.finish()
        return hashlib.sha256(self._config).hexdigest()


class _Saver:
    def __init__(self, store: Store, plan: SavePlan, tmp: Path, log: Log, cancel: Cancel,
                 progress: Report | None) -> None:
        self.store = store
        self.progress = progress
        self.plan = plan
        self.tmp = tmp
        self.log = log
        self.cancel = cancel
        self.base = _Shared(tmp / plan.base_tarball)
        self.lib = _Shared(tmp / plan.lib_tarball) if plan.lib_tarball else None
        self._writers: list[GzipTarWriter] = []

    def save_app(self, app: NamedImage) -> TarballInfo:
        self.cancel()
        plan = self.plan
        config = self.store.config_bytes(app.record.id)
        config_hex = hashlib.sha256(config).hexdigest()
        ids = layout.layer_ids(app.diff_ids)
        writer = GzipTarWriter(self.tmp / plan.app_tarballs[app.name], self.cancel)
        self._writers.append(writer)
        # The metadata goes first, so a reader finds it without decompressing the layers.
        writer.add_bytes(f"{config_hex}.json", config)
        writer.add_bytes(layout.ARCHIVE_MANIFEST, layout.archive_manifest(config_hex, [app.name], ids))
        writer.add_bytes(layout.REPOSITORIES, layout.repositories([app.name], ids[-1]))
        destination = _AppDestination(self, app, writer, config)
        with StoreSource(self.store, app.record) as source:
            copy_image(source, destination, self.log, self.progress)
        app_sha256 = writer.finish()
        lib_end = plan.base_count + plan.lib_count
        return TarballInfo(
            app=plan.app_tarballs[app.name], app_hash=app_sha256, app_layers=ids[lib_end:],
            lib=plan.lib_tarball, lib_hash=self.lib.sha256 if self.lib else "",
            lib_image_name=plan.lib.name if plan.lib else "",
            lib_layers=ids[plan.base_count:lib_end] if plan.lib else None,
            base=plan.base_tarball, base_hash=self.base.sha256, base_image_name=plan.base.name,
            base_layer=ids[0])

    def abort(self) -> None:
        for writer in [*self._writers, self.base.writer, self.lib.writer if self.lib else None]:
            if writer is not None:
                writer.abort()


def save_separated(store: Store, plan: SavePlan, dest: Path, log: Log, cancel: Cancel,
                   progress: Report | None = None) -> None:
    """Writes the plan's tarballs and manifest; dest appears only when all of it is written.
    progress: told the bytes of each layer written (see copy_image)."""
    record = _prepare_destination(dest)
    tmp = record.path
    saver = _Saver(store, plan, tmp, log, cancel, progress)
    try:
        entries = {app.name: saver.save_app(app) for app in plan.apps}
        fd = os.open(tmp / layout.MANIFEST_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(fd, memoryview(dump_manifest(entries)))
            os.fsync(fd)
        finally:
            os.close(fd)
        cancel()
        _put_in_place(tmp, dest)
    except BaseException:
        saver.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        record.forget()
