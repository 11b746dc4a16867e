"""Manifest lists made by `manifest create` (experimental): their entries and documents.

An entry is the Docker list descriptor of one image manifest: media type, size, digest and the
platform (os, architecture, variant) read from the image's config. Beside the entries a list
keeps the remote image each one was read from (where `manifest push` copies it from).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from isula_build.image import mediatypes


@dataclass
class ManifestList:
    manifests: list[dict[str, Any]] = field(default_factory=list)  # Docker list entries
    sources: dict[str, str] = field(default_factory=dict)  # entry digest -> remote image name
    id: str = ""  # the stored list's ID; "" until it is stored
    names: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """The Docker manifest list (schema 2) as `manifest inspect` shows and push sends it."""
        return {"schemaVersion": 2, "mediaType": mediatypes.DOCKER_MANIFEST_LIST,
                "manifests": self.manifests}

    def document_bytes(self) -> bytes:
        """The document as stored: compact JSON, entries in the order they were added (Go's
        json.Marshal of the list, as the original stores it)."""
        return json.dumps(self.document(), separators=(",", ":")).encode()

    def put(self, entry: dict[str, Any], source: str) -> None:
        """Adds an entry; an entry of the same digest is replaced (as the original does)."""
        self.manifests = [m for m in self.manifests if m["digest"] != entry["digest"]]
        self.manifests.append(entry)
        self.sources[entry["digest"]] = source


def annotate(entry: dict[str, Any], arch: str, os_name: str, os_features: list[str],
             variant: str) -> None:
    platform = entry.setdefault("platform", {})
    if arch:
        platform["architecture"] = arch
    if os_name:
        platform["os"] = os_name
    if os_features:
        platform["os.features"] = list(os_features)
    if variant:
        platform["variant"] = variant


def list_bytes(manifest_list: ManifestList) -> tuple[bytes, str]:
    """The document to push: a Docker manifest list, or an OCI index when every entry is an OCI
    manifest (a Docker list naming OCI manifests confuses some clients)."""
    document = manifest_list.document()
    if document["manifests"] and all(m["mediaType"] == mediatypes.OCI_MANIFEST
                                     for m in document["manifests"]):
        document["mediaType"] = mediatypes.OCI_INDEX
    return json.dumps(document, indent=3).encode(), document["mediaType"]
