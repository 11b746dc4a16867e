"""Docker schema 2 manifests, OCI manifests and OCI indexes, made from a config and its layers.

Layers in the archives this project writes are uncompressed, so a layer's blob digest is its diff
ID; pushes give compressed descriptors of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from isula_build.image import mediatypes
from isula_build.image.digest import digest_of

REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor (OCI image-spec "descriptor"; docker schema 2 uses the same shape)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


def _dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _manifest(media_type: str, config_type: str, layer_type: str, config: bytes,
              layers: list[tuple[str, int]]) -> bytes:
    return _dump({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": Descriptor(config_type, digest_of(config), len(config)).to_json(),
        "layers": [Descriptor(layer_type, digest, size).to_json() for digest, size in layers],
    })


def docker_manifest(config: bytes, layers: list[tuple[str, int]]) -> bytes:
    """A docker schema 2 manifest; layers are (digest, size) of uncompressed tars, bottom first."""
    return _manifest(mediatypes.DOCKER_MANIFEST, mediatypes.DOCKER_CONFIG, mediatypes.DOCKER_LAYER,
                     config, layers)


def oci_manifest(config: bytes, layers: list[tuple[str, int]]) -> bytes:
    """An OCI image manifest; layers are (digest, size) of uncompressed tars, bottom first."""
    return _manifest(mediatypes.OCI_MANIFEST, mediatypes.OCI_CONFIG, mediatypes.OCI_LAYER,
                     config, layers)


def oci_index(manifests: list[Descriptor]) -> bytes:
    """An OCI image index (the index.json of an image layout) listing the given manifests."""
    return _dump({
        "schemaVersion": 2,
        "mediaType": mediatypes.OCI_INDEX,
        "manifests": [m.to_json() for m in manifests],
    })
