"""Copies into and out of a real Store: import, load, save, and layer sharing."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from isula_build.errors import InvalidArgument
from isula_build.store import Store
from isula_build.transports.archive import open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination, StoreSource
from transport_helpers import (Image, docker_archive_members, make_layer, read_all, sha,
                               write_tar)


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "data")
    yield s
    s.close()


def load(store: Store, path: Path, log) -> list[str]:
    ids = []
    for source, names in open_archive(path):
        with source, StoreDestination(store, names) as dst:
            ids.append(copy_image(source, dst, log))
    return ids


def test_import_into_store(store: Store, busybox_tar: Path, log) -> None:
    with ImportSource(busybox_tar) as source, StoreDestination(store, ["isb-test-bb"]) as dst:
        image_id = copy_image(source, dst, log)
    record = store.lookup("isb-test-bb:latest")
    assert record.id == image_id
    assert record.names == ("isb-test-bb:latest",)
    [layer] = record.layers
    assert layer.diff_id == sha(busybox_tar.read_bytes())
    assert layer.size == busybox_tar.stat().st_size
    config = json.loads(store.config_bytes(image_id))
    assert config["rootfs"]["diff_ids"] == [layer.diff_id]
    assert log[1] == f"Copying blob {layer.diff_id}"


def test_import_keeps_device_nodes(store: Store, tmp_path: Path, log) -> None:
    # A real root filesystem has its /dev; docker import keeps those entries, and so do we.
    path = tmp_path / "dev.tar"
    with tarfile.open(path, "w") as tar:
        for name, type_, major, minor in (("dev/sda", tarfile.BLKTYPE, 8, 0),
                                          ("dev/null", tarfile.CHRTYPE, 1, 3),
                                          ("dev/initctl", tarfile.FIFOTYPE, 0, 0)):
            info = tarfile.TarInfo(name)
            info.type, info.devmajor, info.devminor, info.mode = type_, major, minor, 0o660
            tar.addfile(info)
    with ImportSource(path) as source, StoreDestination(store, ["isb-test-dev"]) as dst:
        copy_image(source, dst, log)
    [layer] = store.lookup("isb-test-dev").layers
    assert store.layer_blob_path(layer.diff_id).read_bytes() == path.read_bytes()
    extracted = store.layer_dir(layer.diff_id)
    sda, null = os.lstat(extracted / "dev/sda"), os.lstat(extracted / "dev/null")
    assert stat.S_ISBLK(sda.st_mode) and os.major(sda.st_rdev) == 8 and os.minor(sda.st_rdev) == 0
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISFIFO(os.lstat(extracted / "dev/initctl").st_mode)


def test_load_shares_layers_and_save_round_trips(store: Store, tmp_path: Path,
                                                 two_images: list[Image], log) -> None:
    path = write_tar(tmp_path / "in.tar", docker_archive_members(two_images, "docker25", True))
    ids = load(store, path, log)
    assert ids == [img.image_id for img in two_images]
    assert store.lookup("isb-test-srv:latest").id == two_images[1].image_id
    # The second image's base layer is already in the store: announced, not copied again.
    base = sha(two_images[0].layers[0])
    assert log.count(f"Copying blob {base}") == 2

    # Save both from the store, in both formats, and read them back unchanged.
    for writer_class in (DockerArchiveWriter, OciArchiveWriter):
        out = tmp_path / f"{writer_class.__name__}.tar"
        with writer_class(out) as archive:
            for image in two_images:
                record = store.lookup(image.image_id)
                with StoreSource(store, record) as source, archive.image(list(record.names)) as dst:
                    assert copy_image(source, dst, log) == image.image_id
        reread = open_archive(out)
        assert [sorted(n) for _, n in reread] == [sorted(img.tags) for img in two_images]
        for (source, _), image in zip(reread, two_images):
            with source:
                assert read_all(source) == (image.config, image.layers)


def test_load_with_wrong_layer_digest_changes_nothing(store: Store, tmp_path: Path, log) -> None:
    good = make_layer({"f": b"good"})
    image = Image([good], ["isb-test-w:1"])
    members = docker_archive_members([image])
    members[f"{sha(good)[7:]}.tar"] = make_layer({"f": b"bad!"})
    with pytest.raises(InvalidArgument, match="mismatch"):
        load(store, write_tar(tmp_path / "in.tar", members), log)
    assert store.list_images() == []
    assert not store.has_layer(sha(good))
