"""Copies into and out of a real Store: import, load, save, and layer sharing."""

from __future__ import annotations

import json
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


def test_import_refuses_device_nodes(store: Store, tmp_path: Path, log) -> None:
    path = tmp_path / "dev.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("dev/sda")
        info.type, info.devmajor, info.devminor = tarfile.BLKTYPE, 8, 0
        tar.addfile(info)
    with pytest.raises(InvalidArgument):
        with ImportSource(path) as source, StoreDestination(store, ["isb-test-dev"]) as dst:
            copy_image(source, dst, log)
    assert store.list_images() == []


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
