"""oci-archive: a tar of an OCI image layout (oci-layout, index.json, blobs/sha256/…), SPEC §7.

Images are found through index.json; their names are the `org.opencontainers.image.ref.name`
annotations (one descriptor per name, all pointing at the same manifest). Every blob read is
checked against its descriptor: manifests and configs by digest and size when read, layers by the
digest of the stored (possibly compressed) bytes while they stream, and by diff ID at the
destination.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from isula_build.errors import InvalidArgument
from isula_build.image import config as image_config
from isula_build.image import manifest as image_manifest
from isula_build.image import mediatypes
from isula_build.image.digest import digest_of, hex_of, is_digest, sha256_hex
from isula_build.image.jsondoc import load_json_object
from isula_build.image.manifest import REF_NAME_ANNOTATION, Descriptor
from isula_build.transports._archive_reader import ArchiveSource, StoredLayer
from isula_build.transports._archive_writer import ArchiveWriter
from isula_build.transports._tario import MemberIndex
from isula_build.transports.base import ImageSource, LayerInfo

LAYOUT = "oci-layout"
INDEX = "index.json"
_LAYOUT_BYTES = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()


def _blob_path(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


# ---------------------------------------------------------------------------------------- reading

def _descriptor(value: Any, what: str, path: Path) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{path}: {what} is not a descriptor object")
    digest, size = value.get("digest"), value.get("size")
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidArgument(f"{path}: {what} has no valid sha256 digest")
    if not isinstance(size, int) or size < 0:
        raise InvalidArgument(f"{path}: {what} has no valid size")
    annotations = value.get("annotations") or {}
    platform = value.get("platform")
    if not isinstance(annotations, dict):
        raise InvalidArgument(f"{path}: {what} has malformed annotations")
    media_type = value.get("mediaType")
    return Descriptor(media_type if isinstance(media_type, str) else "", digest, size,
                      {str(k): str(v) for k, v in annotations.items()},
                      platform if isinstance(platform, dict) else None)


def _read_blob(index: MemberIndex, desc: Descriptor, what: str) -> bytes:
    data = index.read(_blob_path(desc.digest), what)
    if len(data) != desc.size or digest_of(data) != desc.digest:
        raise InvalidArgument(f"{index.path}: {what} {desc.digest} does not match its descriptor "
                              f"(content is {digest_of(data)}, {len(data)} bytes)")
    return data


def _read_json_blob(index: MemberIndex, desc: Descriptor, what: str) -> tuple[bytes, dict[str, Any]]:
    data = _read_blob(index, desc, what)
    return data, load_json_object(data, f"{index.path}: {what} {desc.digest}")


class OciArchiveSource(ArchiveSource):
    """One image (manifest) of an oci-archive, read in place."""

    def __init__(self, index: MemberIndex, manifest: dict[str, Any]) -> None:
        super().__init__(index)
        try:
            path = index.path
            config_desc = _descriptor(manifest.get("config"), "manifest config", path)
            self._config = _read_blob(index, config_desc, "image config")
            ids = image_config.diff_ids(image_config.parse_config(self._config))
            layer_values = manifest.get("layers")
            if not isinstance(layer_values, list):
                raise InvalidArgument(f"{path}: manifest has no layers list")
            descs = [_descriptor(v, "layer descriptor", path) for v in layer_values]
            if len(descs) != len(ids):
                raise InvalidArgument(f"{path}: manifest lists {len(descs)} layers but its config "
                                      f"has {len(ids)} diff_ids")
            for desc in descs:
                if desc.media_type not in mediatypes.LAYER_TYPES:
                    raise InvalidArgument(f"{path}: layer {desc.digest} has unsupported media type "
                                          f"{desc.media_type!r}")
                index.member(_blob_path(desc.digest), "layer blob")
            # When the blob is the plain tar its digest is the diff ID, which the destination
            # checks; otherwise the stored bytes are checked here as they stream by.
            self._stored = {d: StoredLayer(_blob_path(desc.digest), "layer blob",
                                           f"layer {desc.digest} of {path}",
                                           None if desc.digest == d else desc.digest)
                            for d, desc in zip(ids, descs)}
            # An uncompressed blob is its diff ID; a compressed one's size is known once read.
            self._layers = [LayerInfo(d, desc.size if desc.digest == d else -1)
                            for d, desc in zip(ids, descs)]
        except BaseException:
            self.close()
            raise


def _platform_manifest(index: MemberIndex, desc: Descriptor, depth: int = 0) -> tuple[Descriptor, dict[str, Any]]:
    """The image manifest a descriptor leads to; for an index, the one for this machine."""
    if depth > 4:
        raise InvalidArgument(f"{index.path}: image indexes nest too deeply")
    _, document = _read_json_blob(index, desc, "manifest")
    media_type = desc.media_type or document.get("mediaType") or ""
    if media_type in mediatypes.INDEX_TYPES or (not media_type and "manifests" in document):
        arch, wanted = image_config.host_architecture(), []
        for value in document.get("manifests") or []:
            child = _descriptor(value, "index entry", index.path)
            platform = child.platform or {}
            if platform.get("architecture") == arch and platform.get("os", "linux") == "linux":
                wanted.append(child)
        if not wanted:
            raise InvalidArgument(f"{index.path}: index {desc.digest} has no image for linux/{arch}")
        return _platform_manifest(index, wanted[0], depth + 1)
    if media_type and media_type not in mediatypes.MANIFEST_TYPES:
        raise InvalidArgument(f"{index.path}: unsupported manifest media type {media_type!r}")
    return desc, document


def read_oci_archive(index: MemberIndex) -> list[tuple[ImageSource, list[str]]]:
    """One (source, names) per distinct manifest referenced from index.json, in its order."""
    layout = index.read_json(LAYOUT, "file")
    if not isinstance(layout, dict) or not isinstance(layout.get("imageLayoutVersion"), str):
        raise InvalidArgument(f"{index.path}: {LAYOUT} has no imageLayoutVersion")
    top = index.read_json(INDEX, "file")
    if not isinstance(top, dict) or not isinstance(top.get("manifests"), list) or not top["manifests"]:
        raise InvalidArgument(f"{index.path}: {INDEX} lists no manifests")
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for value in top["manifests"]:
        entry = _descriptor(value, "index entry", index.path)
        desc, manifest = _platform_manifest(index, entry)
        _, names = found.setdefault(desc.digest, (manifest, []))
        name = entry.annotations.get(REF_NAME_ANNOTATION)
        if name and name not in names:
            names.append(name)
    images: list[tuple[ImageSource, list[str]]] = []
    try:
        for manifest, names in found.values():
            images.append((OciArchiveSource(index, manifest), names))
    except BaseException:
        for source, _ in images:
            source.close()
        raise
    return images


# ---------------------------------------------------------------------------------------- writing

class _Image:
    """One image of the archive being written: its manifest and its names."""

    def __init__(self, manifest: bytes) -> None:
        self.manifest = manifest
        self.names: list[str] = []


class OciArchiveWriter(ArchiveWriter):
    """Collects images into one oci-archive; blobs shared by images are written once."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._images: dict[str, _Image] = {}  # by manifest digest, in the order added
        self._manifest_of: dict[str, str] = {}  # image ID -> manifest digest
        self._lists: dict[str, tuple[int, list[str]]] = {}  # index digest -> (size, names)
        self._listed: set[str] = set()  # manifest digests of images in a list
        self._tar.add_bytes(LAYOUT, _LAYOUT_BYTES)
        self._tar.add_directory("blobs/")
        self._tar.add_directory("blobs/sha256/")

    def _layer_member(self, digest_hex: str) -> str:
        return f"blobs/sha256/{digest_hex}"

    def _put_blob_bytes(self, data: bytes) -> str:
        digest = digest_of(data)
        if digest not in self._blobs:
            self._tar.add_bytes(_blob_path(digest), data)
            self._blobs[digest] = len(data)
        return digest

    def _commit_image(self, config: bytes, names: list[str]) -> str:
        ids = self._written_diff_ids(config)
        self._put_blob_bytes(config)
        manifest = image_manifest.oci_manifest(config, [(d, self._blobs[d]) for d in ids])
        manifest_digest = self._put_blob_bytes(manifest)
        image = self._images.setdefault(manifest_digest, _Image(manifest))
        self._claim_names([i.names for i in self._images.values()], image.names, names)
        self._manifest_of[sha256_hex(config)] = manifest_digest
        return sha256_hex(config)

    def add_list(self, names: list[str], entries: list[tuple[str, dict[str, str]]]) -> None:
        """An image index of images already written — (image ID, platform) each — as a blob,
        named in index.json by `names` (what `skopeo … oci-archive:FILE:NAME` finds)."""
        manifests = [Descriptor(mediatypes.OCI_MANIFEST, self._manifest_of[image_id],
                                len(self._images[self._manifest_of[image_id]].manifest),
                                platform=platform) for image_id, platform in entries]
        self._listed.update(m.digest for m in manifests)
        document = image_manifest.oci_index(manifests)
        self._lists[self._put_blob_bytes(document)] = (len(document), list(names))

    def _image_count(self) -> int:
        return len(self._images)

    def _write_metadata(self) -> None:
        self._tar.add_bytes(INDEX, self._index())

    def _index(self) -> bytes:
        descriptors: list[Descriptor] = []
        for digest, image in self._images.items():
            if digest in self._listed and not image.names:
                continue  # found through its list's index (as BuildKit's OCI exporter writes it)
            refs = [{REF_NAME_ANNOTATION: n} for n in image.names] or [{}]
            descriptors += [Descriptor(mediatypes.OCI_MANIFEST, digest, len(image.manifest), r)
                            for r in refs]
        for digest, (size, names) in self._lists.items():
            descriptors += [Descriptor(mediatypes.OCI_INDEX, digest, size,
                                       {REF_NAME_ANNOTATION: n} if n else {})
                            for n in names or [""]]
        return image_manifest.oci_index(descriptors)


__all__ = ["OciArchiveSource", "OciArchiveWriter", "read_oci_archive"]
