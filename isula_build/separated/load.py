"""Separated load: the app's tarballs found through the manifest, verified and streamed into the
store as the one complete image that was saved (same config bytes, same layers: same ID).

Nothing is unpacked: each layer is read straight out of its gzip-compressed tarball while the
store hashes and stores it. The checksums of the tarballs are verified before anything is read
from them; the store verifies each layer's diff ID, and the image becomes visible only at the
final commit, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from isula_build.errors import InvalidArgument, NotFound
from isula_build.image import config as image_config
from isula_build.image import jsondoc
from isula_build.image.digest import is_hex_id, sha256_hex
from isula_build.image.reference import normalize_name
from isula_build.progress import Report
from isula_build.separated import layout
from isula_build.separated.manifest import TarballInfo, read_manifest
from isula_build.separated.tarball import GzipTarReader, sha256_file
from isula_build.store import Store
from isula_build.transports._layerstream import open_layer_stream
from isula_build.transports._tario import normalize_member
from isula_build.transports.base import ImageSource, LayerInfo
from isula_build.transports.copy import copy_image
from isula_build.transports.store import StoreDestination

Log = Callable[[str], None]
Cancel = Callable[[], None]
MAX_METADATA_SIZE = 16 << 20
SKIP_CHECK_WARNING = ("Warning: --no-check given, the sha256 checksums of the separated image "
                      "tarballs are not verified")


@dataclass(frozen=True)
class Tarball:
    what: str   # "base tarball", "lib tarball", "app tarball"
    path: Path
    sha256: str


@dataclass(frozen=True)
class LoadPlan:
    app: str
    info: TarballInfo
    base: Tarball
    lib: Tarball | None
    app_tarball: Tarball


def plan_load(directory: Path, app: str, base: Path | None, lib: Path | None) -> LoadPlan:
    """Finds the app in the manifest of directory and where its tarballs are (-b/-l override)."""
    name = normalize_name(app)
    manifest = read_manifest(directory)
    if name not in manifest:
        raise InvalidArgument(f"failed to find app image {name} in the manifest of {directory}")
    info = TarballInfo.from_json(name, manifest[name])
    if not info.app:
        raise InvalidArgument(f"app image {name} tarball can not be empty")
    if not info.base:
        raise InvalidArgument(f"base image {info.base_image_name or name} tarball can not be empty")
    if lib is not None and not info.lib:
        raise InvalidArgument(f"app image {name} was saved without a lib image, but a lib "
                              f"tarball ({lib}) was given")
    lib_tarball = None
    if info.lib:
        lib_tarball = Tarball("lib tarball", lib or directory / info.lib, info.lib_hash)
    return LoadPlan(name, info, Tarball("base tarball", base or directory / info.base, info.base_hash),
                    lib_tarball, Tarball("app tarball", directory / info.app, info.app_hash))


def verify_checksums(plan: LoadPlan, cancel: Cancel) -> None:
    for tarball in (plan.base, plan.lib, plan.app_tarball):
        if tarball is None:
            continue
        got = sha256_file(tarball.path, tarball.what, cancel)
        if got != tarball.sha256:
            raise InvalidArgument(f'check sum for file "{tarball.path}" failed: got {got}, '
                                  f"want {tarball.sha256}")


def check_present(plan: LoadPlan) -> None:
    """Without checksums, at least say which tarball is missing before reading any."""
    for tarball in (plan.base, plan.lib, plan.app_tarball):
        if tarball is None:
            continue
        if not tarball.path.exists():
            raise NotFound(f"{tarball.what} {tarball.path} does not exist")
        if not tarball.path.is_file():
            raise InvalidArgument(f"{tarball.what} {tarball.path} is not a regular file")


@dataclass(frozen=True)
class _Metadata:
    config: bytes
    layer_members: list[str]
    names: list[str]


def _read_metadata(tarball: Tarball, cancel: Cancel) -> _Metadata:
    """manifest.json and the config from the app tarball. Ours come first; the original's are
    among the layers, so the walk stops as soon as both have been seen."""
    found: dict[str, bytes] = {}
    archive_manifest: Any = None
    with GzipTarReader(tarball.path, tarball.what, cancel) as reader:
        for member, info in reader.members():
            if member == layout.ARCHIVE_MANIFEST:
                try:
                    archive_manifest = jsondoc.loads(reader.read(info, MAX_METADATA_SIZE))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise InvalidArgument(f"{tarball.what} {tarball.path}: "
                                          f"{layout.ARCHIVE_MANIFEST} is not valid JSON: {exc}") from None
            elif member.endswith(".json") and is_hex_id(member[:-len(".json")]):
                found[member] = reader.read(info, MAX_METADATA_SIZE)
            if archive_manifest is not None and _config_name(archive_manifest) in found:
                break
    if archive_manifest is None:
        raise InvalidArgument(f"{tarball.what} {tarball.path} has no {layout.ARCHIVE_MANIFEST}")
    entry = _entry(archive_manifest, tarball)
    config_name = normalize_member(entry["Config"])
    if config_name not in found:
        raise InvalidArgument(f"{tarball.what} {tarball.path} has no image config {config_name}")
    config = found[config_name]
    if sha256_hex(config) != config_name[:-len(".json")]:
        raise InvalidArgument(f"{tarball.what} {tarball.path}: image config {config_name} does "
                              "not match its digest")
    return _Metadata(config, [normalize_member(m) for m in entry["Layers"]],
                     list(entry.get("RepoTags") or []))


def _config_name(archive_manifest: Any) -> str | None:
    if isinstance(archive_manifest, list) and archive_manifest \
            and isinstance(archive_manifest[0], dict) \
            and isinstance(archive_manifest[0].get("Config"), str):
        return normalize_member(archive_manifest[0]["Config"])
    return None


def _entry(archive_manifest: Any, tarball: Tarball) -> dict[str, Any]:
    bad = InvalidArgument(f"{tarball.what} {tarball.path}: {layout.ARCHIVE_MANIFEST} must list "
                          "one image with a Config, Layers and RepoTags")
    if _config_name(archive_manifest) is None:
        raise bad
    entry = archive_manifest[0]
    layers, tags = entry.get("Layers"), entry.get("RepoTags")
    if not isinstance(layers, list) or not all(isinstance(l, str) for l in layers):
        raise bad
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise bad
    return entry


class SeparatedSource(ImageSource):
    """The image spread over the base, lib and app tarballs; layers are read in place."""

    def __init__(self, plan: LoadPlan, metadata: _Metadata, cancel: Cancel) -> None:
        self._config = metadata.config
        self._cancel = cancel
        diff_ids = image_config.diff_ids(image_config.parse_config(metadata.config))
        if len(diff_ids) != len(metadata.layer_members):
            raise InvalidArgument(f"{plan.app_tarball.what} {plan.app_tarball.path}: "
                                  f"{layout.ARCHIVE_MANIFEST} lists {len(metadata.layer_members)} "
                                  f"layers, but the image config has {len(diff_ids)}")
        app_ids = set(plan.info.app_layers)
        lib_ids = set(plan.info.lib_layers or [])
        self._diff_ids = diff_ids
        self._where: dict[str, tuple[Tarball, str]] = {}
        for diff_id, member in zip(diff_ids, metadata.layer_members):
            layer_id = member.split("/", 1)[0]
            if layer_id in app_ids:
                tarball = plan.app_tarball
            elif layer_id in lib_ids:
                if plan.lib is None:
                    raise InvalidArgument(f"app image {plan.app} needs lib layer {layer_id}, but "
                                          "the manifest names no lib tarball")
                tarball = plan.lib
            else:
                tarball = plan.base
            # A diff ID repeated in an image has the same bytes wherever it is: one place will do.
            self._where.setdefault(diff_id, (tarball, member))

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(diff_id, -1) for diff_id in self._diff_ids]

    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        if layer.diff_id not in self._where:
            raise InvalidArgument(f"layer {layer.diff_id} is not part of this image")
        tarball, member = self._where[layer.diff_id]
        raw = GzipTarReader(tarball.path, tarball.what, self._cancel).open_member(member)
        # The store checks the diff ID of what this yields.
        return open_layer_stream(raw, f"layer {member!r} of {tarball.what} {tarball.path}")

    def config_bytes(self) -> bytes:
        return self._config


def load_separated(store: Store, plan: LoadPlan, skip_check: bool, log: Log,
                   cancel: Cancel, progress: Report | None = None) -> str:
    """Verifies (unless skip_check) and loads the app image; returns its image ID. progress:
    told the bytes of each layer stored (see copy_image)."""
    if skip_check:
        log(SKIP_CHECK_WARNING)
        check_present(plan)
    else:
        verify_checksums(plan, cancel)
    metadata = _read_metadata(plan.app_tarball, cancel)
    names = [normalize_name(n) for n in metadata.names] or [plan.app]
    with SeparatedSource(plan, metadata, cancel) as source, \
            StoreDestination(store, names) as destination:
        image_id = copy_image(source, destination, log, progress)
    log(f"Loaded image as {image_id}")
    return image_id
