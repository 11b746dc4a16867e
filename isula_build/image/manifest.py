"""Docker schema 2 manifests, OCI manifests and OCI indexes: made from a config and its layers,
and read back (descriptors, whether a manifest is a list, a list's entry for a platform).

Layers in the archives this project writes are uncompressed, so a layer's blob digest is its diff
ID; pushes give compressed descriptors of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from isula_build.errors import InvalidArgument, NotFound
from isula_build.image import mediatypes
from isula_build.image.digest import digest_of, is_digest
from isula_build.image.jsondoc import load_json_object
from isula_build.image.platform import Platform, host_platform, matches, of_fields

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


def parse_descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict) or not isinstance(value.get("digest"), str) \
            or not is_digest(value["digest"]) or not isinstance(value.get("size"), int):
        raise InvalidArgument(f"{what} is not a valid descriptor")
    platform = value.get("platform")
    return Descriptor(str(value.get("mediaType", "")), value["digest"], value["size"],
                      platform=platform if isinstance(platform, dict) else None)


def is_index(data: bytes, media_type: str) -> bool:
    """Whether a manifest (its bytes and the media type it was served as) is a manifest list or
    an OCI index rather than an image manifest."""
    if media_type in mediatypes.INDEX_TYPES:
        return True
    document = load_json_object(data, "manifest")
    return "manifests" in document and "layers" not in document


def choose_platform(index: dict[str, Any], what: str,
                    wanted: Platform | None = None) -> Descriptor:
    """The entry of a manifest list / index for a platform (this machine's by default): the
    first whose platform matches, containerd's way (aliases and default variants normalized)."""
    wanted = wanted or host_platform()
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument(f"{what}: manifest list without a manifests array")
    for n, entry in enumerate(entries):
        desc = parse_descriptor(entry, f"{what}: entry {n}")
        if matches(wanted, of_fields(desc.platform or {})):
            return desc
    raise NotFound(f"{what}: no image for {wanted} in the manifest list")


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
