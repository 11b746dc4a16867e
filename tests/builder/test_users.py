"""USER resolution against a root filesystem's /etc/passwd and /etc/group, as docker does it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isula_build.builder.users import ResolvedUser, read_root_file, resolve_user
from isula_build.errors import InvalidArgument, NotFound

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment line is not an entry
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
broken:x:notanumber:1:::
"""
GROUP = """\
root:x:0:
daemon:x:1:alice
staff:x:50:bob, alice
alice:x:1000:
wheel:x:10:root
nogroup:x:65534:
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    return tmp_path


def test_empty_is_root_with_roots_entry(root: Path) -> None:
    assert resolve_user(root, "") == ResolvedUser(uid=0, gid=0, additional_gids=(10,), home="/root")


def test_name_gives_uid_gid_home_and_groups_listing_the_user(root: Path) -> None:
    assert resolve_user(root, "alice") == ResolvedUser(uid=1000, gid=1000, additional_gids=(1, 50),
                                                       home="/home/alice")
    assert resolve_user(root, "nobody") == ResolvedUser(65534, 65534, (), "/nonexistent")


def test_numeric_uid_uses_its_entry_when_there_is_one(root: Path) -> None:
    assert resolve_user(root, "1000") == resolve_user(root, "alice")


def test_numeric_uid_needs_no_entry(root: Path) -> None:
    assert resolve_user(root, "4242") == ResolvedUser(uid=4242, gid=0, additional_gids=(), home="/")


def test_explicit_group_replaces_gid_and_drops_supplementary_groups(root: Path) -> None:
    assert resolve_user(root, "alice:staff") == ResolvedUser(1000, 50, (), "/home/alice")
    assert resolve_user(root, "alice:10") == ResolvedUser(1000, 10, (), "/home/alice")
    assert resolve_user(root, "4242:4343") == ResolvedUser(4242, 4343, (), "/")
    assert resolve_user(root, "4242:nogroup") == ResolvedUser(4242, 65534, (), "/")


def test_unknown_user_and_group_errors_read_like_dockers(root: Path) -> None:
    with pytest.raises(NotFound, match=r"^unable to find user bob: no matching entries in passwd file$"):
        resolve_user(root, "bob")
    with pytest.raises(NotFound, match=r"^unable to find group nosuch: no matching entries in group file$"):
        resolve_user(root, "alice:nosuch")
    # An entry with a malformed uid matches nothing.
    with pytest.raises(NotFound, match="unable to find user broken"):
        resolve_user(root, "broken")


def test_ids_out_of_range_are_refused(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="uids and gids must be in range 0-2147483647"):
        resolve_user(root, "2147483648")
    with pytest.raises(InvalidArgument, match="range"):
        resolve_user(root, "0:99999999999")


def test_missing_files_allow_numeric_ids_only(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "") == ResolvedUser(0, 0, (), "/")
    assert resolve_user(tmp_path, "12:34") == ResolvedUser(12, 34, (), "/")
    with pytest.raises(NotFound, match="unable to find user nobody: no matching entries in passwd file"):
        resolve_user(tmp_path, "nobody")


def test_passwd_symlinked_to_host_file_is_resolved_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    # A host file the image's links aim at: reading it would find "root".
    bait = tmp_path / "host" / "passwd"
    bait.parent.mkdir()
    bait.write_text("root:x:0:0:root:/root:/bin/sh\n")
    passwd = root / "etc" / "passwd"

    os.symlink(str(bait), passwd)  # absolute host path: restarts at the image's root
    with pytest.raises(NotFound, match="unable to find user root: no matching entries"):
        resolve_user(root, "root")

    passwd.unlink()
    os.symlink("../../host/passwd", passwd)  # climbing out with ..: clamped at the root
    with pytest.raises(NotFound, match="unable to find user root"):
        resolve_user(root, "root")

    passwd.unlink()
    os.symlink("/proc/1/root/etc/passwd", root / "etc" / "passwd-link")  # procfs' way out, via a chain
    os.symlink("/etc/passwd-link", passwd)
    with pytest.raises(NotFound, match="unable to find user root"):
        resolve_user(root, "root")

    passwd.unlink()
    os.symlink("/etc/passwd", passwd)  # inside the root this is itself: a loop, not the host file
    with pytest.raises(InvalidArgument, match="too many levels of symbolic links"):
        resolve_user(root, "root")

    # A link to a file inside the root is followed.
    passwd.unlink()
    (root / "srv").mkdir()
    (root / "srv" / "users").write_text("carol:x:7:8::/home/carol:/bin/sh\n")
    os.symlink("../srv/users", passwd)
    assert resolve_user(root, "carol") == ResolvedUser(7, 8, (), "/home/carol")


def test_non_regular_passwd_is_treated_as_absent(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc" / "passwd")  # would block a plain open() forever
    assert read_root_file(tmp_path, "/etc/passwd") is None
    assert resolve_user(tmp_path, "5") == ResolvedUser(5, 0, (), "/")
