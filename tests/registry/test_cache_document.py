"""The shared build cache's documents (distribution/cachedoc.py): the --cache-to spec, the
manifest and config round trip, and the documents a reader refuses."""

from __future__ import annotations

import json

import pytest

from isula_build.distribution.cachedoc import (CONFIG_TYPE, CacheBlob, CacheDocument,
                                               CacheRecord, CacheTo, parse_cache_to,
                                               read_config, read_manifest)
from isula_build.errors import InvalidArgument
from isula_build.image.digest import digest_of
from isula_build.image.manifest import Descriptor

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


@pytest.mark.parametrize("spec, expected", [
    ("reg.io/app:cache", CacheTo("reg.io/app:cache", "min")),
    ("reg.io/app:cache,mode=max", CacheTo("reg.io/app:cache", "max")),
    ("type=registry,ref=reg.io/app:cache,mode=max", CacheTo("reg.io/app:cache", "max")),
])
def test_cache_to_specs(spec: str, expected: CacheTo) -> None:
    assert parse_cache_to(spec) == expected


def _document() -> CacheDocument:
    doc = CacheDocument("0.1.0", "linux/amd64", created={"sha256:k2": "2020-01-01T00:00:00+00:00"})
    doc.blobs[D1] = CacheBlob(D1, 100, D2, 4096)
    doc.blobs[D3] = CacheBlob(D3, 300, D1, 8192)
    doc.records["sha256:k1"] = CacheRecord("sha256:k1", "sha256:root", [D1], {"env": ["A=1"]},
                                           0, {"text": "RUN x"})
    doc.records["sha256:k2"] = CacheRecord("sha256:k2", "sha256:k1", [D1], {}, None, {})
    doc.stage_layers["sha256:k2"] = D3
    return doc


def _read(doc: CacheDocument) -> CacheDocument:
    config = doc.config_bytes()
    descriptor, layers = read_manifest(doc.manifest_bytes(config), "cache")
    assert descriptor == Descriptor(CONFIG_TYPE, digest_of(config), len(config))
    return read_config(config, layers, "cache")


def test_documents_read_back_as_written() -> None:
    doc = _document()
    again = _read(doc)
    assert again == doc
    manifest = json.loads(doc.manifest_bytes(doc.config_bytes()))
    assert [layer["digest"] for layer in manifest["layers"]] == [D1, D3]
    assert all(layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
               for layer in manifest["layers"])


def test_a_record_naming_a_blob_the_manifest_lacks_is_refused() -> None:
    doc = _document()
    config = doc.config_bytes()
    _, layers = read_manifest(doc.manifest_bytes(config), "cache")
    with pytest.raises(InvalidArgument, match="is not a layer"):
        read_config(config, [layer for layer in layers if layer.digest != D1], "cache")
    doc.records["sha256:k3"] = CacheRecord("sha256:k3", "sha256:k2", [D2], {}, None, {})
    with pytest.raises(InvalidArgument, match="names a missing snapshot"):
        _read(doc)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(format=2), "another format"),
    (lambda c: c.update(version=7), "malformed"),
    (lambda c: c["records"][0].update(chain="sha256:x"), "malformed"),
    (lambda c: c["records"][0].update(layer_entry=-1), "malformed"),
    (lambda c: c["blobs"][0].pop("diffID"), "malformed"),
    (lambda c: c.update(records={"a": 1}), "malformed"),
])
def test_malformed_configs_are_refused(change, message: str) -> None:
    doc = _document()
    raw = json.loads(doc.config_bytes())
    change(raw)
    config = json.dumps(raw).encode()
    _, layers = read_manifest(doc.manifest_bytes(config), "cache")
    with pytest.raises(InvalidArgument, match=message):
        read_config(config, layers, "cache")
    with pytest.raises(InvalidArgument, match="malformed"):
        read_config(b"\x00garbage", layers, "cache")


@pytest.mark.parametrize("manifest, message", [
    (b"not json", "not JSON"),
    (json.dumps({"mediaType": "application/vnd.docker.distribution.manifest.v2+json"}).encode(),
     "not an OCI image manifest"),
    (json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                            "digest": D1, "size": 1}, "layers": []}).encode(),
     "not a build cache"),
])
def test_manifests_that_are_not_caches_are_refused(manifest: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        read_manifest(manifest, "cache")
