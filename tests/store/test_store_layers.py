"""Store.layer_dir: layer tars extracted as overlayfs lower dirs, checked by really mounting them."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

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


def test_symlinks_climbing_above_the_root_are_kept(store: Store) -> None:
    """Their targets are data, resolved inside the container ("/.." is "/"), as docker has it."""
    layer = make_tar(directory("usr"), directory("usr/bin"),
                     symlink("usr/bin/climb", "../../../../bin"), symlink("up", ".."))
    add_image(store, [layer], ["climb"])
    root = store.layer_dir(diff_id(layer))
    assert os.readlink(root / "usr" / "bin" / "climb") == "../../../../bin"
    assert os.readlink(root / "up") == ".."


def _sandbox_state(base: Path, dest: Path) -> list[tuple[str, int, int, bytes]]:
    """Names, modes, mtimes and contents of everything under `base` but `dest` (whose parent's
    mtime changes when dest is made)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != dest]
        for name in dirnames + filenames + ["."]:
            path = Path(dirpath, name)
            if path == dest:
                continue
            st = os.lstat(path)
            data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            mtime = 0 if path.resolve() == dest.parent else st.st_mtime_ns
            found.append((str(path.relative_to(base)), st.st_mode, mtime, data))
    return sorted(found)


def _make_outside(base: Path) -> Path:
    outside = base / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "victim").write_bytes(b"untouched")
    os.chmod(outside, 0o700)
    os.utime(outside, (1_000_000_000, 1_000_000_000))
    return outside


# Each tar leaves a symlink to the directory `outside` next to the extraction directory, by an
# absolute host path or by climbing above the layer root, where an earlier entry had made a
# directory (or a hard link makes a second symlink): nothing may follow it.
ESCAPES = {
    "directory replaced by a symlink": lambda out: [
        directory("d", mode=0o777, mtime=1), symlink("d", out)],
    "parent replaced by a symlink": lambda out: [
        directory("a"), directory("a/sub", mode=0o777, mtime=1), symlink("a", out)],
    "hard link to a symlink": lambda out: [
        symlink("s", out), hardlink("h", "s"), file("h/victim", b"owned")],
    "hard link to a symlink, then a directory through it": lambda out: [
        symlink("s", out), hardlink("h", "s"), directory("h/sub", mode=0o777, mtime=1)],
}


@pytest.mark.parametrize("how", ["absolute", "climbing"])
@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_extraction_never_follows_a_symlink_out(tmp_path: Path, name: str, how: str) -> None:
    from isula_build.errors import InvalidArgument
    from isula_build.store.extract import extract_layer
    outside = _make_outside(tmp_path)
    target = str(outside) if how == "absolute" else "../" * 8 + str(outside).lstrip("/")
    blob = tmp_path / "layer.tar"
    blob.write_bytes(make_tar(*ESCAPES[name](target)))
    dest = tmp_path / "dest"
    before = _sandbox_state(tmp_path, dest)
    try:
        extract_layer(blob, dest)
    except InvalidArgument as exc:
        assert "through the symlink" in str(exc)
    assert _sandbox_state(tmp_path, dest) == before


_NAMES = st.sampled_from(["a", "b", "a/b", "a/b/c", "b/c", "c"])
# "OUT" is the absolute host path of `outside`; relative targets climb at most 5 levels, so even
# from the extraction directory itself they stay inside the sandbox (dest is 5 levels down).
_TARGETS = st.sampled_from(["OUT", "OUT/sub", "../../../../../outside", "../../../../outside",
                            "..", "../..", "a", "b", "a/b", "."])
_ENTRIES = st.lists(st.tuples(_NAMES, st.sampled_from(["file", "dir", "symlink", "hardlink"]),
                              _TARGETS), max_size=7)


@example(entries=[("a", "dir", "."), ("a", "symlink", "OUT")])
@example(entries=[("a", "dir", "."), ("a/sub", "dir", "."),
                  ("a", "symlink", "../../../../../outside")])
@example(entries=[("a", "symlink", "OUT"), ("b", "hardlink", "a"), ("b/c", "file", ".")])
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=_ENTRIES)
def test_extracted_tars_never_touch_anything_outside(tmp_path: Path,
                                                     entries: list[tuple[str, str, str]]) -> None:
    """Whatever the entries, extraction changes nothing outside its directory, even with
    symlinks that point out by an absolute path or by climbing above the layer root."""
    from isula_build.errors import InvalidArgument
    from isula_build.store.extract import extract_layer
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        base = Path(tmp)
        outside = _make_outside(base)
        dest = base.joinpath("1", "2", "3", "4", "dest")
        dest.parent.mkdir(parents=True)
        blob = base / "layer.tar"
        made = []
        for name, kind, target in entries:
            target = target.replace("OUT", str(outside))
            made.append({"file": lambda: file(name, b"x", mode=0o777, mtime=1),
                         "dir": lambda: directory(name, mode=0o777, mtime=1),
                         "symlink": lambda: symlink(name, target),
                         "hardlink": lambda: hardlink(name, target)}[kind]())
        blob.write_bytes(make_tar(*made))
        before = _sandbox_state(base, dest)
        try:
            extract_layer(blob, dest)
        except (InvalidArgument, OSError):
            pass  # refused, or a hard link to nothing: either way, nothing outside changes
        assert _sandbox_state(base, dest) == before
