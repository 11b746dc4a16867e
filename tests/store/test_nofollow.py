"""store/nofollow.py: a directory inside a tree, reached without following any symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isula_build.store.nofollow import open_dir_nofollow


def test_directories_are_opened_and_links_on_the_way_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    os.symlink("a", tmp_path / "link")
    os.symlink("../../..", tmp_path / "a" / "up")
    with open_dir_nofollow(tmp_path, "a/b") as fd:
        assert fd is not None and os.fstat(fd).st_ino == os.stat(tmp_path / "a" / "b").st_ino
    with open_dir_nofollow(tmp_path, "") as fd:
        assert fd is not None and os.fstat(fd).st_ino == os.stat(tmp_path).st_ino
    for gone in ("link", "link/b", "a/up", "a/up/tmp", "file", "file/x", "missing", "a/missing"):
        with open_dir_nofollow(tmp_path, gone) as fd:
            assert fd is None, gone
    with pytest.raises(ValueError):
        with open_dir_nofollow(tmp_path, "a/../a"):
            pass


def test_no_descriptor_is_left_open(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink("/", tmp_path / "a" / "l")
    before = len(os.listdir("/proc/self/fd"))
    for rel in ("a/b", "a/l/x", "a/nothing"):
        with open_dir_nofollow(tmp_path, rel):
            pass
    assert len(os.listdir("/proc/self/fd")) == before
