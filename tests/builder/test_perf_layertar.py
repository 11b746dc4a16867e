"""The commit's fast paths: write_layer writes its own tar headers and data in large chunks
(the bytes must stay exactly tarfile's), and a layer file write_layer_file wrote and verified
is linked into the store (put_verified_layer) instead of being read and hashed a second time
(only while the file is unchanged)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from isula_build.builder.builder import BuildEnvironment, BuildInput, build_image
from isula_build.builder.layertar import write_layer, write_layer_file
from isula_build.errors import InvalidArgument, ResourceExhausted
from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.store import ImageWriter, Store
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination

BIG = (1 << 20) * 3 + 7   # more than one 1 MiB chunk, not a whole number of blocks


def make_upper(upper: Path) -> None:
    """An upper dir with every kind of entry write_layer handles."""
    (upper / "dir" / "sub").mkdir(parents=True)
    (upper / "dir" / "small").write_bytes(b"s" * 700)
    (upper / "dir" / "exact").write_bytes(b"e" * 1024)   # ends on a block boundary
    (upper / "dir" / "empty").write_bytes(b"")
    (upper / "big").write_bytes(os.urandom(BIG))
    (upper / ("n" * 150)).write_text("a name longer than a ustar header holds")
    (upper / os.fsdecode(b"caf\xe9")).write_text("not UTF-8")
    os.link(upper / "dir" / "small", upper / "dir" / "sub" / "hard")
    os.symlink("/bin/busybox", upper / "abs-link")
    os.mkfifo(upper / "fifo")
    os.mknod(upper / "gone", 0o600 | 0o020000, 0)   # overlay whiteout: char 0:0
    os.setxattr(upper / "dir" / "sub", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "dir" / "small", "user.note", b"kept")
    os.chown(upper / "dir" / "exact", 1234, 5678)
    os.chmod(upper / "big", 0o4755)


def tarfile_rewrite(data: bytes) -> bytes:
    """The same members written again by tarfile itself ("w|", PAX): the reference bytes."""
    src = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst:
        for member in src.getmembers():
            if member.isdir():
                member.name += "/"   # tarfile drops the slash on reading; the layer keeps it
            # Only the xattrs are the commit's own PAX records; tarfile derives the rest
            # (path, hdrcharset…) itself on writing.
            member.pax_headers = {k: v for k, v in member.pax_headers.items()
                                  if k.startswith("SCHILY.xattr.")}
            dst.addfile(member, src.extractfile(member) if member.isreg() else None)
    return out.getvalue()


@pytest.mark.parametrize("mtime", [None, 1593529505])
def test_layer_bytes_are_exactly_what_tarfile_writes(tmp_path: Path, mtime: int | None) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    make_upper(upper)
    out = io.BytesIO()
    stats = write_layer(upper, out, mtime=mtime)
    data = out.getvalue()
    assert stats.size == len(data) and len(data) % tarfile.RECORDSIZE == 0
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert data == tarfile_rewrite(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        big = tar.extractfile("big")
        assert big is not None and len(big.read()) == BIG
        assert tar.getmember("dir/sub/hard").islnk()
        assert tar.getmember("dir/small").pax_headers["SCHILY.xattr.user.note"] == "kept"
    assert {".wh.gone", "dir/sub/.wh..wh..opq", "n" * 150, "abs-link", "fifo"} <= set(names)


def test_file_output_equals_stream_output(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    make_upper(upper)
    stream = io.BytesIO()
    write_layer(upper, stream, mtime=0)
    with open(tmp_path / "layer.tar", "wb") as f:
        stats = write_layer(upper, f, mtime=0)
    assert (tmp_path / "layer.tar").read_bytes() == stream.getvalue()
    assert stats.size == len(stream.getvalue())
    stats = write_layer_file(upper, tmp_path / "verified.tar", mtime=0)
    assert (tmp_path / "verified.tar").read_bytes() == stream.getvalue()
    assert stats.verified is not None and stats.verified.size == len(stream.getvalue())


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(tmp_path / "data")
    yield s
    s.close()


def commit_image(writer: ImageWriter, diff_id: str) -> None:
    """An image of that one layer, so its blob outlives the writer."""
    writer.put_config(json.dumps({"rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode())
    writer.commit([])


def committed(tmp_path: Path, name: str = "layer.tar") -> VerifiedLayerFile:
    upper = tmp_path / f"upper-{name}"
    upper.mkdir()
    (upper / "etc").mkdir()
    (upper / "etc" / "conf").write_text("x = 1\n")
    (upper / "big").write_bytes(os.urandom(BIG))
    stats = write_layer_file(upper, tmp_path / name, mtime=0)
    assert stats.verified is not None
    assert (stats.verified.diff_id, stats.verified.size) == (stats.diff_id, stats.size)
    return stats.verified


def test_committed_layer_is_linked_into_the_store_not_copied(tmp_path: Path, store: Store) -> None:
    verified = committed(tmp_path)
    path, diff_id, size = verified.path, verified.diff_id, verified.size
    with store.writer() as w:
        record = w.put_verified_layer(verified, expected_diff_id=diff_id)
        commit_image(w, diff_id)
    assert (record.diff_id, record.size) == (diff_id, size)
    blob = store.layer_blob_path(diff_id)
    assert os.stat(blob).st_ino == os.stat(path).st_ino   # the same file: no second write
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == diff_id
    assert os.listdir(store.layout.tmp) == []


def test_verified_layer_gets_the_same_checks_and_messages(tmp_path: Path, store: Store) -> None:
    verified = committed(tmp_path)
    diff_id = verified.diff_id
    other = "sha256:" + "0" * 64
    with store.writer() as w:
        with pytest.raises(InvalidArgument) as exc:
            w.put_verified_layer(verified, expected_diff_id=other)
        assert str(exc.value) == f"layer digest mismatch: expected {other}, got {diff_id}"
    second = committed(tmp_path, "second.tar")
    diff_id2 = second.diff_id
    with store.writer() as w, pytest.raises(ResourceExhausted):
        w.put_verified_layer(second, limit=second.size - 1)
    assert not store.has_layer(diff_id) and not store.has_layer(diff_id2)
    assert os.listdir(store.layout.tmp) == []


def test_a_changed_layer_file_is_hashed_again(tmp_path: Path, store: Store) -> None:
    verified = committed(tmp_path)
    path, diff_id, size = verified.path, verified.diff_id, verified.size
    data = bytearray(path.read_bytes())
    data[size // 2] ^= 0xFF   # inside the big file's data: still a valid tar
    with open(path, "r+b") as f:
        f.write(data)
    with store.writer() as w, pytest.raises(InvalidArgument, match="digest mismatch"):
        w.put_verified_layer(verified, expected_diff_id=diff_id)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    with store.writer() as w:
        assert w.put_verified_layer(verified).diff_id == actual
        commit_image(w, actual)
    assert os.stat(store.layer_blob_path(actual)).st_ino != os.stat(path).st_ino


def test_put_layer_reads_a_verified_file_like_any_stream(tmp_path: Path, store: Store) -> None:
    verified = committed(tmp_path)   # trust is only ever handed over explicitly
    with store.writer() as w, open(verified.path, "rb") as f:
        assert w.put_layer(f, expected_diff_id=verified.diff_id).diff_id == verified.diff_id
        commit_image(w, verified.diff_id)
    assert os.stat(store.layer_blob_path(verified.diff_id)).st_ino != \
        os.stat(verified.path).st_ino


def test_a_stream_not_at_the_start_is_not_taken_as_the_file(tmp_path: Path, store: Store) -> None:
    verified = committed(tmp_path)
    path, diff_id = verified.path, verified.diff_id
    with store.writer() as w, open(path, "rb") as f:
        f.read(512)
        with pytest.raises(InvalidArgument):
            w.put_layer(f, expected_diff_id=diff_id)
    assert not store.has_layer(diff_id)


def test_symlink_climbing_above_the_root_is_verified(tmp_path: Path, store: Store) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink("../../outside", upper / "climb")  # "/.." is "/" in the container: safe
    stats = write_layer_file(upper, tmp_path / "layer.tar")
    assert stats.verified is not None
    with store.writer() as w:
        assert w.put_verified_layer(stats.verified).diff_id == stats.diff_id


def test_unsafe_layer_is_written_but_refused_by_the_store(tmp_path: Path, store: Store,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from isula_build.builder import layertar
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "escape").write_text("x")
    # A tree on disk cannot hold a name that climbs out: the walk is made to report one.
    real_walk = layertar._walk
    monkeypatch.setattr(layertar, "_walk", lambda tops, base: (
        ("../escape", path, st, opaque) for _, path, st, opaque in real_walk(tops, base)))
    # An earlier stage's layer may hold it: no error here, but it is not verified.
    stats = write_layer_file(upper, tmp_path / "layer.tar")
    assert stats.verified is None
    with store.writer() as w, open(tmp_path / "layer.tar", "rb") as f, \
            pytest.raises(InvalidArgument, match='unsafe layer tar entry "../escape"'):
        w.put_layer(f, expected_diff_id=stats.diff_id)


def test_a_verified_layer_with_device_nodes_is_linked_in(tmp_path: Path, store: Store) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "null", 0o666 | 0o020000, os.makedev(1, 3))
    allowed = write_layer_file(upper, tmp_path / "allowed.tar").verified
    assert allowed is not None
    with store.writer() as w:
        assert w.put_verified_layer(allowed, expected_diff_id=allowed.diff_id).diff_id == \
            allowed.diff_id
        commit_image(w, allowed.diff_id)
    blob = store.layer_blob_path(allowed.diff_id)
    assert os.stat(blob).st_ino == os.stat(tmp_path / "allowed.tar").st_ino


def test_a_build_hands_its_layer_to_the_store_without_a_second_read(
        tmp_path: Path, store: Store, busybox_tar: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with ImportSource(busybox_tar) as src, StoreDestination(store, ["busybox:latest"]) as dst:
        copy_image(src, dst, lambda line: None)
    streamed: list[object] = []
    copy_checked = ImageWriter._copy_checked
    monkeypatch.setattr(ImageWriter, "_copy_checked",
                        staticmethod(lambda *args: streamed.append(args) or copy_checked(*args)))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "big").write_bytes(os.urandom(BIG))
    env = BuildEnvironment(store=store, data_root=tmp_path / "data", run_root=tmp_path / "run")
    request = BuildInput(build_id="linked", dockerfile="FROM busybox\nCOPY big /big\n",
                         context_dir=ctx)
    image_id = build_image(request, env, lambda line: None, threading.Event())
    assert len(store.lookup(image_id).layers) == 2
    assert streamed == []   # the build's layer tar was linked in, not read through put_layer
