"""Store: writing images, looking them up, tagging, removing, gc."""

from __future__ import annotations

import hashlib
import io
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from isula_build.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from isula_build.store import ImageRecord, LayerRecord, Store
from store_tars import add_image, diff_id, directory, file, make_config, make_tar

BASE = make_tar(directory("etc"), file("etc/os-release", b"NAME=test\n"))
APP = make_tar(directory("app"), file("app/main", b"#!/bin/sh\necho hi\n", mode=0o755))
OTHER = make_tar(file("srv.txt", b"x" * 5000))


def blob_names(store: Store) -> set[str]:
    return set(os.listdir(store.layout.blobs))


def tmp_entries(store: Store) -> list[str]:
    return os.listdir(store.layout.tmp)


def test_layout_and_permissions(store: Store, data_root: Path) -> None:
    root = data_root / "storage"
    for sub in ("blobs/sha256", "layers", "tmp", "store.db", "store.lock"):
        assert (root / sub).exists(), sub
    assert data_root.stat().st_mode & 0o777 == 0o700
    assert root.stat().st_mode & 0o777 == 0o700
    mode = store._db._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_write_and_read_back(store: Store) -> None:
    record = add_image(store, [BASE, APP], ["app"])
    config = make_config([BASE, APP])
    assert record.id == hashlib.sha256(config).hexdigest()
    assert record.names == ("app:latest",)
    assert record.layers == (LayerRecord(diff_id(BASE), len(BASE)), LayerRecord(diff_id(APP), len(APP)))
    assert record.size == len(BASE) + len(APP)
    assert record.created == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    assert store.config_bytes(record.id) == config
    assert store.config_bytes("sha256:" + record.id) == config
    assert store.layer_blob_path(diff_id(APP)).read_bytes() == APP
    assert store.has_layer(diff_id(BASE)) and not store.has_layer(diff_id(OTHER))
    assert store.list_images() == [record]
    # blobs are exactly the config and the two layer tars
    assert blob_names(store) == {record.id, diff_id(BASE)[7:], diff_id(APP)[7:]}
    assert tmp_entries(store) == []


def test_records_survive_reopen(data_root: Path) -> None:
    with Store(data_root) as s:
        record = add_image(s, [BASE], ["a:1", "b:2"])
    with Store(data_root) as s:
        assert s.lookup("a:1") == record
        assert s.list_images() == [record]


@pytest.mark.parametrize("created, expected", [
    ("2024-05-06T07:08:09.123456789Z", datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)),
    ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)),
    ("2024-05-06T15:08:09.5+08:00", datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=timezone.utc)),
    ("2024-05-05T23:38:09-07:30", datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)),
    ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=timezone.utc)),
])
def test_created_is_parsed_to_utc(store: Store, created: str, expected: datetime) -> None:
    with store.writer() as w:
        w.put_layer(io.BytesIO(BASE))
        w.put_config(make_config([BASE], created=created))
        record = w.commit([])
    assert record.created == expected
    assert store.lookup(record.id).created == expected


def test_created_missing_means_load_time(store: Store) -> None:
    before = datetime.now(timezone.utc)
    with store.writer() as w:
        w.put_layer(io.BytesIO(BASE))
        w.put_config(make_config([BASE], created=None))
        record = w.commit([])
    assert before - timedelta(seconds=1) <= record.created <= datetime.now(timezone.utc)


def test_malformed_created_is_refused(store: Store) -> None:
    with store.writer() as w:
        w.put_layer(io.BytesIO(BASE))
        with pytest.raises(InvalidArgument, match="created"):
            w.put_config(make_config([BASE], created="yesterday"))


# --- lookup --------------------------------------------------------------------------------------

def test_lookup_forms(store: Store) -> None:
    record = add_image(store, [BASE], ["busybox", "registry.local:5000/lib/tool:v1"])
    assert store.lookup("busybox").id == record.id
    assert store.lookup("busybox:latest").id == record.id
    assert store.lookup("registry.local:5000/lib/tool:v1").id == record.id
    assert store.lookup(record.id).id == record.id
    assert store.lookup("sha256:" + record.id).id == record.id
    assert store.lookup(record.id[:3]).id == record.id
    assert store.lookup(record.id[:12]).id == record.id


def test_lookup_not_found(store: Store) -> None:
    record = add_image(store, [BASE], ["busybox"])
    for ref in ("nothere", "busybox:other", "sha256:" + "0" * 64, "0" * 64, record.id[:2], "BusyBox"):
        with pytest.raises(NotFound, match=f'image "{ref}" not found'):
            store.lookup(ref)
    with pytest.raises(InvalidArgument):
        store.lookup("")


