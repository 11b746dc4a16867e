"""Store.layer_dir: layer tars extracted as overlayfs lower dirs, checked by really mounting them."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from isula_build.errors import NotFound
from isula_build.store import Store
from store_tars import (add_image, chardev, diff_id, directory, fifo, file, hardlink, make_tar,
                        symlink)

LOWER = make_tar(
    directory("etc"),
    file("etc/keep", b"kept\n"),
    file("etc/gone", b"to be deleted\n"),
    directory("data"),
    file("data/old1", b"1"),
    directory("data/sub"),
    file("data/sub/old2", b"2"),
)
UPPER = make_tar(
    directory("etc"),
    file("etc/.wh.gone"),
    directory("data"),
    file("data/.wh..wh..opq"),
    file("data/new", b"new\n"),
    file("added", b"added\n"),
)


def test_whiteouts_become_overlay_whiteouts(store: Store) -> None:
    add_image(store, [LOWER, UPPER], ["two"])
    upper = store.layer_dir(diff_id(UPPER))
    gone = os.lstat(upper / "etc" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == os.makedev(0, 0)
    assert os.getxattr(upper / "data", "trusted.overlay.opaque") == b"y"
    assert not (upper / "etc" / ".wh.gone").exists()
    assert not (upper / "data" / ".wh..wh..opq").exists()
    assert (upper / "data" / "new").read_bytes() == b"new\n"


@pytest.fixture
def overlay_mount(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "merged"
    target.mkdir()
    yield target
    subprocess.run(["umount", str(target)], capture_output=True)


def test_overlay_mount_of_two_layers(store: Store, overlay_mount: Path) -> None:
    add_image(store, [LOWER, UPPER], ["two"])
    lower = store.layer_dir(diff_id(LOWER))
    upper = store.layer_dir(diff_id(UPPER))
    # Two lower dirs and no upper dir make a read-only overlay; the leftmost is on top.
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={upper}:{lower}",
                    str(overlay_mount)], check=True, capture_output=True)
    merged = overlay_mount
    assert sorted(os.listdir(merged / "etc")) == ["keep"]  # etc/gone deleted by the whiteout
    assert (merged / "etc" / "keep").read_bytes() == b"kept\n"
    assert sorted(os.listdir(merged / "data")) == ["new"]  # opaque: lower's content hidden
    assert not (merged / "data" / "sub").exists()
    assert (merged / "added").read_bytes() == b"added\n"
    # the lower layer itself is untouched
    assert sorted(os.listdir(lower / "data")) == ["old1", "sub"]


def test_metadata_is_kept(store: Store) -> None:
    layer = make_tar(
        directory("usr", mode=0o750, uid=12, gid=34, mtime=1_500_000_000),
        directory("usr/bin", mode=0o755, mtime=1_400_000_000),
        file("usr/bin/suid", b"#!/bin/sh\n", mode=0o4755, uid=1000, gid=1001, mtime=1_300_000_000),
        file("usr/bin/capped", b"x", mode=0o755,
             xattrs={"user.comment": "hello", "security.capability":
                     "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}),
        hardlink("usr/bin/suid-link", "usr/bin/suid"),
        symlink("usr/bin/sh", "/bin/busybox", uid=5, gid=6, mtime=1_200_000_000),
        symlink("usr/bin/rel", "../lib/x"),
        directory("dev"),
        chardev("dev/null", 1, 3, mode=0o666),
        fifo("dev/pipe"),
        file("usr/lib/x", b"parent dirs made"),
        file("forged", b"x", xattrs={"trusted.overlay.redirect": "/etc"}),
    )
    add_image(store, [layer], ["meta"])
    root = store.layer_dir(diff_id(layer))
    usr = os.lstat(root / "usr")
    assert (stat.S_IMODE(usr.st_mode), usr.st_uid, usr.st_gid, usr.st_mtime) == (0o750, 12, 34, 1_500_000_000)
    assert os.lstat(root / "usr" / "bin").st_mtime == 1_400_000_000  # set after its children
    suid = os.lstat(root / "usr" / "bin" / "suid")
    assert (stat.S_IMODE(suid.st_mode), suid.st_uid, suid.st_gid) == (0o4755, 1000, 1001)
    assert suid.st_mtime == 1_300_000_000
    link = os.lstat(root / "usr" / "bin" / "suid-link")
    assert link.st_ino == suid.st_ino and suid.st_nlink == 2
    capped = root / "usr" / "bin" / "capped"
    assert os.getxattr(capped, "user.comment") == b"hello"
    assert os.getxattr(capped, "security.capability")[:4] == b"\x01\x00\x00\x02"
    sh = os.lstat(root / "usr" / "bin" / "sh")
    assert stat.S_ISLNK(sh.st_mode) and os.readlink(root / "usr" / "bin" / "sh") == "/bin/busybox"
    assert (sh.st_uid, sh.st_gid, sh.st_mtime) == (5, 6, 1_200_000_000)
    assert os.readlink(root / "usr" / "bin" / "rel") == "../lib/x"
    null = os.lstat(root / "dev" / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISFIFO(os.lstat(root / "dev" / "pipe").st_mode)
    assert (root / "usr" / "lib" / "x").read_bytes() == b"parent dirs made"
    assert "trusted.overlay.redirect" not in os.listxattr(root / "forged")


def test_layer_dir_is_made_once_and_atomically(store: Store) -> None:
    add_image(store, [LOWER], ["one"])
    results: list[Path] = []
    inodes: set[int] = set()

    def get() -> None:
        path = store.layer_dir(diff_id(LOWER))
        results.append(path)
        inodes.add(os.lstat(path / "etc" / "keep").st_ino)

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1 and len(inodes) == 1
    assert os.listdir(store.layout.tmp) == []
    assert os.listdir(store.layout.layers) == [diff_id(LOWER)[7:]]


def test_layer_dir_of_unknown_layer(store: Store) -> None:
    with pytest.raises(NotFound):
        store.layer_dir(diff_id(LOWER))


def test_file_replaced_by_later_entry(store: Store) -> None:
    layer = make_tar(file("a", b"first"), symlink("b", "/etc"), file("b", b"not through the link"),
                     directory("c"), file("c/x", b"x"), file("c", b"dir replaced"))
    with store.writer() as w:
        w.put_layer(io.BytesIO(layer))
    add_image(store, [layer], ["r"])
    root = store.layer_dir(diff_id(layer))
    assert (root / "b").read_bytes() == b"not through the link"
    assert not os.path.islink(root / "b")
    assert (root / "c").read_bytes() == b"dir replaced"


def test_empty_layer(store: Store) -> None:
    empty = bytes(1024)  # what docker writes for a layer without changes
    add_image(store, [empty], ["empty"])
    assert os.listdir(store.layer_dir(diff_id(empty))) == []


def test_extractor_checks_entries_again(tmp_path: Path) -> None:
    """Even a blob that bypassed put_layer cannot write outside its directory."""
    from isula_build.errors import InvalidArgument
    from isula_build.store.extract import extract_layer
    outside = tmp_path / "outside"
    outside.mkdir()
    blob = tmp_path / "evil.tar"
    blob.write_bytes(make_tar(symlink("link", str(outside)), file("link/owned", b"x")))
    with pytest.raises(InvalidArgument, match='"link/owned"'):
        extract_layer(blob, tmp_path / "dest")
    assert os.listdir(outside) == []
    blob.write_bytes(make_tar(file("../escaped", b"x")))
    with pytest.raises(InvalidArgument, match="climbs out"):
        extract_layer(blob, tmp_path / "dest2")
    assert not (tmp_path / "escaped").exists()
