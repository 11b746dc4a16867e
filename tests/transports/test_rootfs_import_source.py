"""ImportSource: a root filesystem tarball as a one-layer image, whatever its compression."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import os
import platform
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from isula_build.errors import InvalidArgument, NotFound, ResourceExhausted
from isula_build.image.config import parse_rfc3339
from isula_build.transports.archive import open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.rootfs_tarball import MAX_IMPORT_SIZE, ImportSource
from transport_helpers import read_all, sha

GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def import_to_archive(path: Path, tmp_path: Path, log, **kwargs) -> tuple[str, bytes, bytes]:
    """Imports path into a docker-archive; returns (image ID, config, layer bytes)."""
    out = tmp_path / "imported.tar"
    with DockerArchiveWriter(out) as archive:
        with ImportSource(path, **kwargs) as source, archive.image(["isb-test-imp:1"]) as dst:
            image_id = copy_image(source, dst, log)
    [(source, names)] = open_archive(out)
    with source:
        config, [layer] = read_all(source)
    return image_id, config, layer


@pytest.mark.parametrize("compression", ["plain", "gzip", "xz"])
def test_import_detects_compression_by_content(tmp_path: Path, busybox_tar: Path, log,
                                               compression: str) -> None:
    plain = busybox_tar.read_bytes()
    packed = {"plain": plain, "gzip": gzip.compress(plain), "xz": lzma.compress(plain)}[compression]
    path = tmp_path / "rootfs.bin"  # the name says nothing about the content
    path.write_bytes(packed)
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    image_id, config_bytes, layer = import_to_archive(path, tmp_path, log)
    assert layer == plain
    config = json.loads(config_bytes)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(plain)]}
    assert config["architecture"] == GOARCH.get(platform.machine(), platform.machine())
    assert config["os"] == "linux"
    assert config["config"] == {}
    created = parse_rfc3339(config["created"])
    assert created is not None and before <= created <= datetime.now(timezone.utc)
    assert config["created"].endswith("Z")
    assert len(config["history"]) == 1 and config["history"][0]["created"] == config["created"]
    assert image_id == sha(config_bytes)[7:]
    # The diff ID is announced once known: after the destination has read the layer.
    assert log == ["Getting image source signatures", f"Copying blob {sha(plain)}",
                   f"Copying config {sha(config_bytes)}", "Writing manifest to image destination",
                   "Storing signatures"]


def test_layer_is_unknown_up_front(busybox_tar: Path) -> None:
    with ImportSource(busybox_tar) as source:
        [layer] = source.layers()
        assert (layer.diff_id, layer.size) == (None, -1)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ImportSource(tmp_path / "absent.tar")


def test_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.tar"
    with open(path, "wb") as f:
        f.truncate((1 << 30) + 1)  # sparse: 1 GiB + 1 byte, no disk used
    with pytest.raises(ResourceExhausted, match="limit"):
        ImportSource(path)


def test_not_a_tar(tmp_path: Path, log) -> None:
    path = tmp_path / "notes.tar.gz"
    path.write_bytes(gzip.compress(b"just some text, which is not a tar archive at all\n" * 40))
    with pytest.raises(InvalidArgument, match="not a tar archive"):
        import_to_archive(path, tmp_path, log)
    assert not (tmp_path / "imported.tar").exists()


def test_bzip2_and_zstd_refused(tmp_path: Path) -> None:
    for magic in (b"BZh91AY&SY", b"\x28\xb5\x2f\xfd\x00\x00"):
        path = tmp_path / "rootfs.tar"
        path.write_bytes(magic + b"\0" * 600)
        with pytest.raises(InvalidArgument, match="compression is not supported"):
            ImportSource(path)


def test_gzip_bomb_is_bounded(tmp_path: Path, log) -> None:
    # A valid tar whose one file is 8 MiB of zeros compresses to a few KiB; with a 4 MiB limit
    # the import must stop instead of writing it all (the daemon's 1 GiB: tests/integration).
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 8 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(gzip.compress(buffer.getvalue(), 9))
    assert os.path.getsize(path) < 64 << 10
    with pytest.raises(ResourceExhausted, match="uncompressed data exceeds the limit"):
        import_to_archive(path, tmp_path, log, limit=4 << 20)
    assert not (tmp_path / "imported.tar").exists()
    assert MAX_IMPORT_SIZE == 1 << 30