def _two_images_with_common_prefix(store: Store) -> tuple[ImageRecord, ImageRecord, str]:
    by_prefix: dict[str, bytes] = {}
    n = 0
    while True:
        config = make_config([BASE], extra={"n": n})
        prefix = hashlib.sha256(config).hexdigest()[:3]
        if prefix in by_prefix:
            break
        by_prefix[prefix] = config
        n += 1
    records = []
    for cfg in (by_prefix[prefix], config):
        with store.writer() as w:
            if not w.has_layer(diff_id(BASE)):
                w.put_layer(io.BytesIO(BASE))
            w.put_config(cfg)
            records.append(w.commit([]))
    return records[0], records[1], prefix


def test_ambiguous_prefix_is_invalid_argument(store: Store) -> None:
    a, b, prefix = _two_images_with_common_prefix(store)
    with pytest.raises(InvalidArgument, match=f'"{prefix}" is ambiguous'):
        store.lookup(prefix)
    # one more digit tells them apart (they differ somewhere after the common prefix)
    common = os.path.commonprefix([a.id, b.id])
    assert store.lookup(a.id[:len(common) + 1]).id == a.id
    assert store.lookup(b.id[:len(common) + 1]).id == b.id


def test_name_wins_over_id_prefix(store: Store) -> None:
    a = add_image(store, [BASE], [])
    prefix = a.id[:6]
    b = add_image(store, [APP], [prefix])  # a name that looks like a's ID prefix
    assert store.lookup(prefix).id == b.id
    assert store.lookup(a.id[:7]).id == a.id


# --- names ---------------------------------------------------------------------------------------

def test_commit_existing_image_only_adds_names(store: Store) -> None:
    first = add_image(store, [BASE], ["one:1"])
    second = add_image(store, [BASE], ["two:2"])  # same config, same ID (SPEC §9)
    assert second.id == first.id
    assert second.names == ("one:1", "two:2")
    assert second.created == first.created
    assert len(store.list_images()) == 1


def test_name_moves_to_the_new_image(store: Store) -> None:
    old = add_image(store, [BASE], ["app:1", "app:keep"])
    new = add_image(store, [BASE, APP], ["app:1"])
    assert store.lookup("app:1").id == new.id
    assert store.lookup(old.id).names == ("app:keep",)
    newer = add_image(store, [BASE, OTHER], ["app:keep"])
    assert store.lookup(old.id).names == ()  # now <none>, still stored
    assert store.lookup("app:keep").id == newer.id


def test_tag_adds_and_moves(store: Store) -> None:
    a = add_image(store, [BASE], ["a"])
    b = add_image(store, [APP], ["b"])
    assert store.tag("a", "extra:1").names == ("a:latest", "extra:1")
    assert store.tag(a.id[:5], "extra:2").names == ("a:latest", "extra:1", "extra:2")
    assert store.tag("b", "extra:1").names == ("b:latest", "extra:1")
    assert store.lookup("a").names == ("a:latest", "extra:2")
    assert store.tag("a", "a").names == ("a:latest", "extra:2")  # tagging with its own name: no-op
    assert b.id != a.id


@pytest.mark.parametrize("bad, reason", [
    ("UPPER", "lowercase"),
    ("a" * 256, "longer than 255"),
    ("ok:" + "t" * 129, "longer than 128"),
    ("a@sha256:" + "0" * 64, "digest"),
    ("a b", "may only contain"),
    ("a:-x", "tag"),
])
def test_invalid_names_are_refused(store: Store, bad: str, reason: str) -> None:
    add_image(store, [BASE], ["a"])
    with pytest.raises(InvalidArgument, match=reason):
        store.tag("a", bad)
    with store.writer() as w:
        w.put_config(make_config([BASE]))
        with pytest.raises(InvalidArgument, match=reason):
            w.commit(["fine", bad])
    assert store.lookup("a").names == ("a:latest",)


def test_tag_unknown_image(store: Store) -> None:
    with pytest.raises(NotFound, match='image "ghost" not found'):
        store.tag("ghost", "x")


# --- remove, prune, gc ---------------------------------------------------------------------------

def test_remove_one_of_several_names_untags(store: Store) -> None:
    record = add_image(store, [BASE], ["busybox", "busybox:2"])
    assert store.remove("busybox") == ["Untagged image: busybox:latest"]
    assert store.lookup(record.id).names == ("busybox:2",)
    assert store.layer_blob_path(diff_id(BASE)).is_file()


