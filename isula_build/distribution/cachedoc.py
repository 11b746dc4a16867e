"""The shared build cache as an OCI artifact (docs/cache-format.md), and the --cache-to spec.

A cache is an OCI image manifest: its config, of our own media type CONFIG_TYPE, is a JSON
document listing the build cache's records (one per step key); its layers are the records'
snapshots (a step's overlay upper dir) as gzip tars in the upper-dir format of image layers
(`.wh.` whiteouts, `.wh..wh..opq` opaque markers), and the stage layers of the final image (but
the layer of a stage whose snapshots are disjoint, which is their merge and is not sent twice).
Any OCI registry stores it, and its garbage
collection keeps the blobs because the manifest references them.

This module only makes and reads the documents; it checks their shape, not their meaning
(the version and platform they were written for are the importer's to judge).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from isula_build.errors import InvalidArgument
from isula_build.image import jsondoc, mediatypes
from isula_build.image.digest import digest_of, is_digest
from isula_build.image.manifest import Descriptor, parse_descriptor

CONFIG_TYPE = "application/vnd.isula-build.cache.config.v1+json"
LAYER_TYPE = mediatypes.OCI_LAYER_GZIP
FORMAT = 1   # the config's "format": a reader ignores documents of another
MODES = ("min", "max")


@dataclass(frozen=True)
class CacheTo:
    """A --cache-to spec: `REF[,mode=min|max]` (BuildKit's `type=registry,ref=REF,…` too)."""

    ref: str
    mode: str = "min"


def parse_cache_to(spec: str) -> CacheTo:
    ref, mode = "", "min"
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            if ref:
                raise InvalidArgument(f"--cache-to {spec!r}: more than one reference")
            ref = part.strip()
        elif key == "ref":
            ref = value.strip()
        elif key == "mode":
            if value not in MODES:
                raise InvalidArgument(f"--cache-to {spec!r}: mode must be min or max, "
                                      f"not {value!r}")
            mode = value
        elif key == "type":
            if value != "registry":
                raise InvalidArgument(f"--cache-to {spec!r}: only type=registry is supported")
        else:
            raise InvalidArgument(f"--cache-to {spec!r}: unknown option {key!r} "
                                  "(want REF[,mode=min|max])")
    if not ref:
        raise InvalidArgument(f"--cache-to {spec!r}: no image reference "
                              "(want REGISTRY/REPOSITORY[:TAG][,mode=min|max])")
    return CacheTo(ref, mode)


@dataclass(frozen=True)
class CacheBlob:
    """One snapshot as a layer of the cache: its gzip blob, its tar, the tree it unpacks to."""

    digest: str       # of the gzip blob (the manifest's layer digest)
    size: int         # of the gzip blob
    diff_id: str      # of the uncompressed tar
    unpacked: int     # bytes the snapshot directory takes (a stage layer: its tar's size)


@dataclass(frozen=True)
class MergedLayer:
    """A stage layer the cache does not hold as a blob of its own: the merge of its disjoint
    snapshots (builder/tarmerge.py), whose result must have diff_id."""

    diff_id: str
    size: int                 # of the tar
    parts: list[str]          # the snapshots' blob digests, top first


@dataclass(frozen=True)
class CacheRecord:
    """A build cache entry (builder/cache.py's CacheEntry) with its chain as blob digests."""

    key: str
    parent: str
    chain: list[str]              # the stage's snapshots after the step, top first
    config: dict[str, Any]        # StageConfig.state()
    layer_entry: int | None
    inputs: dict[str, Any]


@dataclass
class CacheDocument:
    version: str                  # isula-builder's version that wrote it
    platform: str                 # os/arch[/variant] the steps ran for
    records: dict[str, CacheRecord] = field(default_factory=dict)
    blobs: dict[str, CacheBlob] = field(default_factory=dict)   # by digest
    created: dict[str, str] = field(default_factory=dict)       # final key -> image `created`
    # A stage's last key -> the blob of the stage's one layer (the squash of its snapshots),
    # for the stages the final image is made of: a build they serve wholly downloads that.
    stage_layers: dict[str, str] = field(default_factory=dict)
    # A stage's last key -> its layer as the merge of its snapshots, when no blob holds it.
    merged_layers: dict[str, MergedLayer] = field(default_factory=dict)

    def config_bytes(self) -> bytes:
        return json.dumps({
            "format": FORMAT, "version": self.version, "platform": self.platform,
            "records": [record.__dict__ for record in self.records.values()],
            "blobs": [{"digest": b.digest, "diffID": b.diff_id, "unpacked": b.unpacked}
                      for b in self.blobs.values()],
            "created": self.created,
            "stageLayers": [{"key": k, "digest": d} for k, d in self.stage_layers.items()],
            "mergedLayers": [{"key": k, "diffID": m.diff_id, "size": m.size, "parts": m.parts}
                             for k, m in self.merged_layers.items()],
        }, sort_keys=True, separators=(",", ":")).encode()

    def manifest_bytes(self, config: bytes) -> bytes:
        layers = [Descriptor(LAYER_TYPE, b.digest, b.size).to_json() for b in self.blobs.values()]
        return json.dumps({
            "schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST,
            "config": Descriptor(CONFIG_TYPE, digest_of(config), len(config)).to_json(),
            "layers": layers,
        }, separators=(",", ":")).encode()


def read_manifest(data: bytes, what: str) -> tuple[Descriptor, list[Descriptor]]:
    """The config and layer descriptors of a cache manifest; InvalidArgument when it is not one."""
    try:
        document = jsondoc.loads(data)
    except ValueError:
        raise InvalidArgument(f"{what}: the manifest is not JSON") from None
    if not isinstance(document, dict) or document.get("mediaType") != mediatypes.OCI_MANIFEST:
        raise InvalidArgument(f"{what}: not an OCI image manifest")
    config = parse_descriptor(document.get("config"), f"{what}: config")
    if config.media_type != CONFIG_TYPE:
        raise InvalidArgument(f"{what}: not a build cache (its config is {config.media_type!r})")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument(f"{what}: the manifest has no layers array")
    return config, [parse_descriptor(layer, f"{what}: layer {n}") for n, layer in
                    enumerate(layers)]


def read_config(data: bytes, layers: list[Descriptor], what: str) -> CacheDocument:
    """The document of a cache config; every snapshot a record names must be a layer of the
    manifest (so it was pushed before the manifest, and the registry keeps it)."""
    try:
        raw = jsondoc.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise InvalidArgument(f"{what}: a build cache of another format "
                                  f"({raw.get('format') if isinstance(raw, dict) else None!r})")
        sizes = {layer.digest: layer.size for layer in layers}
        doc = CacheDocument(_text(raw["version"]), _text(raw["platform"]))
        for item in raw["blobs"]:
            digest = _digest(item["digest"])
            if digest not in sizes:
                raise InvalidArgument(f"{what}: snapshot {digest} is not a layer")
            doc.blobs[digest] = CacheBlob(digest, sizes[digest], _digest(item["diffID"]),
                                          _count(item["unpacked"]))
        for item in raw["records"]:
            record = CacheRecord(_text(item["key"]), _text(item["parent"]),
                                 [_digest(d) for d in item["chain"]], _object(item["config"]),
                                 _optional_count(item["layer_entry"]), _object(item["inputs"]))
            if any(digest not in doc.blobs for digest in record.chain):
                raise InvalidArgument(f"{what}: record {record.key} names a missing snapshot")
            doc.records[record.key] = record
        doc.created = {_text(k): _text(v) for k, v in _object(raw.get("created", {})).items()}
        for item in raw.get("stageLayers", []):
            digest = _digest(item["digest"])
            if digest not in doc.blobs:
                raise InvalidArgument(f"{what}: stage layer {digest} is not a layer")
            doc.stage_layers[_text(item["key"])] = digest
        for item in raw.get("mergedLayers", []):
            merged = MergedLayer(_digest(item["diffID"]), _count(item["size"]),
                                 [_digest(d) for d in item["parts"]])
            if not merged.parts or any(digest not in doc.blobs for digest in merged.parts):
                raise InvalidArgument(f"{what}: a merged stage layer names a missing snapshot")
            doc.merged_layers[_text(item["key"])] = merged
        return doc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidArgument(f"{what}: the cache config is malformed ({exc!r})") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _digest(value: Any) -> str:
    if not isinstance(value, str) or not is_digest(value):
        raise TypeError(f"{value!r} is not a digest")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"{value!r} is not a count")
    return value


def _optional_count(value: Any) -> int | None:
    return None if value is None else _count(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{value!r} is not an object")
    return value


__all__ = ["CONFIG_TYPE", "CacheBlob", "CacheDocument", "CacheRecord", "CacheTo", "LAYER_TYPE",
           "MergedLayer", "parse_cache_to", "read_config", "read_manifest"]
