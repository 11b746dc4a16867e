"""Plain data the store hands out: what is known about a layer and an image."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LayerRecord:
    diff_id: str  # "sha256:<hex>" of the uncompressed layer tar
    size: int  # bytes of the uncompressed layer tar


@dataclass(frozen=True)
class ImageRecord:
    id: str  # 64 hex = sha256 of the config bytes
    names: tuple[str, ...]  # normalized "repo:tag", sorted
    created: datetime  # from the config's "created" (UTC); load time if absent
    layers: tuple[LayerRecord, ...]  # bottom first
    size: int  # sum of layer sizes
