"""Trees deeper than Python's recursion limit (a RUN can make ~2,000 levels of 1-character names
within PATH_MAX): committing, pruning, copying and removing them walk with stacks of their own."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isula_build.builder import workdir
from isula_build.builder.copier import copy_into_root
from isula_build.builder.layertar import write_layer
from isula_build.builder.steproot import prune_unchanged_dirs
from isula_build.store.fsutil import delete_tree

DEPTH = 1500


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    """pytest's own clean-up of old tmp dirs (shutil.rmtree) cannot remove these trees."""
    yield
    for entry in tmp_path.iterdir():
        delete_tree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()


def deep_tree(top: Path, depth: int = DEPTH) -> Path:
    """top/d/d/…/d (depth levels) with a file f at the bottom; returns the deepest directory."""
    assert depth > sys.getrecursionlimit()
    path = top
    for _ in range(depth):
        path = path / "d"
        path.mkdir(parents=True)
    (path / "f").write_text("x\n")
    return path


def test_layer_of_a_deep_tree_lists_it_sorted_parents_first(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    deep_tree(upper)
    (upper / "a").write_text("a")
    (upper / "z").mkdir()
    out = io.BytesIO()
    write_layer(upper, out, mtime=0)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        names = tar.getnames()
    chain = ["/".join(["d"] * i) for i in range(1, DEPTH + 1)]
    assert names == ["a", *chain, chain[-1] + "/f", "z"]


def test_pruning_a_deep_tree_keeps_what_changed(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (deep_tree(lower) / "e").mkdir()
    bottom = deep_tree(upper)        # a new file f at the bottom
    (bottom / "e").mkdir()           # only copied up: the lower's metadata, nothing inside
    rel_e = "/".join(["d"] * DEPTH) + "/e"
    st = os.stat(lower / rel_e)
    os.utime(upper / rel_e, ns=(st.st_atime_ns, st.st_mtime_ns))
    prune_unchanged_dirs(upper, [lower])
    assert os.listdir(bottom) == ["f"]


def test_copy_of_a_deep_context_directory(tmp_path: Path) -> None:
    ctx, root = tmp_path / "ctx", tmp_path / "root"
    deep_tree(ctx / "tree")
    root.mkdir()
    copy_into_root(root, ["tree"], "/t/", source_root=ctx)
    assert (root / "t" / "/".join(["d"] * DEPTH) / "f").read_text() == "x\n"


def test_delete_tree_removes_a_deep_tree(tmp_path: Path) -> None:
    deep_tree(tmp_path / "doomed")
    os.symlink("/etc", tmp_path / "doomed" / "d" / "etc")
    delete_tree(tmp_path / "doomed")
    assert not (tmp_path / "doomed").exists()
    assert os.path.exists("/etc/passwd")


def test_delete_tree_refuses_a_symlink_and_tolerates_when_asked(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "kept").write_text("k")
    os.symlink("real", tmp_path / "link")
    with pytest.raises(OSError):
        delete_tree(tmp_path / "link")
    delete_tree(tmp_path / "link", ignore_errors=True)
    with pytest.raises(FileNotFoundError):
        delete_tree(tmp_path / "missing")
    delete_tree(tmp_path / "missing", ignore_errors=True)
    assert (tmp_path / "real" / "kept").read_text() == "k"


def test_work_dir_removal_removes_a_deep_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep_tree(tmp_path / "doomed")
    monkeypatch.setattr(workdir, "RECENTLY_DELETED_SECONDS", 0.0)
    workdir._remove_in_two_passes(tmp_path / "doomed")
    assert not (tmp_path / "doomed").exists()
