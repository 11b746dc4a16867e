"""The names and small files of the separated-image format, as the original isula-build writes it.

Each tarball is a gzip-compressed tar holding a slice of a docker-archive in the legacy layout
docker < 25 and containers/image use: one directory per layer, named by the layer's chain ID,
with `layer.tar`, `json` and `VERSION`. The app tarball also holds the image config
`<config hex>.json`, `manifest.json` and `repositories`; unpacking the three tarballs into one
directory gives a complete docker-archive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone

from isula_build.image.digest import hex_of
from isula_build.image.reference import split_name
from isula_build.transports.docker_archive import chain_ids

MANIFEST_FILE = "manifest"            # the checksum manifest in the destination directory
ARCHIVE_MANIFEST = "manifest.json"    # the docker-archive manifest inside the app tarball
REPOSITORIES = "repositories"
LAYER_TAR = "layer.tar"
BASE_SUFFIX = "_base_image.tar.gz"
LIB_SUFFIX = "_lib_image.tar.gz"
APP_SUFFIX = "_app_image.tar.gz"
# The original stamps every member with this time (Go's time.Date(2017, 1, 0) normalizes to the
# last day of 2016), so the same images give the same tarball bytes and checksums.
MEMBER_MTIME = int(datetime(2016, 12, 31, tzinfo=timezone.utc).timestamp())


def tarball_name(image_name: str, suffix: str) -> str:
    """`NAME_TAG<suffix>` from the last path component of the repository and the tag:
    `example.io/library/myapp:v1` → `myapp_v1_app_image.tar.gz`."""
    repository, tag = split_name(image_name)
    return f"{repository.rsplit('/', 1)[-1]}_{tag}{suffix}"


def layer_ids(diff_ids: Sequence[str]) -> list[str]:
    """The directory name of each layer: its chain ID's hex (what containers/image writes)."""
    return [hex_of(chain) for chain in chain_ids(diff_ids)]


def layer_member(layer_id: str) -> str:
    return f"{layer_id}/{LAYER_TAR}"


def layer_json(layer_id: str, parent: str | None) -> bytes:
    """The legacy per-layer `json`; loaders of today read manifest.json and ignore it."""
    data: dict[str, str] = {"id": layer_id}
    if parent:
        data["parent"] = parent
    return json.dumps(data, separators=(",", ":")).encode()


def archive_manifest(config_hex: str, names: Sequence[str], ids: Sequence[str]) -> bytes:
    return json.dumps([{"Config": f"{config_hex}.json", "RepoTags": list(names),
                        "Layers": [layer_member(i) for i in ids]}],
                      separators=(",", ":")).encode()


def repositories(names: Sequence[str], top_layer_id: str) -> bytes:
    result: dict[str, dict[str, str]] = {}
    for name in names:
        repository, tag = split_name(name)
        result.setdefault(repository, {})[tag] = top_layer_id
    return json.dumps(result, separators=(",", ":")).encode()
