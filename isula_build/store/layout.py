"""Where the store keeps things under the data root (docs/architecture.md, "The store")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoreLayout:
    root: Path  # <data_root>/storage

    @classmethod
    def under(cls, data_root: Path) -> StoreLayout:
        return cls(Path(data_root) / "storage")

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def db(self) -> Path:
        return self.root / "store.db"

    @property
    def lock(self) -> Path:
        return self.root / "store.lock"

    def blob(self, hex_digest: str) -> Path:
        return self.blobs / hex_digest

    def layer(self, hex_digest: str) -> Path:
        return self.layers / hex_digest

    def create(self, data_root: Path) -> None:
        """Makes the directories; the data root and storage are private to the daemon (0700)."""
        for path in (Path(data_root), self.root):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path, 0o700)
        for path in (self.blobs, self.layers, self.tmp):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
