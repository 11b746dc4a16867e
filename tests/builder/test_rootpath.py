"""resolve_in_root and make_dirs_in_root: nothing may ever resolve outside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isula_build.builder.rootpath import make_dirs_in_root, resolve_in_root
from isula_build.errors import InvalidArgument


def test_plain_path_is_joined(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert resolve_in_root(tmp_path, "/a/b/c") == tmp_path / "a" / "b" / "c"
    assert resolve_in_root(tmp_path, "a//./b/") == tmp_path / "a" / "b"
    assert resolve_in_root(tmp_path, "/") == tmp_path


def test_absolute_symlink_restarts_at_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "img").mkdir()
    os.symlink("/etc", tmp_path / "img" / "etclink")
    assert resolve_in_root(tmp_path, "/img/etclink/passwd") == tmp_path / "etc" / "passwd"


def test_dotdot_chains_clamp_at_root(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    os.symlink("../../../../../../etc", tmp_path / "a" / "up")
    assert resolve_in_root(tmp_path, "/a/up/shadow") == tmp_path / "etc" / "shadow"
    assert resolve_in_root(tmp_path, "../../../x") == tmp_path / "x"
    assert resolve_in_root(tmp_path, "/a/../../a/./f") == tmp_path / "a" / "f"


def test_relative_symlink_chain(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "one")
    os.symlink("./one/../one", tmp_path / "two")
    assert resolve_in_root(tmp_path, "two/file") == tmp_path / "real" / "file"


def test_follow_last_false_names_the_link(tmp_path: Path) -> None:
    os.symlink("/etc/passwd", tmp_path / "link")
    assert resolve_in_root(tmp_path, "/link", follow_last=False) == tmp_path / "link"
    assert resolve_in_root(tmp_path, "/link") == tmp_path / "etc" / "passwd"


def test_symlink_loop_is_a_clear_error(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(InvalidArgument, match="too many levels of symbolic links"):
        resolve_in_root(tmp_path, "/a/x")
    os.symlink("self/x", tmp_path / "self")
    with pytest.raises(InvalidArgument, match="too many levels"):
        resolve_in_root(tmp_path, "self")


def test_make_dirs_follows_links_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("/", root / "toroot")
    os.symlink("../../..", root / "up")
    old = os.umask(0o077)
    try:
        made = make_dirs_in_root(root, "/toroot/up/new/deep", uid=1000, gid=1001)
    finally:
        os.umask(old)
    assert made == root / "new" / "deep"
    assert made.is_dir()
    for d in (root / "new", root / "new" / "deep"):
        assert (d.stat().st_mode & 0o7777, d.stat().st_uid, d.stat().st_gid) == (0o755, 1000, 1001)
    assert not (tmp_path / "new").exists()


def test_make_dirs_refuses_a_file_on_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidArgument, match="a file of that name exists"):
        make_dirs_in_root(tmp_path, "/f/sub")


_NAMES = st.sampled_from(["a", "b", "c", "..", ".", "/", "", "etc"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(links=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "a/l", "b/l"]),
                                st.lists(_NAMES, max_size=6).map("/".join)), max_size=6),
       path=st.lists(_NAMES, max_size=8).map("/".join))
def test_random_link_farms_never_escape(tmp_path_factory: pytest.TempPathFactory,
                                        links: list[tuple[str, str]], path: str) -> None:
    root = tmp_path_factory.mktemp("farm")
    for where, target in links:
        link = root / where
        if not os.path.lexists(link.parent):
            link.parent.mkdir()
        # Only ever write through real directories: the test must not touch the host either.
        if link.parent.is_dir() and not link.parent.is_symlink() and not os.path.lexists(link):
            os.symlink(target or ".", link)
    try:
        got = resolve_in_root(root, path)
    except InvalidArgument:
        return  # a loop: refused, which is safe
    assert ".." not in got.relative_to(root).parts
    # Whatever the result names exists (or would be created) inside the root on the host too.
    existing = got
    while not os.path.lexists(existing):
        existing = existing.parent
    assert Path(os.path.realpath(existing)).is_relative_to(root.resolve())