def test_remove_last_name_deletes(store: Store) -> None:
    record = add_image(store, [BASE, APP], ["busybox"])
    store.layer_dir(diff_id(BASE))
    assert store.remove("busybox") == ["Untagged image: busybox:latest", f"Deleted image: {record.id}"]
    assert store.list_images() == []
    assert blob_names(store) == set()
    assert os.listdir(store.layout.layers) == []


def test_remove_by_id_deletes_every_name(store: Store) -> None:
    record = add_image(store, [BASE], ["b:2", "a:1"])
    assert store.remove(record.id[:8]) == ["Untagged image: a:1", "Untagged image: b:2",
                                           f"Deleted image: {record.id}"]
    with pytest.raises(NotFound):
        store.remove(record.id)


def test_shared_layers_stay_until_the_last_image_goes(store: Store) -> None:
    a = add_image(store, [BASE, APP], ["a"])
    b = add_image(store, [BASE, OTHER], ["b"])
    base_dir = store.layer_dir(diff_id(BASE))
    app_dir = store.layer_dir(diff_id(APP))
    store.remove("a")
    assert base_dir.is_dir() and not app_dir.exists()
    assert blob_names(store) == {b.id, diff_id(BASE)[7:], diff_id(OTHER)[7:]}
    assert store.has_layer(diff_id(BASE)) and not store.has_layer(diff_id(APP))
    store.remove("b")
    assert blob_names(store) == set() and not base_dir.exists()
    assert a.id != b.id


def test_remove_all(store: Store) -> None:
    a = add_image(store, [BASE], ["a", "a:2"])
    b = add_image(store, [APP], [])
    lines = store.remove_all()
    assert sorted(lines) == sorted(["Untagged image: a:2", "Untagged image: a:latest",
                                    f"Deleted image: {a.id}", f"Deleted image: {b.id}"])
    # each image's untag lines come right before its deleted line
    i = lines.index(f"Deleted image: {a.id}")
    assert lines[i - 2:i] == ["Untagged image: a:2", "Untagged image: a:latest"]
    assert store.list_images() == [] and blob_names(store) == set()


def test_prune_removes_only_unnamed(store: Store) -> None:
    named = add_image(store, [BASE], ["keep"])
    unnamed = add_image(store, [BASE, APP], [])
    assert store.prune() == [f"Deleted image: {unnamed.id}"]
    assert [r.id for r in store.list_images()] == [named.id]
    assert blob_names(store) == {named.id, diff_id(BASE)[7:]}
    assert store.prune() == []


# --- the writer ----------------------------------------------------------------------------------

def test_abandoned_writer_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.writer() as w:
            w.put_layer(io.BytesIO(BASE))
            w.put_config(make_config([BASE]))
            raise RuntimeError("client went away")
    assert blob_names(store) == set()
    store.gc()
    assert blob_names(store) == set() and tmp_entries(store) == []
    assert store.list_images() == []


def test_abandoned_writer_keeps_blobs_others_use(store: Store) -> None:
    kept = add_image(store, [BASE], ["kept"])
    with store.writer() as w:
        w.put_layer(io.BytesIO(BASE))
        w.put_layer(io.BytesIO(APP))
    assert blob_names(store) == {kept.id, diff_id(BASE)[7:]}


def test_open_writer_blobs_survive_gc(store: Store) -> None:
    with store.writer() as w:
        w.put_layer(io.BytesIO(APP))
        store.gc()  # another client's remove runs gc meanwhile
        assert diff_id(APP)[7:] in blob_names(store)
        w.put_config(make_config([APP]))
        store.gc()
        record = w.commit(["app"])
    assert store.lookup("app") == record


def test_writer_pins_store_layers_it_relies_on(store: Store) -> None:
    add_image(store, [BASE], ["base"])
    with store.writer() as w:
        assert w.pin_layers([diff_id(BASE)])
        store.remove("base")  # the base image goes while a build relies on its layer
        assert store.layer_blob_path(diff_id(BASE)).is_file()
        w.put_layer(io.BytesIO(APP))
        w.put_config(make_config([BASE, APP]))
        record = w.commit(["app"])
    assert [l.diff_id for l in record.layers] == [diff_id(BASE), diff_id(APP)]
    assert store.has_layer(diff_id(BASE))


def test_writer_has_layer_only_answers(store: Store) -> None:
    add_image(store, [BASE], ["base"])
    with store.writer() as w:
        assert w.has_layer(diff_id(BASE))
        store.remove("base")  # nothing pinned it: the layer goes with its image
        assert not w.has_layer(diff_id(BASE))
        assert not w.pin_layers([diff_id(BASE)])
    assert blob_names(store) == set()


