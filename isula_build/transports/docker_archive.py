"""docker-archive: the tarball `docker save` writes and `docker load` reads (SPEC §7).

Reading accepts the three layouts in use: docker before 25 (`<id>/layer.tar`, duplicates as
symbolic links), docker 25 and later (an OCI layout whose blobs `manifest.json` points at as
`blobs/sha256/<hex>`), and skopeo / containers/image (`<diffid-hex>.tar`). Layers may be plain or
compressed tars. Writing produces the containers/image layout: `<diffid-hex>.tar` layers
(uncompressed), `<config-hex>.json` configs, `manifest.json` and `repositories`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from isula_build.errors import InvalidArgument
from isula_build.image import config as image_config
from isula_build.image.digest import digest_of, hex_of, sha256_hex
from isula_build.image.reference import split_name
from isula_build.image.compression import HEAD_SIZE, detect_compression
from isula_build.transports._archive_reader import ArchiveSource, StoredLayer
from isula_build.transports._archive_writer import ArchiveWriter
from isula_build.transports._tario import TarIndex
from isula_build.transports.base import ImageSource, LayerInfo

MANIFEST = "manifest.json"
# The config's file name carries its digest in every layout we know: "<hex>.json" (docker < 25,
# skopeo), "blobs/sha256/<hex>" (docker >= 25), "sha256:<hex>" (go-containerregistry).
_DIGEST_NAME_RE = re.compile(r"(?:^|/)(?:sha256:)?([0-9a-f]{64})(?:\.json)?$")


# ---------------------------------------------------------------------------------------- reading

class DockerArchiveSource(ArchiveSource):
    """One image of a docker-archive, read in place."""

    def __init__(self, index: TarIndex, config_name: str, layer_names: list[str]) -> None:
        super().__init__(index)
        self._tar = index   # a tar's members have sizes (a layout directory's need none)
        try:
            self._config = self._read_config(config_name)
            ids = image_config.diff_ids(image_config.parse_config(self._config))
            if len(ids) != len(layer_names):
                raise InvalidArgument(
                    f"{index.path}: {MANIFEST} lists {len(layer_names)} layers for config "
                    f"{config_name!r}, but the config has {len(ids)} diff_ids")
            self._stored = {diff_id: StoredLayer(name, "layer", f"layer {name!r} of {index.path}",
                                                 None)
                            for diff_id, name in zip(ids, layer_names)}
            self._layers = [self._layer_info(diff_id, name) for diff_id, name in zip(ids, layer_names)]
        except BaseException:
            self.close()
            raise

    def _read_config(self, name: str) -> bytes:
        data = self._index.read(name, "image config")
        match = _DIGEST_NAME_RE.search(name)
        if match and sha256_hex(data) != match.group(1):
            raise InvalidArgument(f"{self._index.path}: config {name!r} does not match its digest "
                                  f"(content is sha256:{sha256_hex(data)})")
        return data

    def _layer_info(self, diff_id: str, name: str) -> LayerInfo:
        member = self._tar.member(name, "layer")
        with self._index.open(name, "layer") as raw:
            head = raw.read(HEAD_SIZE)
        # A plain tar's size is the member's; a compressed one's is known only once read.
        plain = detect_compression(head) is None
        return LayerInfo(diff_id, member.size if plain else -1)


def _string_list(value: Any, field: str, path: Path) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{path}: {MANIFEST}: {field} must be a list of strings")
    return list(value)


def read_docker_archive(index: TarIndex) -> list[tuple[ImageSource, list[str]]]:
    """One (source, RepoTags) per entry of manifest.json, in its order."""
    entries = index.read_json(MANIFEST, "file")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument(f"{index.path}: {MANIFEST} must be a non-empty list of images")
    images: list[tuple[ImageSource, list[str]]] = []
    try:
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise InvalidArgument(f"{index.path}: {MANIFEST}: every entry needs a Config")
            layers = _string_list(entry.get("Layers"), "Layers", index.path)
            tags = _string_list(entry.get("RepoTags"), "RepoTags", index.path)
            images.append((DockerArchiveSource(index, entry["Config"], layers), tags))
    except BaseException:
        for source, _ in images:
            source.close()
        raise
    return images


# ---------------------------------------------------------------------------------------- writing

def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Layer chain IDs as docker computes them (the ID of a layer together with all below it)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else digest_of(f"{chain[-1]} {diff_id}".encode()))
    return chain


class _Entry:
    """One image of the archive being written: its config and its names."""

    def __init__(self, config_hex: str, diff_ids: list[str]) -> None:
        self.config_hex = config_hex
        self.diff_ids = diff_ids
        self.names: list[str] = []


class DockerArchiveWriter(ArchiveWriter):
    """Collects images into one docker-archive; layers shared by images are written once."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._entries: dict[str, _Entry] = {}  # by config hex, in the order images were added

    def _layer_member(self, digest_hex: str) -> str:
        return f"{digest_hex}.tar"

    def _commit_image(self, config: bytes, names: list[str]) -> str:
        ids = self._written_diff_ids(config)
        config_hex = sha256_hex(config)
        entry = self._entries.get(config_hex)
        if entry is None:
            self._tar.add_bytes(f"{config_hex}.json", config)
            entry = self._entries[config_hex] = _Entry(config_hex, ids)
        self._claim_names([e.names for e in self._entries.values()], entry.names, names)
        return config_hex

    def _image_count(self) -> int:
        return len(self._entries)

    def _write_metadata(self) -> None:
        self._tar.add_bytes(MANIFEST, self._manifest())
        self._tar.add_bytes("repositories", self._repositories())

    def _manifest(self) -> bytes:
        return json.dumps([{
            "Config": f"{e.config_hex}.json",
            "RepoTags": e.names,
            "Layers": [f"{hex_of(d)}.tar" for d in e.diff_ids],
        } for e in self._entries.values()], separators=(",", ":")).encode()

    def _repositories(self) -> bytes:
        # The legacy index docker load reads when there is no manifest.json: repository → tag →
        # ID of the top layer (its chain ID, as containers/image writes it).
        repositories: dict[str, dict[str, str]] = {}
        for entry in self._entries.values():
            if not entry.diff_ids:
                continue
            top = hex_of(chain_ids(entry.diff_ids)[-1])
            for name in entry.names:
                repository, tag = split_name(name)
                repositories.setdefault(repository, {})[tag] = top
        return json.dumps(repositories, separators=(",", ":")).encode()


__all__ = ["DockerArchiveSource", "DockerArchiveWriter", "chain_ids", "read_docker_archive"]
