"""Separated save and load against a real Store: round trips, the format, and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import threading
from pathlib import Path

import pytest

from separated_helpers import Images, Log, import_rootfs, make_tar, no_cancel
from isula_build.errors import Cancelled, InvalidArgument, NotFound
from isula_build.separated.load import SKIP_CHECK_WARNING, load_separated, plan_load
from isula_build.separated.save import plan_save, save_separated
from isula_build.store import Store
from isula_build.transports.archive import open_archive

BASE, LIB = "isb-test-base:1", "isb-test-lib:1"
APP1, APP2 = "isb-test-app1:latest", "example.io/team/app2:v2"


def save(store: Store, dest: Path, apps: list[str], lib: str = LIB, rename: Path | None = None,
         log: Log | None = None, base: str = BASE) -> dict:
    plan = plan_save(store, base, lib, apps, rename)
    save_separated(store, plan, dest, log if log is not None else Log(), no_cancel)
    return json.loads((dest / "manifest").read_bytes())


def load(store: Store, directory: Path, app: str, base: Path | None = None,
         lib: Path | None = None, skip_check: bool = False, log: Log | None = None) -> str:
    plan = plan_load(directory, app, base, lib)
    return load_separated(store, plan, skip_check, log if log is not None else Log(), no_cancel)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_state(store: Store) -> tuple[list, list[str]]:
    """What a failed operation must leave unchanged: the images and every blob."""
    return store.list_images(), sorted(os.listdir(store.layout.blobs))


def siblings(dest: Path) -> list[str]:
    return sorted(os.listdir(dest.parent))


# ------------------------------------------------------------------------------- round trips

def test_round_trip_two_apps_into_an_empty_store(store: Store, images: Images, empty_store: Store,
                                                 tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    log = Log()
    manifest = save(store, dest, [APP1, APP2], log=log)

    # Base and lib are shared and written once, named after the first app in name order.
    assert sorted(os.listdir(dest)) == sorted([
        "manifest", "app2_v2_base_image.tar.gz", "app2_v2_lib_image.tar.gz",
        "app2_v2_app_image.tar.gz", "isb-test-app1_latest_app_image.tar.gz"])
    assert sorted(manifest) == sorted([APP1, APP2])
    for entry in manifest.values():
        for part in ("app", "lib", "base"):
            assert entry[part + "Hash"] == sha256_file(dest / entry[part])
        assert entry["baseImageName"] == BASE and entry["libImageName"] == LIB
    assert log.count("Getting image source signatures") == 2
    assert log.count(f"Copying config sha256:{images.app1.id}") == 1

    for app, record in ((APP1, images.app1), (APP2, images.app2)):
        log = Log()
        assert load(empty_store, dest, app, log=log) == record.id
        assert log[-1] == f"Loaded image as {record.id}"
        loaded = empty_store.lookup(app)
        assert loaded.id == record.id and loaded.names == (app,)
        assert empty_store.config_bytes(record.id) == store.config_bytes(record.id)
        for layer in record.layers:
            assert (empty_store.layer_blob_path(layer.diff_id).read_bytes()
                    == store.layer_blob_path(layer.diff_id).read_bytes())


def test_load_into_a_store_that_has_the_base_and_lib(store: Store, images: Images,
                                                     tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    save(store, dest, [APP1, APP2])
    store.remove(APP1)
    assert load(store, dest, "isb-test-app1", base=dest / "app2_v2_base_image.tar.gz",
                lib=dest / "app2_v2_lib_image.tar.gz") == images.app1.id
    assert store.lookup(APP1).id == images.app1.id


def test_without_lib_the_app_tarball_holds_lib_layers(store: Store, images: Images,
                                                      empty_store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    manifest = save(store, dest, [APP1], lib="")
    entry = manifest[APP1]
    assert entry["lib"] == "" and entry["libLayers"] is None and len(entry["appLayers"]) == 2
    assert not list(dest.glob("*_lib_image.tar.gz"))
    assert load(empty_store, dest, APP1) == images.app1.id


def test_the_three_tarballs_unpacked_together_are_a_docker_archive(
        store: Store, images: Images, tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    entry = save(store, dest, [APP1])[APP1]
    merged = tmp_path / "merged"
    for part in ("base", "lib", "app"):
        with tarfile.open(dest / entry[part]) as tar:
            tar.extractall(merged, filter="data")
    archive = tmp_path / "merged.tar"
    with tarfile.open(archive, "w") as tar:
        for name in sorted(os.listdir(merged)):
            tar.add(merged / name, arcname=name)
    [(source, tags)] = open_archive(archive)
    with source:
        assert tags == [APP1]
        assert hashlib.sha256(source.config_bytes()).hexdigest() == images.app1.id


def test_tarballs_in_the_originals_member_order_load(store: Store, images: Images,
                                                     empty_store: Store, tmp_path: Path) -> None:
    """The original packs each directory in name order (layers before manifest.json)."""
    dest = tmp_path / "Images"
    entry = save(store, dest, [APP1])[APP1]
    unpacked = tmp_path / "unpacked"
    with tarfile.open(dest / entry["app"]) as tar:
        tar.extractall(unpacked, filter="data")
    repacked = dest / entry["app"]
    with tarfile.open(repacked, "w:gz") as tar:
        for name in sorted(os.listdir(unpacked)):
            tar.add(unpacked / name, arcname=name)
    manifest = json.loads((dest / "manifest").read_bytes())
    manifest[APP1]["appHash"] = sha256_file(repacked)
    (dest / "manifest").write_text(json.dumps(manifest))
    assert load(empty_store, dest, APP1) == images.app1.id


def test_same_images_give_the_same_bytes_and_concurrent_saves_do_not_interfere(
        store: Store, images: Images, tmp_path: Path) -> None:
    dests = [tmp_path / f"out{i}" / "Images" for i in range(4)]
    errors: list[BaseException] = []

    def run(dest: Path) -> None:
        try:
            dest.parent.mkdir()
            save(store, dest, [APP1, APP2])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in dests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    first = {name: (dests[0] / name).read_bytes() for name in os.listdir(dests[0])}
    for dest in dests[1:]:
        assert {name: (dest / name).read_bytes() for name in os.listdir(dest)} == first


def test_rename_file_renames_tarballs(store: Store, images: Images, empty_store: Store,
                                      tmp_path: Path) -> None:
    rename = tmp_path / "rename.json"
    rename.write_text(json.dumps([
        {"name": "isb-test-app1_latest_app_image.tar.gz", "rename": "app1.tar.gz"},
        {"name": "app2_v2_base_image.tar.gz", "rename": "base.tar.gz"},
        {"name": "not_saved_here.tar.gz", "rename": "ignored.tar.gz"}]))
    dest = tmp_path / "Images"
    manifest = save(store, dest, [APP1, APP2], rename=rename)
    assert manifest[APP1]["app"] == "app1.tar.gz" and manifest[APP1]["base"] == "base.tar.gz"
    assert sorted(os.listdir(dest)) == sorted([
        "manifest", "base.tar.gz", "app2_v2_lib_image.tar.gz", "app2_v2_app_image.tar.gz",
        "app1.tar.gz"])
    assert load(empty_store, dest, APP1) == images.app1.id


def test_an_empty_existing_destination_is_used(store: Store, images: Images,
                                               tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    dest.mkdir()
    save(store, dest, [APP1])
    assert (dest / "manifest").is_file()
    assert siblings(dest) == sorted(["Images", "store", "rootfs.tar"])


def test_no_check_warns_and_loads(store: Store, images: Images, empty_store: Store,
                                  tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    save(store, dest, [APP1])
    manifest = json.loads((dest / "manifest").read_bytes())
    manifest[APP1]["appHash"] = "0" * 64   # wrong, but not checked
    (dest / "manifest").write_text(json.dumps(manifest))
    log = Log()
    assert load(empty_store, dest, APP1, skip_check=True, log=log) == images.app1.id
    assert log[0] == SKIP_CHECK_WARNING


# --------------------------------------------------------------------------------- bad input

def check_save_refused(store: Store, dest: Path, apps: list[str], message: str,
                       lib: str = LIB, rename: Path | None = None,
                       error: type[Exception] = InvalidArgument, base: str = BASE) -> None:
    before, existed = store_state(store), dest.exists()
    around = siblings(dest)
    with pytest.raises(error) as info:
        save(store, dest, apps, lib=lib, rename=rename, base=base)
    assert message in str(info.value)
    assert store_state(store) == before
    assert dest.exists() == existed
    assert siblings(dest) == around   # no temporary directory left behind


def test_app_not_built_on_the_base(store: Store, images: Images, tmp_path: Path) -> None:
    rootfs = tmp_path / "other-rootfs.tar"
    rootfs.write_bytes(make_tar({"etc/os-release": b"NAME=another\n"}))
    import_rootfs(store, rootfs, "isb-test-base2:1")
    check_save_refused(store, tmp_path / "Images", [APP1],
                       f"app image {APP1} is not built on base image isb-test-base2:1", lib="",
                       base="isb-test-base2:1")


def test_app_not_built_on_the_lib(store: Store, images: Images, tmp_path: Path) -> None:
    check_save_refused(store, tmp_path / "Images", [APP1, "isb-test-other:1"],
                       f"app image isb-test-other:1 is not built on lib image {LIB}")


def test_lib_not_between_base_and_app(store: Store, images: Images, tmp_path: Path) -> None:
    # The "other" image sits on the base but is no lib of app1; a lib equal to the base isn't either.
    check_save_refused(store, tmp_path / "Images", [APP1],
                       f"app image {APP1} is not built on lib image isb-test-other:1",
                       lib="isb-test-other:1")
    store.tag(BASE, "isb-test-same-as-base:1")
    check_save_refused(store, tmp_path / "Images", [APP1],
                       "lib image isb-test-same-as-base:1 is not between base image",
                       lib="isb-test-same-as-base:1")


def test_non_empty_destination(store: Store, images: Images, tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    check_save_refused(store, dest, [APP1], "is not empty")
    assert os.listdir(dest) == ["keep.txt"]
    file_dest = tmp_path / "file"
    file_dest.write_text("x")
    check_save_refused(store, file_dest, [APP1], "is not a directory")


def test_image_given_by_id(store: Store, images: Images, tmp_path: Path) -> None:
    for ref in (images.app1.id, images.app1.id[:12], f"sha256:{images.app1.id}"):
        check_save_refused(store, tmp_path / "Images", [ref],
                           f'using image ID "{ref}" as image name to save separated image is '
                           "not allowed")
    with pytest.raises(InvalidArgument, match="using image ID"):
        plan_save(store, images.base.id, LIB, [APP1], None)


def test_rename_file_mapping_two_names_to_one(store: Store, images: Images,
                                              tmp_path: Path) -> None:
    rename = tmp_path / "rename.json"
    rename.write_text(json.dumps([
        {"name": "isb-test-app1_latest_app_image.tar.gz", "rename": "same.tar.gz"},
        {"name": "app2_v2_app_image.tar.gz", "rename": "same.tar.gz"}]))
    check_save_refused(store, tmp_path / "Images", [APP1, APP2], "maps two names to one",
                       rename=rename)
    # Renaming onto the name another tarball keeps is the same clash.
    rename.write_text(json.dumps([
        {"name": "isb-test-app1_latest_app_image.tar.gz", "rename": "app2_v2_app_image.tar.gz"}]))
    check_save_refused(store, tmp_path / "Images", [APP1, APP2], "would both be named",
                       rename=rename)
    rename.write_text("[{not json")
    check_save_refused(store, tmp_path / "Images", [APP1], "is not valid JSON", rename=rename)


def test_missing_image(store: Store, images: Images, tmp_path: Path) -> None:
    check_save_refused(store, tmp_path / "Images", ["isb-test-nothing:1"],
                       'image "isb-test-nothing:1" not found', error=NotFound)


def test_failure_midway_leaves_no_destination(store: Store, images: Images,
                                              tmp_path: Path) -> None:
    """A layer blob that went bad in the store is caught while the second app is written."""
    blob = store.layer_blob_path(images.app2.layers[-1].diff_id)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[600] ^= 0xFF
    blob.write_bytes(bytes(data))
    dest = tmp_path / "Images"
    around = siblings(dest)
    with pytest.raises(InvalidArgument, match="does not match its content"):
        save(store, dest, [APP1, APP2])
    assert not dest.exists() and siblings(dest) == around


@pytest.fixture
def saved(store: Store, images: Images, tmp_path: Path) -> Path:
    dest = tmp_path / "Images"
    save(store, dest, [APP1, APP2])
    return dest


def check_load_refused(store: Store, directory: Path, message: str, app: str = APP1,
                       error: type[Exception] = InvalidArgument, **kw: object) -> None:
    before = store_state(store)
    with pytest.raises(error) as info:
        load(store, directory, app, **kw)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert store_state(store) == before


def test_tampered_tarball(saved: Path, empty_store: Store) -> None:
    target = saved / "app2_v2_lib_image.tar.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    check_load_refused(empty_store, saved, f'check sum for file "{target}" failed')
    # Skipping the check, the damage still surfaces (gzip CRC or layer digest) and nothing is kept.
    before = store_state(empty_store)
    with pytest.raises(InvalidArgument):
        load(empty_store, saved, APP1, skip_check=True)
    assert store_state(empty_store) == before


def test_missing_tarball(saved: Path, empty_store: Store) -> None:
    (saved / "isb-test-app1_latest_app_image.tar.gz").unlink()
    check_load_refused(empty_store, saved, "app tarball", error=NotFound)
    check_load_refused(empty_store, saved, "does not exist", skip_check=True, error=NotFound)


def test_manifest_not_json(saved: Path, empty_store: Store) -> None:
    (saved / "manifest").write_text('{"isb-test-app1:latest": ')
    check_load_refused(empty_store, saved, "failed: not valid JSON")
    (saved / "manifest").write_text("[]")
    check_load_refused(empty_store, saved, "not a JSON object")
    (saved / "manifest").unlink()
    check_load_refused(empty_store, saved, "manifest file", error=NotFound)


def test_app_not_in_manifest(saved: Path, empty_store: Store) -> None:
    check_load_refused(empty_store, saved, "failed to find app image isb-test-nothing:latest",
                       app="isb-test-nothing")


def test_tarball_names_cannot_leave_the_directory(saved: Path, empty_store: Store) -> None:
    manifest = json.loads((saved / "manifest").read_bytes())
    manifest[APP1]["app"] = "../escape.tar.gz"
    (saved / "manifest").write_text(json.dumps(manifest))
    check_load_refused(empty_store, saved, "is not a file name in the manifest's directory")


def test_lib_given_for_an_app_saved_without_one(store: Store, images: Images,
                                                empty_store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "Images"
    save(store, dest, [APP1], lib="")
    check_load_refused(empty_store, dest, "was saved without a lib image",
                       lib=dest / "manifest")


def test_a_directory_of_another_app_is_not_mixed_in(saved: Path, empty_store: Store,
                                                    tmp_path: Path) -> None:
    """Giving app2's tarball as app1's (checksums skipped) fails on the layers, stores nothing."""
    shutil.copy(saved / "app2_v2_app_image.tar.gz", saved / "isb-test-app1_latest_app_image.tar.gz")
    before = store_state(empty_store)
    with pytest.raises(InvalidArgument):
        load(empty_store, saved, APP1, skip_check=True)
    assert store_state(empty_store) == before


def test_cancelled_save_and_load_leave_nothing(store: Store, images: Images, empty_store: Store,
                                               tmp_path: Path) -> None:
    calls = {"n": 0}

    def cancel_after_a_few() -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise Cancelled("the request was cancelled")

    dest = tmp_path / "Images"
    around = siblings(dest)
    plan = plan_save(store, BASE, LIB, [APP1, APP2], None)
    with pytest.raises(Cancelled):
        save_separated(store, plan, dest, Log(), cancel_after_a_few)
    assert not dest.exists() and siblings(dest) == around

    save(store, dest, [APP1])
    calls["n"] = 0
    before = store_state(empty_store)
    with pytest.raises(Cancelled):
        load_separated(empty_store, plan_load(dest, APP1, None, None), False, Log(),
                       cancel_after_a_few)
    assert store_state(empty_store) == before
