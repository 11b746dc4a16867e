"""The commit's fast paths: write_layer writes its own tar headers and data in large chunks
(the bytes must stay exactly tarfile's), and a layer file it wrote is linked into the store
instead of being read and hashed a second time (only while the file is unchanged)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from isula_build.builder.layertar import write_layer
from isula_build.errors import InvalidArgument, ResourceExhausted
from isula_build.store import ImageWriter, Store

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


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = Store(tmp_path / "data")
    yield s
    s.close()


def commit_image(writer: ImageWriter, diff_id: str) -> None:
    """An image of that one layer, so its blob outlives the writer."""
    writer.put_config(json.dumps({"rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode())
    writer.commit([])


def committed(tmp_path: Path, name: str = "layer.tar") -> tuple[Path, str, int]:
    upper = tmp_path / f"upper-{name}"
    upper.mkdir()
    (upper / "etc").mkdir()
    (upper / "etc" / "conf").write_text("x = 1\n")
    (upper / "big").write_bytes(os.urandom(BIG))
    path = tmp_path / name
    with open(path, "wb") as f:
        stats = write_layer(upper, f, mtime=0)
    return path, stats.diff_id, stats.size


def test_committed_layer_is_linked_into_the_store_not_copied(tmp_path: Path, store: Store) -> None:
    path, diff_id, size = committed(tmp_path)
    with store.writer() as w, open(path, "rb") as f:
        record = w.put_layer(f, expected_diff_id=diff_id)
        commit_image(w, diff_id)
    assert (record.diff_id, record.size) == (diff_id, size)
    blob = store.layer_blob_path(diff_id)
    assert os.stat(blob).st_ino == os.stat(path).st_ino   # the same file: no second write
    assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == diff_id
    assert os.listdir(store.layout.tmp) == []


def test_vouched_layer_gets_the_same_checks_and_messages(tmp_path: Path, store: Store) -> None:
    path, diff_id, size = committed(tmp_path)
    other = "sha256:" + "0" * 64
    with store.writer() as w:
        with open(path, "rb") as f, pytest.raises(InvalidArgument) as exc:
            w.put_layer(f, expected_diff_id=other)
        assert str(exc.value) == f"layer digest mismatch: expected {other}, got {diff_id}"
    path2, diff_id2, size2 = committed(tmp_path, "second.tar")
    with store.writer() as w, open(path2, "rb") as f, pytest.raises(ResourceExhausted):
        w.put_layer(f, limit=size2 - 1)
    assert not store.has_layer(diff_id) and not store.has_layer(diff_id2)
    assert os.listdir(store.layout.tmp) == []


def test_a_changed_layer_file_is_hashed_again(tmp_path: Path, store: Store) -> None:
    path, diff_id, size = committed(tmp_path)
    data = bytearray(path.read_bytes())
    data[size // 2] ^= 0xFF   # inside the big file's data: still a valid tar
    with open(path, "r+b") as f:
        f.write(data)
    with store.writer() as w, open(path, "rb") as f, pytest.raises(InvalidArgument,
                                                                    match="digest mismatch"):
        w.put_layer(f, expected_diff_id=diff_id)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    with store.writer() as w, open(path, "rb") as f:
        assert w.put_layer(f).diff_id == actual
        commit_image(w, actual)
    assert os.stat(store.layer_blob_path(actual)).st_ino != os.stat(path).st_ino


def test_a_stream_not_at_the_start_is_not_taken_as_the_file(tmp_path: Path, store: Store) -> None:
    path, diff_id, _ = committed(tmp_path)
    with store.writer() as w, open(path, "rb") as f:
        f.read(512)
        with pytest.raises(InvalidArgument):
            w.put_layer(f, expected_diff_id=diff_id)
    assert not store.has_layer(diff_id)


def test_unsafe_layer_is_written_but_refused_by_the_store(tmp_path: Path, store: Store) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink("../../outside", upper / "escape")
    with open(tmp_path / "layer.tar", "wb") as f:
        stats = write_layer(upper, f)   # an earlier stage's layer may hold it: no error here
    with store.writer() as w, open(tmp_path / "layer.tar", "rb") as f, \
            pytest.raises(InvalidArgument, match='unsafe layer tar entry "escape"'):
        w.put_layer(f, expected_diff_id=stats.diff_id)


def test_devices_in_a_vouched_layer_still_follow_allow_devices(tmp_path: Path, store: Store) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    os.mknod(upper / "null", 0o666 | 0o020000, os.makedev(1, 3))
    for name in ("refused.tar", "allowed.tar"):
        with open(tmp_path / name, "wb") as f:
            stats = write_layer(upper, f)
    with store.writer() as w, open(tmp_path / "refused.tar", "rb") as f, \
            pytest.raises(InvalidArgument, match="device nodes are not allowed"):
        w.put_layer(f, allow_devices=False)
    with store.writer() as w, open(tmp_path / "allowed.tar", "rb") as f:
        assert w.put_layer(f, expected_diff_id=stats.diff_id).diff_id == stats.diff_id
        commit_image(w, stats.diff_id)
    blob = store.layer_blob_path(stats.diff_id)
    assert os.stat(blob).st_ino == os.stat(tmp_path / "allowed.tar").st_ino
