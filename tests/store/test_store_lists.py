"""Store: manifest lists as list images (no config, no layers; the list document is the blob)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from isula_build.daemon.handlers.images import format_size
from isula_build.errors import AlreadyExists, InvalidArgument, NotFound
from isula_build.store import Store
from isula_build.transports.store import StoreSource
from store_tars import add_image, directory, file, make_tar

BASE = make_tar(directory("etc"), file("etc/os-release", b"NAME=test\n"))
AMD64 = "sha256:" + "a" * 64
ARM64 = "sha256:" + "b" * 64


def document(*digests: str, arch: str = "amd64") -> bytes:
    """A Docker manifest list document, compact as distribution/lists.py stores it."""
    entries = [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "size": 525, "digest": d, "platform": {"architecture": arch, "os": "linux"}}
               for d in digests]
    return json.dumps({"schemaVersion": 2, "manifests": entries,
                       "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"},
                      separators=(",", ":")).encode()


def blob_names(store: Store) -> set[str]:
    return set(os.listdir(store.layout.blobs))


def test_a_list_is_an_image_record(store: Store) -> None:
    image = add_image(store, [BASE], ["base"])
    doc = document(AMD64)
    before = datetime.now(timezone.utc)
    record = store.create_manifest_list("multi", doc, {AMD64: "reg.example.com/a:1"})
    assert record.id == hashlib.sha256(doc).hexdigest()
    assert record.names == ("multi:latest",)
    assert record.is_manifest_list and not image.is_manifest_list
    assert record.layers == ()
    assert record.size == len(doc)
    assert before - timedelta(seconds=1) <= record.created <= datetime.now(timezone.utc)
    # `images` shows it (newest first) with the document's size, as the original's store
    # counts an image's own data.
    assert store.list_images() == [record, image]
    assert format_size(record.size) == f"{len(doc)} B"
    # The document is the blob, kept byte for byte; the sources sit beside it.
    assert store.layout.blob(record.id).read_bytes() == doc
    assert blob_names(store) >= {record.id, image.id}
    data = store.manifest_list("multi")
    assert (data.record, data.document, data.sources) == (record, doc,
                                                          {AMD64: "reg.example.com/a:1"})
    assert os.listdir(store.layout.tmp) == []


def test_lookup_tag_and_the_image_only_calls(store: Store) -> None:
    image = add_image(store, [BASE], ["base"])
    record = store.create_manifest_list("reg.example.com/multi:v1", document(AMD64), {})
    for ref in ("reg.example.com/multi:v1", record.id, "sha256:" + record.id, record.id[:6]):
        assert store.lookup(ref) == record
    assert store.manifest_list(record.id[:6]).record == record
    tagged = store.tag("reg.example.com/multi:v1", "other:2")
    assert tagged.names == ("other:2", "reg.example.com/multi:v1") and tagged.is_manifest_list
    with pytest.raises(InvalidArgument, match=f"image {record.id} is a manifest list"):
        store.config_bytes(record.id)
    with pytest.raises(InvalidArgument, match="base is not a manifest list"):
        store.manifest_list("base")
    # Save, push and outputs read images through StoreSource: a list is refused before any copy.
    with pytest.raises(InvalidArgument, match="other:2 is a manifest list, not an image"):
        StoreSource(store, tagged)
    assert store.config_bytes(image.id)  # images are unaffected


def test_remove_prune_and_gc(store: Store) -> None:
    image = add_image(store, [BASE], ["base"])
    kept = store.create_manifest_list("kept", document(AMD64), {})
    doomed = store.create_manifest_list("doomed", document(ARM64), {})
    store.tag("doomed", "doomed:2")
    assert store.remove("doomed") == ["Untagged image: doomed:latest"]
    assert store.remove(doomed.id[:8]) == ["Untagged image: doomed:2",
                                           f"Deleted image: {doomed.id}"]
    assert doomed.id not in blob_names(store)
    with pytest.raises(NotFound):
        store.manifest_list(doomed.id)
    store.gc()
    assert kept.id in blob_names(store)
    # A name taken by a new image leaves the list without names: prune takes it.
    add_image(store, [BASE], ["kept"], extra={"author": "someone"})
    assert store.lookup(kept.id).names == ()
    assert store.prune() == [f"Deleted image: {kept.id}"]
    assert kept.id not in blob_names(store)
    last = store.create_manifest_list("last", document(AMD64, ARM64), {})
    lines = store.remove_all()
    assert f"Deleted image: {last.id}" in lines and f"Deleted image: {image.id}" in lines
    assert store.list_images() == [] and blob_names(store) == set()


def test_a_used_name_is_refused_and_nothing_changes(store: Store) -> None:
    add_image(store, [BASE], ["base"])
    store.create_manifest_list("multi", document(AMD64), {})
    before = (store.list_images(), blob_names(store))
    for name in ("base", "multi:latest"):
        with pytest.raises(AlreadyExists, match="is already used by image"):
            store.create_manifest_list(name, document(ARM64), {})
    assert (store.list_images(), blob_names(store)) == before


@pytest.mark.parametrize("bad", [b"not json", b"[1, 2]", b'{"manifests": {}}', b"\xff\xfe"])
def test_malformed_documents_are_refused(store: Store, bad: bytes) -> None:
    with pytest.raises(InvalidArgument, match="manifest list"):
        store.create_manifest_list("bad", bad, {})
    assert store.list_images() == [] and blob_names(store) == set()
    assert os.listdir(store.layout.tmp) == []


def test_an_identical_list_shares_one_record(store: Store) -> None:
    first = store.create_manifest_list("one", document(AMD64), {AMD64: "reg/a:1"})
    second = store.create_manifest_list("two", document(AMD64), {AMD64: "reg/b:1",
                                                                  ARM64: "reg/c:1"})
    assert second.id == first.id and second.names == ("one:latest", "two:latest")
    assert second.created == first.created
    # The stored sources win for entries both know; the others are added.
    assert store.manifest_list("two").sources == {AMD64: "reg/a:1", ARM64: "reg/c:1"}
    assert len(store.list_images()) == 1


def test_update_moves_the_name_to_the_new_document(store: Store) -> None:
    old = store.create_manifest_list("multi", document(AMD64), {AMD64: "reg/a:1"})
    store.tag("multi", "alias")
    # By name: only that name moves; the old list keeps its other name.
    new_doc = document(AMD64, ARM64)
    new = store.update_manifest_list("multi", new_doc, {AMD64: "reg/a:1", ARM64: "reg/b:1"})
    assert new.id == hashlib.sha256(new_doc).hexdigest()
    assert new.names == ("multi:latest",) and new.created == old.created
    assert store.lookup("alias").id == old.id
    assert store.manifest_list("multi").document == new_doc
    assert store.manifest_list("multi").sources == {AMD64: "reg/a:1", ARM64: "reg/b:1"}
    # By ID: every name moves and the old list goes, blob included.
    newest = store.update_manifest_list(old.id, document(AMD64, arch="arm64"), {})
    assert newest.names == ("alias:latest",)
    with pytest.raises(NotFound):
        store.lookup(old.id)
    assert blob_names(store) == {new.id, newest.id}
    # An unchanged document keeps its ID and takes the new sources.
    same = store.update_manifest_list("multi", new_doc, {AMD64: "reg/z:9"})
    assert same == new and store.manifest_list(new.id).sources == {AMD64: "reg/z:9"}
    with pytest.raises(NotFound):
        store.update_manifest_list("missing", new_doc, {})
    assert os.listdir(store.layout.tmp) == []


def test_lists_survive_reopen_and_leftovers_go(data_root: Path) -> None:
    with Store(data_root) as s:
        record = s.create_manifest_list("multi", document(AMD64), {AMD64: "reg/a:1"})
        layout = s.layout
    # A crash between the blob's rename and the commit leaves a blob no record needs.
    orphan = document(ARM64)
    layout.blob(hashlib.sha256(orphan).hexdigest()).write_bytes(orphan)
    with Store(data_root) as s:
        assert s.list_images() == [record]
        assert s.manifest_list("multi").sources == {AMD64: "reg/a:1"}
        assert blob_names(s) == {record.id}


KILLED_SCRIPT = """
import os, sys
from pathlib import Path
from isula_build.store import Store
store = Store(Path(sys.argv[1]))
record = store.create_manifest_list("multi", sys.stdin.buffer.read(), {})
print(record.id, flush=True)
os._exit(9)  # no close: the commit alone must make the list durable
"""


def test_a_committed_list_survives_a_killed_process(data_root: Path) -> None:
    doc = document(AMD64, ARM64)
    done = subprocess.run([sys.executable, "-c", KILLED_SCRIPT, str(data_root)], input=doc,
                          capture_output=True, check=False)
    assert done.returncode == 9, done.stderr
    with Store(data_root) as s:
        record = s.lookup("multi")
        assert record.id == done.stdout.decode().strip() == hashlib.sha256(doc).hexdigest()
        assert record.is_manifest_list and s.manifest_list(record.id).document == doc


def test_a_build_list_takes_its_names_and_keeps_its_images_from_prune(store: Store) -> None:
    from isula_build.store import local_image_of, local_source

    kept = add_image(store, [BASE], [])
    other = add_image(store, [make_tar(file("x", b"x\n"))], [])
    old = store.create_manifest_list("app:1", document(AMD64), {AMD64: "reg.example.com/a:1"})
    # A build's list: its names move to it (create_manifest_list refuses a used name).
    record = store.commit_manifest_list(["app:1", "app:2"], document(ARM64),
                                        {ARM64: local_source(kept.id)})
    assert record.names == ("app:1", "app:2")
    assert store.lookup("app:1").id == record.id and store.lookup(old.id).names == ()
    assert local_image_of(local_source(kept.id)) == kept.id
    assert local_image_of("reg.example.com/a:1") is None
    # prune removes unnamed images, but not those a list holds.
    lines = store.prune()
    assert f"Deleted image: {other.id}" in lines and f"Deleted image: {old.id}" in lines
    assert f"Deleted image: {kept.id}" not in lines
    assert store.lookup(kept.id) == kept
