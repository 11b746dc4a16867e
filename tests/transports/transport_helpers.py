"""Builders of real layer tars and of archives laid out the way docker, skopeo and OCI tools do.

Archives are built as a dict of member name → bytes so a test can break one member before the
dict is written out as a tar.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from isula_build.transports.base import ImageSource


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar with the given regular files (parent directories included)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1577836800
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 1577836800
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


@dataclass
class Image:
    layers: list[bytes]
    tags: list[str] = field(default_factory=list)
    cmd: str = "sh"

    @property
    def config(self) -> bytes:
        return json.dumps({
            "architecture": "amd64", "os": "linux", "created": "2021-02-03T04:05:06.123456789Z",
            "config": {"Cmd": [self.cmd]},
            "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in self.layers]},
        }).encode()

    @property
    def image_id(self) -> str:
        return hashlib.sha256(self.config).hexdigest()


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stored(layer: bytes, compress: bool | str) -> bytes:
    """The layer as an archive stores it: plain, gzip (True or "gzip") or "zstd"."""
    if compress == "zstd":
        return zstandard.ZstdCompressor(level=3, write_checksum=True).compress(layer)
    return gzip.compress(layer, mtime=0) if compress else layer


def docker_archive_members(images: list[Image], layout: str = "skopeo",
                           compress: bool | str = False) -> dict[str, bytes]:
    """layout: "skopeo" (<hex>.tar), "legacy" (docker < 25: <id>/layer.tar) or "docker25"
    (blobs/sha256/<hex>, next to an OCI layout)."""
    members: dict[str, bytes] = {}
    manifest = []
    for image in images:
        layer_names = []
        for layer in image.layers:
            stored = _stored(layer, compress)
            name = {"skopeo": f"{_hex(layer)}.tar", "legacy": f"{_hex(layer)[:40]}x/layer.tar",
                    "docker25": f"blobs/sha256/{_hex(stored)}"}[layout]
            members[name] = stored
            layer_names.append(name)
        config_name = (f"blobs/sha256/{image.image_id}" if layout == "docker25"
                       else f"{image.image_id}.json")
        members[config_name] = image.config
        manifest.append({"Config": config_name, "RepoTags": image.tags or None,
                         "Layers": layer_names})
    members["manifest.json"] = json.dumps(manifest).encode()
    if layout == "docker25":
        members["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
        members["index.json"] = b'{"schemaVersion": 2, "manifests": []}'
    return members


def oci_archive_members(images: list[Image], compress: bool | str = False) -> dict[str, bytes]:
    members: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    descriptors = []
    for image in images:
        layer_descs = []
        for layer in image.layers:
            stored = _stored(layer, compress)
            members[f"blobs/sha256/{_hex(stored)}"] = stored
            layer_descs.append({
                "mediaType": "application/vnd.oci.image.layer.v1.tar" + (
                    "+zstd" if compress == "zstd" else "+gzip" if compress else ""),
                "digest": sha(stored), "size": len(stored)})
        members[f"blobs/sha256/{image.image_id}"] = image.config
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(image.config), "size": len(image.config)},
            "layers": layer_descs}).encode()
        members[f"blobs/sha256/{_hex(manifest)}"] = manifest
        for tag in image.tags or [None]:
            desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sha(manifest), "size": len(manifest)}
            if tag:
                desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
            descriptors.append(desc)
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": descriptors}).encode()
    return members


def write_tar(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def read_all(source: ImageSource) -> tuple[bytes, list[bytes]]:
    """The config and every layer's uncompressed bytes of a source."""
    layers = []
    for layer in source.layers():
        with source.open_layer(layer) as stream:
            layers.append(stream.read())
    return source.config_bytes(), layers


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()