def test_put_layer_digest_mismatch(store: Store) -> None:
    with store.writer() as w:
        with pytest.raises(InvalidArgument, match="digest mismatch"):
            w.put_layer(io.BytesIO(BASE), expected_diff_id=diff_id(APP))
        with pytest.raises(InvalidArgument, match="invalid layer digest"):
            w.put_layer(io.BytesIO(BASE), expected_diff_id="sha256:xyz")
    assert blob_names(store) == set() and tmp_entries(store) == []


def test_put_layer_limit(store: Store) -> None:
    with store.writer() as w:
        with pytest.raises(ResourceExhausted, match="limit"):
            w.put_layer(io.BytesIO(BASE), limit=len(BASE) - 1)
        assert w.put_layer(io.BytesIO(BASE), limit=len(BASE)).size == len(BASE)
    assert tmp_entries(store) == []


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello, this is not a tar" * 100, "not a tar"),
    (BASE[:700], "truncated"),
    (make_tar(file("../escape", b"x")), "climbs out"),
])
def test_put_layer_refuses_bad_tars_and_leaves_nothing(store: Store, data: bytes, message: str) -> None:
    with store.writer() as w:
        with pytest.raises(InvalidArgument, match=message):
            w.put_layer(io.BytesIO(data))
    assert blob_names(store) == set() and tmp_entries(store) == []


def test_put_layer_keeps_device_nodes(store: Store) -> None:
    from store_tars import chardev, fifo
    layer = make_tar(directory("dev"), chardev("dev/null", 1, 3), fifo("dev/initctl"))
    with store.writer() as w:
        assert w.put_layer(io.BytesIO(layer)).diff_id == diff_id(layer)
        assert store.layout.blob(diff_id(layer)[7:]).read_bytes() == layer


class ReadOnly:
    """A stream with read() only (no readinto), like some HTTP bodies."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def read(self, n: int = -1) -> bytes:
        n = min(n if n >= 0 else len(self._data), self._step)
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


def test_put_layer_from_a_read_only_stream_in_small_pieces(store: Store) -> None:
    with store.writer() as w:
        record = w.put_layer(ReadOnly(APP, 77))  # type: ignore[arg-type]
        assert record == LayerRecord(diff_id(APP), len(APP))
        big = make_tar(file("big", os.urandom(5 << 20)))
        assert w.put_layer(ReadOnly(big, 3 << 20)).diff_id == diff_id(big)  # type: ignore[arg-type]
        assert store.layout.blob(diff_id(APP)[7:]).read_bytes() == APP
        assert store.layout.blob(diff_id(big)[7:]).read_bytes() == big
        store.layout.blob(diff_id(big)[7:]).unlink()
        assert w.put_layer(io.BytesIO(big)).diff_id == diff_id(big)  # readinto, many chunks
        assert store.layout.blob(diff_id(big)[7:]).read_bytes() == big


@pytest.mark.parametrize("config, message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"{}", "rootfs.diff_ids"),
    (json.dumps({"rootfs": {"diff_ids": ["md5:abc"]}}).encode(), "rootfs.diff_ids"),
    (make_config([OTHER]), "neither put nor found"),
])
def test_put_config_validation(store: Store, config: bytes, message: str) -> None:
    with store.writer() as w:
        w.put_layer(io.BytesIO(BASE))
        with pytest.raises(InvalidArgument, match=message):
            w.put_config(config)
    assert blob_names(store) == set()


def test_commit_rules(store: Store) -> None:
    with store.writer() as w:
        with pytest.raises(FailedPrecondition, match="put_config"):
            w.commit(["x"])
        w.put_layer(io.BytesIO(BASE))
        w.put_config(make_config([BASE]))
        w.commit(["x"])
        with pytest.raises(FailedPrecondition, match="already committed"):
            w.commit(["y"])
    with pytest.raises(FailedPrecondition, match="closed"):
        w.put_layer(io.BytesIO(BASE))


def test_config_of_unknown_image(store: Store) -> None:
    with pytest.raises(NotFound):
        store.config_bytes("0" * 64)
    with pytest.raises(NotFound):
        store.layer_blob_path(diff_id(BASE))


def test_list_images_newest_first(store: Store) -> None:
    ids = {}
    for year in (2020, 2024, 2022):
        with store.writer() as w:
            if not w.has_layer(diff_id(BASE)):
                w.put_layer(io.BytesIO(BASE))
            w.put_config(make_config([BASE], created=f"{year}-01-01T00:00:00Z"))
            ids[year] = w.commit([f"y:{year}"]).id
    assert [r.id for r in store.list_images()] == [ids[2024], ids[2022], ids[2020]]
