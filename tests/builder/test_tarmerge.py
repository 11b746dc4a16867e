"""The merge of disjoint snapshot tars is the stage's layer, byte for byte (builder/tarmerge.py):
what lets a shared cache leave out the stage layer of such a stage."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from isula_build.builder.layertar import write_layer, write_layer_file
from isula_build.builder.tarmerge import disjoint, merge_snapshots
from isula_build.errors import InvalidArgument


def _upper_a(top: Path) -> None:
    (top / "opt" / "pkg").mkdir(parents=True)
    for size in (0, 1, 511, 512, (1 << 20) + 1):
        (top / "opt" / "pkg" / f"f{size}").write_bytes(os.urandom(size))
    os.link(top / "opt" / "pkg" / "f1", top / "opt" / "pkg" / "hard")
    os.symlink("pkg/f1", top / "opt" / "link")
    long_dir = top / "opt" / ("d" * 90) / ("e" * 90)
    long_dir.mkdir(parents=True)
    (long_dir / "leaf").write_text("long name\n")
    os.setxattr(top / "opt" / "pkg" / "f512", "user.note", b"kept")


def _upper_b(top: Path) -> None:
    (top / "src").mkdir()
    (top / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    os.mkfifo(top / "src" / "pipe")
    os.mknod(top / "gone", 0o600 | 0o020000, os.makedev(0, 0))   # a whiteout at the top
    (top / "etc").mkdir()
    os.setxattr(top / "etc", "trusted.overlay.opaque", b"y")     # an opaque directory
    (top / "etc" / "only").write_text("x\n")


def _upper_c(top: Path) -> None:
    (top / "src.sum").write_text("abc\n")
    (top / "aaa").mkdir()
    os.mknod(top / "aaa" / "old", 0o600 | 0o020000, os.makedev(0, 0))


def _tops(tmp_path: Path) -> list[Path]:
    tops = []
    for name, fill in (("c", _upper_c), ("b", _upper_b), ("a", _upper_a)):   # top first
        top = tmp_path / name
        top.mkdir()
        fill(top)
        tops.append(top)
    return tops


def _snapshot_tar(top: Path) -> io.BytesIO:
    out = io.BytesIO()
    write_layer(top, out)   # as --cache-to exports a snapshot
    out.seek(0)
    return out


def test_the_merge_of_disjoint_snapshots_is_the_stage_layer(tmp_path: Path) -> None:
    tops = _tops(tmp_path)
    base = tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "gone").write_text("in the base image\n")
    (base / "aaa").mkdir()
    (base / "aaa" / "old").write_text("old\n")
    assert disjoint(tops)
    stage = write_layer_file(tops, tmp_path / "layer.tar", base=[base])
    for order in (tops, list(reversed(tops))):
        merged = b"".join(merge_snapshots([_snapshot_tar(t) for t in order], "test"))  # type: ignore[misc]  # BytesIO streams
        assert merged == (tmp_path / "layer.tar").read_bytes()
    assert stage.size == len(merged)


def test_snapshots_sharing_a_name_are_not_merged(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for top in (one, two):
        (top / "usr" / "lib").mkdir(parents=True)
    (one / "usr" / "lib" / "a").write_text("a\n")
    (two / "usr" / "lib" / "b").write_text("b\n")
    assert not disjoint([two, one])
    with pytest.raises(InvalidArgument, match="two snapshots have 'usr'"):
        b"".join(merge_snapshots([_snapshot_tar(two), _snapshot_tar(one)], "test"))  # type: ignore[list-item]  # BytesIO streams


def test_a_cut_snapshot_is_refused(tmp_path: Path) -> None:
    top = tmp_path / "a"
    top.mkdir()
    _upper_a(top)
    data = _snapshot_tar(top).getvalue()
    with pytest.raises(InvalidArgument, match="ends inside an entry"):
        b"".join(merge_snapshots([io.BytesIO(data[:len(data) // 2])], "test"))  # type: ignore[list-item]  # a BytesIO stream
