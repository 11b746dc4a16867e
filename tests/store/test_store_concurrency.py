"""Several clients at once: writers, taggers and removers on threads leave a consistent store."""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Callable

from isula_build.errors import NotFound
from isula_build.store import Store
from store_tars import add_image, diff_id, directory, file, make_tar

BASE = make_tar(directory("etc"), file("etc/os-release", b"NAME=test\n"))


def check_consistent(store: Store) -> None:
    conn = store._db._conn
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    records = store.list_images()
    needed = set()
    all_names: list[str] = []
    for record in records:
        config = json.loads(store.config_bytes(record.id))
        assert config["rootfs"]["diff_ids"] == [l.diff_id for l in record.layers]
        for layer in record.layers:
            assert store.layer_blob_path(layer.diff_id).stat().st_size == layer.size
            needed.add(layer.diff_id[7:])
        needed.add(record.id)
        all_names.extend(record.names)
    assert len(all_names) == len(set(all_names))
    store.gc()
    assert set(os.listdir(store.layout.blobs)) == needed
    assert os.listdir(store.layout.tmp) == []


def run_threads(workers: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # collected and asserted on by the test
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_concurrent_writers_taggers_removers(store: Store) -> None:
    add_image(store, [BASE], ["base"])
    stop = threading.Event()
    committed: list[str] = []

    def writer(n: int) -> Callable[[], None]:
        def run() -> None:
            for j in range(12):
                app = make_tar(file(f"app-{n}-{j}", os.urandom(2000)))
                record = add_image(store, [BASE, app], [f"w{n}:{j}", "shared:latest"])
                committed.append(record.id)
        return run

    def tagger(seed: int) -> Callable[[], None]:
        def run() -> None:
            rnd = random.Random(seed)
            while not stop.is_set():
                images = store.list_images()
                if not images:
                    continue
                try:
                    store.tag(rnd.choice(images).id, f"t{seed}:{rnd.randrange(5)}")
                except NotFound:
                    pass  # removed meanwhile: the expected race
        return run

    def remover(seed: int) -> Callable[[], None]:
        def run() -> None:
            rnd = random.Random(seed)
            while not stop.is_set():
                images = store.list_images()
                if not images:
                    continue
                target = rnd.choice(images)
                ref = rnd.choice(target.names) if target.names and rnd.random() < 0.7 else target.id
                try:
                    store.remove(ref)
                except NotFound:
                    pass
                if rnd.random() < 0.2:
                    store.prune()
        return run

    background = [tagger(1), tagger(2), remover(3), remover(4)]
    bg_errors: list[BaseException] = []
    bg = threading.Thread(target=lambda: bg_errors.extend(run_threads(background)))
    bg.start()
    errors = run_threads([writer(n) for n in range(4)])
    stop.set()
    bg.join(120)
    assert errors == [] and bg_errors == [], errors + bg_errors
    assert len(committed) == 48
    check_consistent(store)
    # the store is still fully usable
    add_image(store, [BASE], ["after"])
    assert store.lookup("after").layers[0].diff_id == diff_id(BASE)
    check_consistent(store)


def test_concurrent_writers_of_the_same_image(store: Store) -> None:
    errors = run_threads([lambda n=n: add_image(store, [BASE], [f"same:{n}"]) for n in range(8)])
    assert errors == []
    [record] = store.list_images()
    assert record.names == tuple(sorted(f"same:{n}" for n in range(8)))
    check_consistent(store)
