"""Manifest lists made by `manifest create`, kept in the image store as list images.

The store holds a list as an image record without config or layers (docs/architecture.md, "The
store"): its blob is the Docker manifest list document, its ID that document's sha256, and beside
it the remote image each entry was read from (where `manifest push` copies it from). This module
turns that stored form into a ManifestList (image/manifestlist.py) to change, and back.

A multi-platform build stores a list of its own images (their sources `sha256:<image ID>`,
store/records.py): each entry is the descriptor of the manifest the image has with uncompressed
layers (what an archive of it holds), with the platform it was built for. Push puts each image
by digest and the list with the digests pushed (push_list); an oci-archive holds the images and
an index of them (write_list_archive).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from isula_build.errors import InvalidArgument, NotFound
from isula_build.image import mediatypes
from isula_build.image.digest import digest_of
from isula_build.image.manifest import docker_manifest, oci_manifest
from isula_build.image.manifestlist import ManifestList
from isula_build.image.platform import Platform
from isula_build.store import ImageRecord, Store, local_image_of, local_source
from isula_build.transports.copy import copy_image
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.store import StoreSource

OCI_FORMAT = "oci"


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


def commit_build_list(store: Store, names: Sequence[str], images: list[tuple[Platform, str]],
                      image_format: str) -> ImageRecord:
    """Stores the list of a multi-platform build's images — (platform, image ID) each — under
    `names` (moved to it from whatever held them)."""
    manifest_list = ManifestList()
    for platform, image_id in images:
        image = store.lookup(image_id)
        layers = [(layer.diff_id, layer.size) for layer in image.layers]
        config = store.config_bytes(image.id)
        oci = image_format == OCI_FORMAT
        manifest = (oci_manifest if oci else docker_manifest)(config, layers)
        manifest_list.put({"mediaType": mediatypes.OCI_MANIFEST if oci else
                           mediatypes.DOCKER_MANIFEST, "size": len(manifest),
                           "digest": digest_of(manifest), "platform": platform.config_fields()},
                          local_source(image.id))
    return store.commit_manifest_list(names, manifest_list.document_bytes(),
                                      manifest_list.sources)


def local_entries(store: Store, manifest_list: ManifestList,
                  what: str) -> list[tuple[dict[str, Any], ImageRecord]]:
    """The list's entries with the store images they are; refused when an entry is a remote
    image (a `manifest create` list) or an image no longer stored, before anything is copied."""
    found = []
    for entry in manifest_list.manifests:
        image_id = local_image_of(manifest_list.sources.get(entry["digest"], ""))
        if image_id is None:
            raise InvalidArgument(f"manifest list {manifest_list.names or manifest_list.id} "
                                  f"names the remote image {entry['digest']}: {what} works on "
                                  "lists a build made; push this one with "
                                  '"isula-build manifest push"')
        try:
            found.append((entry, store.lookup(image_id)))
        except NotFound:
            raise NotFound(f"image {image_id} of manifest list {manifest_list.id} is no longer "
                           "in the store") from None
    return found


def write_list_archive(store: Store, manifest_list: ManifestList, archive: OciArchiveWriter,
                       names: list[str], log: Callable[[str], None]) -> None:
    """Writes every image of the list, then an index of them named `names`."""
    entries = local_entries(store, manifest_list, "saving to an archive")
    for _, image in entries:
        with StoreSource(store, image) as src, archive.image([]) as dst:
            copy_image(src, dst, log)
    archive.add_list(names, [(image.id, entry.get("platform") or {}) for entry, image in entries])
