"""Broken, hostile or oversized archives are refused with a clear error, never half-read."""

from __future__ import annotations

import gzip
import json
import os
import tarfile
from pathlib import Path

import pytest

from isula_build.errors import InvalidArgument, NotFound, ResourceExhausted
from isula_build.transports.archive import detect_archive_format, open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter
from transport_helpers import Image, docker_archive_members, make_layer, oci_archive_members, sha, write_tar


@pytest.fixture
def image() -> Image:
    return Image([make_layer({"etc/hostname": b"box\n"}), make_layer({"a/b": b"c" * 5000})],
                 ["isb-test-bad:1"])


def copy_all(path: Path, tmp_path: Path, log) -> None:
    """Loads every image of the archive into a docker-archive writer (a verifying destination)."""
    with DockerArchiveWriter(tmp_path / "copy.tar") as archive:
        for source, names in open_archive(path):
            with source, archive.image(names) as dst:
                copy_image(source, dst, log)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        open_archive(tmp_path / "nope.tar")


def test_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(b"this is plain text, not a tar archive\n" * 100)
    with pytest.raises(InvalidArgument, match="not a valid tar archive"):
        open_archive(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not a regular file"):
        open_archive(tmp_path)


def test_compressed_archive_is_refused_with_advice(tmp_path: Path, image: Image) -> None:
    plain = write_tar(tmp_path / "x.tar", docker_archive_members([image]))
    packed = tmp_path / "x.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(InvalidArgument, match="decompress it first"):
        open_archive(packed)


def test_tar_of_something_else(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "x.tar", {"hello.txt": b"hi"})
    with pytest.raises(InvalidArgument, match="neither a docker-archive .* nor an oci-archive"):
        detect_archive_format(path)


@pytest.mark.parametrize("cut", ["layer-data", "header", "manifest-data"])
def test_truncated_tar(tmp_path: Path, image: Image, cut: str) -> None:
    path = write_tar(tmp_path / "x.tar", docker_archive_members([image]))
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    layer, manifest = members[1], members[-1]
    at = {"layer-data": layer.offset_data + layer.size // 2,
          "header": manifest.offset + 100,
          "manifest-data": manifest.offset_data + manifest.size // 2}[cut]
    os.truncate(path, at)
    with pytest.raises(InvalidArgument, match="truncated|not a valid tar"):
        open_archive(path)


def test_archive_over_50_gib(tmp_path: Path, image: Image) -> None:
    path = write_tar(tmp_path / "x.tar", docker_archive_members([image]))
    os.truncate(path, (50 << 30) + 1)  # sparse: costs no disk space
    with pytest.raises(ResourceExhausted, match="50 GiB"):
        open_archive(path)


def test_layer_with_wrong_digest(tmp_path: Path, image: Image, log) -> None:
    members = docker_archive_members([image])
    members[f"{sha(image.layers[1])[7:]}.tar"] = make_layer({"a/b": b"tampered"})
    path = write_tar(tmp_path / "x.tar", members)
    with pytest.raises(InvalidArgument, match="does not match"):
        copy_all(path, tmp_path, log)
    assert not (tmp_path / "copy.tar").exists()


def test_config_digest_mismatch(tmp_path: Path, image: Image) -> None:
    members = docker_archive_members([image])
    name = f"{image.image_id}.json"
    members[name] = members[name].replace(b'"sh"', b'"bash"')
    with pytest.raises(InvalidArgument, match="does not match its digest"):
        open_archive(write_tar(tmp_path / "x.tar", members))


def test_manifest_json_not_json(tmp_path: Path, image: Image) -> None:
    members = docker_archive_members([image])
    members["manifest.json"] = b"[{not json"
    with pytest.raises(InvalidArgument, match="manifest.json.*not valid JSON"):
        open_archive(write_tar(tmp_path / "x.tar", members))


@pytest.mark.parametrize("manifest", [b"{}", b"[]", b'[{"Layers": []}]',
                                      b'[{"Config": "c.json", "Layers": "x"}]'])
def test_manifest_json_wrong_shape(tmp_path: Path, image: Image, manifest: bytes) -> None:
    members = docker_archive_members([image])
    members["manifest.json"] = manifest
    with pytest.raises(InvalidArgument, match="manifest.json"):
        open_archive(write_tar(tmp_path / "x.tar", members))


def test_missing_layer_member(tmp_path: Path, image: Image) -> None:
    members = docker_archive_members([image])
    del members[f"{sha(image.layers[0])[7:]}.tar"]
    with pytest.raises(InvalidArgument, match="layer .* is missing from the archive"):
        open_archive(write_tar(tmp_path / "x.tar", members))


def test_layer_count_differs_from_config(tmp_path: Path, image: Image) -> None:
    members = docker_archive_members([image])
    manifest = json.loads(members["manifest.json"])
    manifest[0]["Layers"] = manifest[0]["Layers"][:1]
    members["manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(InvalidArgument, match="lists 1 layers .* has 2 diff_ids"):
        open_archive(write_tar(tmp_path / "x.tar", members))


def test_corrupt_gzip_layer(tmp_path: Path, image: Image, log) -> None:
    members = docker_archive_members([image], "docker25", compress=True)
    name = next(n for n, d in members.items() if d[:2] == b"\x1f\x8b")
    data = bytearray(members[name])
    data[len(data) // 2] ^= 0xFF
    members[name] = bytes(data)
    with pytest.raises(InvalidArgument):
        copy_all(write_tar(tmp_path / "x.tar", members), tmp_path, log)


def test_oci_compressed_layer_blob_digest_checked(tmp_path: Path, image: Image, log) -> None:
    # The blob still decompresses to the right diff ID, but its bytes differ from the
    # descriptor's digest (recompressed with another header): the descriptor is not trusted.
    members = oci_archive_members([image], compress=True)
    layer = image.layers[0]
    name = f"blobs/sha256/{sha(gzip.compress(layer, mtime=0))[7:]}"
    members[name] = gzip.compress(layer, mtime=12345)
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        copy_all(write_tar(tmp_path / "x.tar", members), tmp_path, log)


def test_oci_manifest_blob_tampered(tmp_path: Path, image: Image) -> None:
    members = oci_archive_members([image])
    index = json.loads(members["index.json"])
    name = f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"
    members[name] = members[name].replace(b"schemaVersion", b"schemaversion")
    with pytest.raises(InvalidArgument, match="does not match its descriptor"):
        open_archive(write_tar(tmp_path / "x.tar", members))


def test_oci_index_not_json(tmp_path: Path, image: Image) -> None:
    members = oci_archive_members([image])
    members["index.json"] = b"\x00\x01garbage"
    with pytest.raises(InvalidArgument, match="index.json.*not valid JSON"):
        open_archive(write_tar(tmp_path / "x.tar", members))


def test_oci_missing_layer_blob(tmp_path: Path, image: Image) -> None:
    members = oci_archive_members([image])
    del members[f"blobs/sha256/{sha(image.layers[1])[7:]}"]
    with pytest.raises(InvalidArgument, match="is missing from the archive"):
        open_archive(write_tar(tmp_path / "x.tar", members))


def test_damaged_zstd_layer_fails_naming_the_layer(tmp_path: Path, image: Image, log) -> None:
    # zstd layers are read now (they were refused); one that does not decompress to its diff ID
    # fails the copy, naming the layer.
    members = docker_archive_members([image])
    members[f"{sha(image.layers[0])[7:]}.tar"] = b"\x28\xb5\x2f\xfd" + b"\0" * 100
    with pytest.raises(InvalidArgument, match=f"layer {sha(image.layers[0])} does not match"):
        copy_all(write_tar(tmp_path / "x.tar", members), tmp_path, log)
    corrupt = bytearray(docker_archive_members([image], compress="zstd")[
        f"{sha(image.layers[1])[7:]}.tar"])
    corrupt[len(corrupt) // 2] ^= 0xFF
    members[f"{sha(image.layers[0])[7:]}.tar"] = image.layers[0]
    members[f"{sha(image.layers[1])[7:]}.tar"] = bytes(corrupt)
    with pytest.raises(InvalidArgument, match="cannot decompress"):
        copy_all(write_tar(tmp_path / "x.tar", members), tmp_path, log)
