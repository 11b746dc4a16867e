"""Manifest lists (experimental): entries read from remote images, and the push of a list with
every image it names copied into the destination repository first.

An entry is the Docker list descriptor of one image manifest (image/manifestlist.py): media
type, size, digest and the platform (os, architecture, variant) read from the image's config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from isula_build.distribution.push import push_list_image
from isula_build.errors import FailedPrecondition, InvalidArgument, NotFound, RegistryUnavailable
from isula_build.image import config as image_config
from isula_build.image import mediatypes
from isula_build.image.jsondoc import load_json_object
from isula_build.image.manifest import is_index, parse_descriptor
from isula_build.image.manifestlist import ManifestList, list_bytes
from isula_build.registry.client import RegistryClient
from isula_build.registry.config import RegistryPolicy
from isula_build.registry.connect import open_client
from isula_build.registry.names import RemoteRef, parse_remote
from isula_build.registry.settings import RegistrySettings
from isula_build.store import Store, local_image_of

CHUNK = 1 << 20


def remote_entry(settings: RegistrySettings, name: str) -> tuple[dict[str, Any], str]:
    """The list entry of a remote image and its full name; short names go through
    registries.search in order."""
    candidates = RegistryPolicy(settings.registries).candidates(name)
    for n, ref in enumerate(candidates):
        try:
            return _entry(open_client(settings, ref), ref), ref.name
        except (NotFound, RegistryUnavailable, FailedPrecondition):
            if n == len(candidates) - 1:
                raise
    raise AssertionError("unreachable")


def _entry(client: RegistryClient, ref: RemoteRef) -> dict[str, Any]:
    manifest = client.get_manifest(ref.repository, ref.tag)
    if is_index(manifest.data, manifest.media_type):
        raise InvalidArgument(f"{ref.name} is a manifest list")
    document = load_json_object(manifest.data, f"manifest of {ref.name}")
    config_desc = parse_descriptor(document.get("config"), f"{ref.name}: config")
    config = image_config.parse_config(client.get_small_blob(ref.repository, config_desc.digest))
    platform = {"architecture": image_config.architecture(config),
                "os": image_config.os_name(config)}
    if isinstance(config.get("variant"), str) and config["variant"]:
        platform["variant"] = config["variant"]
    return {"mediaType": manifest.media_type or mediatypes.DOCKER_MANIFEST,
            "size": len(manifest.data), "digest": manifest.digest, "platform": platform}


def push_list(store: Store, settings: RegistrySettings, manifest_list: ManifestList, dest: str,
              log: Callable[[str], None]) -> str:
    """Copies every image of the list into dest's repository (from its remote source, or from
    the store for a build's list), then puts the list at dest's tag; returns its digest."""
    target = parse_remote(dest)
    dst = open_client(settings, target, push=True)
    sources: dict[str, RegistryClient] = {}
    if not manifest_list.manifests:
        raise InvalidArgument(f"manifest list {manifest_list.names or manifest_list.id} is empty")
    # The lines containers/image prints when it copies a list.
    total = len(manifest_list.manifests)
    log("Getting image list signatures")
    log(f"Copying {total} of {total} images in list")
    pushed = ManifestList()
    for n, entry in enumerate(manifest_list.manifests, 1):
        digest = entry["digest"]
        source_name = manifest_list.sources.get(digest)
        if source_name is None:
            raise InvalidArgument(f"manifest list entry {digest} has no source image")
        log(f"Copying image {digest} ({n}/{total})")
        image_id = local_image_of(source_name)
        if image_id is not None:
            # An image a build made: pushed from the store, the list names what was put.
            image_format = "oci" if entry["mediaType"] == mediatypes.OCI_MANIFEST else "docker"
            put = push_list_image(store, settings, image_id, dest, image_format, log)
            pushed.put({**entry, "mediaType": put.media_type, "size": put.size,
                        "digest": put.digest}, source_name)
            continue
        pushed.put(entry, source_name)
        source = parse_remote(source_name)
        src = sources.get(source.registry) or open_client(settings, source)
        sources[source.registry] = src
        manifest = src.get_manifest(source.repository, digest)
        document = load_json_object(manifest.data, f"manifest of {source_name}")
        config = parse_descriptor(document.get("config"), "config")
        log("Getting image source signatures")
        for blob in [parse_descriptor(layer, "layer") for layer in document.get("layers") or []]:
            log(f"Copying blob {blob.digest}")
            _copy_blob(src, source, dst, target, blob.digest)
        log(f"Copying config {config.digest}")
        _copy_blob(src, source, dst, target, config.digest)
        log("Writing manifest to image destination")
        log("Storing signatures")
        dst.put_manifest(target.repository, digest, manifest.data, manifest.media_type)
    data, media_type = list_bytes(pushed)
    log("Writing manifest list to image destination")
    digest = dst.put_manifest(target.repository, target.tag, data, media_type)
    log("Storing list signatures")
    return digest


def _copy_blob(src: RegistryClient, source: RemoteRef, dst: RegistryClient, target: RemoteRef,
               digest: str) -> None:
    if dst.blob_exists(target.repository, digest):
        return
    if src.registry == dst.registry and source.repository != target.repository \
            and dst.mount_blob(target.repository, digest, source.repository):
        return

    def chunks() -> Iterator[bytes]:
        with src.open_blob(source.repository, digest) as blob:
            while data := blob.read(CHUNK):
                yield data

    dst.upload_blob(target.repository, chunks, expected=digest)
