"""Manifest lists made by `manifest create`, kept in the image store as list images.

The store holds a list as an image record without config or layers (docs/architecture.md, "The
store"): its blob is the Docker manifest list document, its ID that document's sha256, and beside
it the remote image each entry was read from (where `manifest push` copies it from). This module
turns that stored form into a ManifestList (image/manifestlist.py) to change, and back.
"""

from __future__ import annotations

import json

from isula_build.errors import InvalidArgument
from isula_build.image.manifestlist import ManifestList
from isula_build.store import ImageRecord, Store


def load_list(store: Store, ref: str) -> ManifestList:
    """The manifest list ref names (a name, ID or ID prefix, as for any image)."""
    data = store.manifest_list(ref)
    try:
        manifests = json.loads(data.document)["manifests"]
    except (ValueError, KeyError, TypeError) as exc:  # the store checked it when writing
        raise InvalidArgument(f"manifest list {data.record.id} is damaged: {exc}") from None
    return ManifestList(manifests, dict(data.sources), data.record.id,
                        list(data.record.names))


def create_list(store: Store, name: str, manifest_list: ManifestList) -> ImageRecord:
    """Stores manifest_list as a new list image named name (AlreadyExists if the name is used)."""
    return store.create_manifest_list(name, manifest_list.document_bytes(),
                                      manifest_list.sources)


def save_list(store: Store, ref: str, manifest_list: ManifestList) -> ImageRecord:
    """Stores the changed manifest_list in place of the list ref names; its ID follows the
    content, so a changed list has a new ID (ref's name moves to it)."""
    return store.update_manifest_list(ref, manifest_list.document_bytes(),
                                      manifest_list.sources)
