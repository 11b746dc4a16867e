"""image/config.py and image/manifest.py: reading configs, making import configs and manifests."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from isula_build.errors import InvalidArgument
from isula_build.image import config as cfg
from isula_build.image import manifest
from transport_helpers import sha

DIFF = "sha256:" + "ab" * 32


def test_import_config_is_canonical_and_complete() -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, 120000, tzinfo=timezone.utc)
    data = cfg.import_config([DIFF], when)
    assert data == cfg.import_config([DIFF], when)  # same inputs, same image ID
    config = json.loads(data)
    assert config["created"] == "2024-05-06T07:08:09.12Z"
    assert config["rootfs"] == {"type": "layers", "diff_ids": [DIFF]}
    assert config["os"] == "linux" and config["architecture"] == cfg.host_architecture()
    assert config["config"] == {}
    assert config["history"] == [{"created": "2024-05-06T07:08:09.12Z",
                                  "comment": "Imported from tarball"}]
    assert cfg.diff_ids(config) == [DIFF]
    assert cfg.created(config) == when


@pytest.mark.parametrize("text, expected", [
    ("2016-08-18T06:13:28.269459769Z", datetime(2016, 8, 18, 6, 13, 28, 269459, timezone.utc)),
    ("2020-01-01T08:00:00+08:00", datetime(2020, 1, 1, 0, 0, 0, tzinfo=timezone.utc)),
    ("2020-01-01T00:00:00Z", datetime(2020, 1, 1, tzinfo=timezone.utc)),
    ("yesterday", None),
])
def test_parse_rfc3339(text: str, expected: datetime | None) -> None:
    assert cfg.parse_rfc3339(text) == expected


@pytest.mark.parametrize("data", [b"not json", b"[]", b'"x"'])
def test_parse_config_refuses_non_objects(data: bytes) -> None:
    with pytest.raises(InvalidArgument, match="image config"):
        cfg.parse_config(data)


@pytest.mark.parametrize("config", [{}, {"rootfs": {"diff_ids": "x"}},
                                    {"rootfs": {"diff_ids": ["sha256:short"]}}])
def test_diff_ids_refuses_malformed(config: dict) -> None:
    with pytest.raises(InvalidArgument, match="diff_ids"):
        cfg.diff_ids(config)


def test_manifests_and_index() -> None:
    config = cfg.import_config([DIFF])
    docker = json.loads(manifest.docker_manifest(config, [(DIFF, 1024)]))
    assert docker == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar",
                    "digest": DIFF, "size": 1024}],
    }
    oci_bytes = manifest.oci_manifest(config, [(DIFF, 1024)])
    oci = json.loads(oci_bytes)
    assert oci["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert oci["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert oci["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    desc = manifest.Descriptor("application/vnd.oci.image.manifest.v1+json", sha(oci_bytes),
                               len(oci_bytes), {manifest.REF_NAME_ANNOTATION: "a:1"})
    index = json.loads(manifest.oci_index([desc]))
    assert index["schemaVersion"] == 2
    assert index["manifests"] == [{"mediaType": desc.media_type, "digest": desc.digest,
                                   "size": len(oci_bytes),
                                   "annotations": {"org.opencontainers.image.ref.name": "a:1"}}]
