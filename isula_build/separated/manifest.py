"""The `manifest` file of a separated save: for each app image, its tarballs and their sha256.

A JSON object keyed by app image name ("app:latest"); each value has the fields of the original
isula-build's tarballInfo, in its order (Go writes struct fields in declaration order and map
keys sorted, as done here). Checksums are bare 64 hex of the tarball files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isula_build.errors import InvalidArgument, NotFound
from isula_build.image import jsondoc
from isula_build.image.digest import is_hex_id
from isula_build.separated.layout import MANIFEST_FILE

MAX_MANIFEST_SIZE = 16 << 20


@dataclass
class TarballInfo:
    app: str = ""                 # file names in the same directory as the manifest
    app_hash: str = ""
    app_layers: list[str] = field(default_factory=list)  # layer IDs (chain ID hex) of each part
    lib: str = ""
    lib_hash: str = ""
    lib_image_name: str = ""
    lib_layers: list[str] | None = None  # null, as Go writes a nil slice, when there is no lib
    base: str = ""
    base_hash: str = ""
    base_image_name: str = ""
    base_layer: str = ""          # the first base layer's ID

    def to_json(self) -> dict[str, Any]:
        return {"app": self.app, "appHash": self.app_hash, "appLayers": self.app_layers,
                "lib": self.lib, "libHash": self.lib_hash, "libImageName": self.lib_image_name,
                "libLayers": self.lib_layers, "base": self.base, "baseHash": self.base_hash,
                "baseImageName": self.base_image_name, "baseLayer": self.base_layer}

    @classmethod
    def from_json(cls, key: str, value: Any) -> TarballInfo:
        if not isinstance(value, dict):
            raise InvalidArgument(f"manifest entry of {key} is not a JSON object")

        def text(name: str) -> str:
            item = value.get(name) or ""
            if not isinstance(item, str):
                raise InvalidArgument(f'manifest entry of {key}: "{name}" is not a string')
            return item

        def ids(name: str) -> list[str] | None:
            item = value.get(name)
            if item is not None and not (isinstance(item, list)
                                         and all(isinstance(i, str) for i in item)):
                raise InvalidArgument(f'manifest entry of {key}: "{name}" is not a list of strings')
            return item

        info = cls(app=text("app"), app_hash=text("appHash"), app_layers=ids("appLayers") or [],
                   lib=text("lib"), lib_hash=text("libHash"), lib_image_name=text("libImageName"),
                   lib_layers=ids("libLayers"), base=text("base"), base_hash=text("baseHash"),
                   base_image_name=text("baseImageName"), base_layer=text("baseLayer"))
        for name in (info.app, info.lib, info.base):
            if name and (os.sep in name or name in (".", "..", MANIFEST_FILE)):
                raise InvalidArgument(f"manifest entry of {key}: tarball name {name!r} is not a "
                                      "file name in the manifest's directory")
        for name, digest in ((info.app, info.app_hash), (info.lib, info.lib_hash),
                             (info.base, info.base_hash)):
            if name and not is_hex_id(digest):
                raise InvalidArgument(f"manifest entry of {key}: the sha256 of {name} is not "
                                      "64 hex digits")
        return info


def dump_manifest(entries: dict[str, TarballInfo]) -> bytes:
    return json.dumps({key: entries[key].to_json() for key in sorted(entries)},
                      separators=(",", ":")).encode()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The raw manifest object of a directory (entries are parsed on demand)."""
    path = directory / MANIFEST_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NotFound(f"manifest file {path} does not exist") from None
    if not path.is_file():
        raise InvalidArgument(f"manifest file {path} is not a regular file")
    if size > MAX_MANIFEST_SIZE:
        raise InvalidArgument(f"manifest file {path} is {size} bytes, more than the "
                              f"{MAX_MANIFEST_SIZE} allowed")
    try:
        data = jsondoc.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"load manifest file {path} failed: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"load manifest file {path} failed: not a JSON object of app images")
    return data
