"""Helpers shared by the end-to-end tests: making test tarballs and snapshotting a store."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path


def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_600_000_000
    tar.addfile(info, io.BytesIO(data))


def make_rootfs_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            add_file(tar, name, data)
    return path


def store_snapshot(data_root: Path) -> dict[str, object]:
    """Everything that tells whether the store changed: blob and layer names, tmp entries."""
    storage = data_root / "storage"
    blobs = storage / "blobs" / "sha256"
    layers = storage / "layers"
    tmp = storage / "tmp"
    return {
        "blobs": sorted(p.name for p in blobs.iterdir()) if blobs.exists() else [],
        "layers": sorted(p.name for p in layers.iterdir()) if layers.exists() else [],
        "tmp": sorted(p.name for p in tmp.iterdir()) if tmp.exists() else [],
    }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
