"""store/space.py: writes into the data root stop at the free space reserve and leave nothing.

The filesystem is simulated: free space is a fixed budget minus what the data root holds, so
the tests neither fill the real disk nor depend on what else writes to it.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from isula_build.builder.builder import BuildEnvironment, BuildInput, build_image
from isula_build.errors import ResourceExhausted
from isula_build.store import Store
from isula_build.store.space import CHECK_INTERVAL, SpaceGuard, SpaceReserve
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination
from store_tars import diff_id, file, make_tar

MiB = 1 << 20
SETTING = "min_free_space in /etc/isula-build/configuration.toml"


def used_bytes(root: Path) -> int:
    total = 0
    for dirpath, dirs, names in os.walk(root):
        # A build's merged overlay mount shows its lower and upper dirs a second time.
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(dirpath, d))]
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass  # removed meanwhile (a work dir being deleted)
    return total


def simulate(store: Store, budget: int, reserve: int) -> None:
    """A filesystem of `budget` free bytes before the data root's files; `reserve` kept free."""
    root = store.space.root
    store.space.reserve = SpaceReserve(reserve, SETTING)
    store.space.free_bytes = lambda: budget - used_bytes(root)  # type: ignore[method-assign]


def ignore(line: str) -> None:
    pass


def leftovers(store: Store) -> list[str]:
    return os.listdir(store.layout.tmp)


def test_no_reserve_means_no_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    guard = SpaceGuard(tmp_path, SpaceReserve(0))
    monkeypatch.setattr(os, "statvfs", lambda path: pytest.fail("statvfs without a reserve"))
    meter = guard.meter()
    meter.wrote(10 * CHECK_INTERVAL)


def test_the_message_names_the_data_root_the_numbers_and_the_setting(tmp_path: Path) -> None:
    guard = SpaceGuard(tmp_path, SpaceReserve(1 << 30, SETTING))
    guard.free_bytes = lambda: 300 * MiB  # type: ignore[method-assign]
    with pytest.raises(ResourceExhausted) as info:
        guard.check()
    assert str(info.value) == (
        f"not enough free space on the filesystem of the data root {tmp_path}: 300 MiB left, "
        f"less than the 1 GiB kept free ({SETTING}); free some space, or lower that setting")


def test_a_meter_checks_at_the_start_and_every_interval(tmp_path: Path) -> None:
    guard = SpaceGuard(tmp_path, SpaceReserve(1))
    calls = []
    guard.free_bytes = lambda: calls.append(1) or 2  # type: ignore[method-assign]
    meter = guard.meter()
    assert len(calls) == 1
    for _ in range(3):
        meter.wrote(CHECK_INTERVAL // 2)
    assert len(calls) == 2
    meter.wrote(CHECK_INTERVAL)
    assert len(calls) == 3


def test_a_layer_that_would_eat_into_the_reserve_is_refused_and_removed(store: Store) -> None:
    small = make_tar(file("small", os.urandom(MiB)))
    big = make_tar(file("big", os.urandom(50 * MiB)))
    simulate(store, budget=100 * MiB, reserve=70 * MiB)
    with store.writer() as w:
        assert w.put_layer(io.BytesIO(small)).diff_id == diff_id(small)
        with pytest.raises(ResourceExhausted, match="not enough free space") as info:
            w.put_layer(io.BytesIO(big))
        assert SETTING in str(info.value)
        assert leftovers(store) == []
    assert not store.layout.blob(diff_id(big)[7:]).exists()


def test_no_layer_is_started_below_the_reserve(store: Store) -> None:
    simulate(store, budget=10 * MiB, reserve=20 * MiB)
    with store.writer() as w, pytest.raises(ResourceExhausted, match="not enough free space"):
        w.put_layer(io.BytesIO(make_tar(file("tiny", b"x"))))
    assert leftovers(store) == []


def test_an_import_stops_at_the_reserve(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "rootfs.tar"
    # Well past the reserve: the meter checks every 16 MiB, and the simulated free space counts
    # what the writer thread has written so far, which may lag behind on a busy machine.
    path.write_bytes(make_tar(file("big", os.urandom(80 * MiB))))
    simulate(store, budget=used_bytes(store.space.root) + 60 * MiB, reserve=30 * MiB)
    with pytest.raises(ResourceExhausted, match="not enough free space"):
        with ImportSource(path) as source, StoreDestination(store, ["isb-test-big"]) as dst:
            copy_image(source, dst, ignore)
    assert store.list_images() == [] and leftovers(store) == []
    assert os.listdir(store.layout.blobs) == []


def test_a_layer_extraction_stops_at_the_reserve(store: Store) -> None:
    layer = make_tar(*(file(f"f{n}", os.urandom(8 * MiB)) for n in range(5)))
    with store.writer() as w:
        w.put_layer(io.BytesIO(layer))
        w.put_config(b'{"rootfs": {"type": "layers", "diff_ids": ["%s"]}}' % diff_id(layer).encode())
        w.commit(["isb-test-layer:1"])
    simulate(store, budget=used_bytes(store.space.root) + 60 * MiB, reserve=40 * MiB)
    with pytest.raises(ResourceExhausted, match="not enough free space"):
        store.layer_dir(diff_id(layer))
    assert os.listdir(store.layout.layers) == [] and leftovers(store) == []


def test_a_build_stops_at_the_step_after_the_one_that_ate_into_the_reserve(
        store: Store, busybox_tar: Path, tmp_path: Path) -> None:
    with ImportSource(busybox_tar) as source, StoreDestination(store, ["busybox:latest"]) as dst:
        copy_image(source, dst, ignore)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "data").write_bytes(os.urandom(40 * MiB))
    data_root = store.space.root
    simulate(store, budget=used_bytes(data_root) + 60 * MiB, reserve=30 * MiB)
    env = BuildEnvironment(store=store, data_root=data_root, run_root=tmp_path / "run")
    request = BuildInput(build_id="full", context_dir=context,
                         dockerfile="FROM busybox\nCOPY data /data\nENV AFTER=copy\n")
    lines: list[str] = []
    with pytest.raises(ResourceExhausted, match="not enough free space"):
        build_image(request, env, lines.append, threading.Event())
    assert lines == ["STEP  1: FROM busybox", "STEP  2: COPY data /data", "STEP  3: ENV AFTER=copy"]
    assert [r.names for r in store.list_images()] == [("busybox:latest",)]
