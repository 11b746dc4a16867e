"""Plain data the store hands out: what is known about a layer, an image and a manifest list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LayerRecord:
    diff_id: str  # "sha256:<hex>" of the uncompressed layer tar
    size: int  # bytes of the uncompressed layer tar


@dataclass(frozen=True)
class ImageRecord:
    id: str  # 64 hex = sha256 of the config bytes (of the list document for a manifest list)
    names: tuple[str, ...]  # normalized "repo:tag", sorted
    created: datetime  # from the config's "created" (UTC); load time if absent
    layers: tuple[LayerRecord, ...]  # bottom first; none for a manifest list
    size: int  # sum of layer sizes; bytes of the list document for a manifest list
    # A manifest list made by `manifest create`: no config, no layers, only its list document.
    is_manifest_list: bool = False


@dataclass(frozen=True)
class ManifestListData:
    """A stored manifest list: its record, its document and where each entry came from."""

    record: ImageRecord
    document: bytes  # the list JSON as stored; record.id is its sha256
    sources: dict[str, str]  # entry manifest digest -> remote image name it was read from


# A list entry's source is the remote image it was read from (`manifest create`), or, for a
# list a multi-platform build made, an image of this store written `sha256:<image ID>` (no
# remote name looks like that: remote names start with their registry host and hold a `/`).
_LOCAL_PREFIX = "sha256:"


def local_source(image_id: str) -> str:
    return _LOCAL_PREFIX + image_id


def local_image_of(source: str) -> str | None:
    """The store image ID a list entry's source names, None for a remote image."""
    rest = source[len(_LOCAL_PREFIX):] if source.startswith(_LOCAL_PREFIX) else ""
    return rest if len(rest) == 64 and all(c in "0123456789abcdef" for c in rest) else None
