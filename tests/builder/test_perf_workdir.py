"""The build's work dir: made as a top-level directory for ext4's allocator, and removed off
the client's wait (moved out of `<data_root>/tmp` at once, files deleted on a thread, the
directories some seconds later). Nothing may be left behind either way."""

from __future__ import annotations

import array
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isula_build.builder import workdir
from isula_build.builder.builder import BuildEnvironment, BuildInput, build_image
from isula_build.store import Store
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination

FS_IOC_GETFLAGS = 0x80086601
FS_TOPDIR_FL = 0x00020000


@pytest.fixture
def store(tmp_path: Path, busybox_tar: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data")
    with ImportSource(busybox_tar) as src, StoreDestination(s, ["busybox:latest"]) as dst:
        copy_image(src, dst, lambda line: None)
    yield s
    s.close()


def files_under(path: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, names in os.walk(path) for f in names]


def wait_for(check, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def test_work_dir_leaves_at_once_and_its_files_soon_after(tmp_path: Path, store: Store) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "many").mkdir(parents=True)
    for i in range(300):
        (ctx / "many" / f"f{i}").write_text(str(i))
    env = BuildEnvironment(store=store, data_root=tmp_path / "data", run_root=tmp_path / "run")
    request = BuildInput(build_id="w1", dockerfile="FROM busybox\nCOPY . /data/\n",
                         context_dir=ctx, tag="isb-test-workdir:1")
    image_id = build_image(request, env, lambda line: None, threading.Event())
    assert list((tmp_path / "data" / "tmp").iterdir()) == []   # nothing left where builds work
    assert store.lookup("isb-test-workdir:1").id == image_id
    # The store's tmp/ (emptied at every start-up) holds the tree until the thread is done.
    assert wait_for(lambda: files_under(store.layout.tmp) == [])


def test_two_pass_removal_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "doomed"
    (tree / "a" / "b").mkdir(parents=True)
    for d in (tree, tree / "a", tree / "a" / "b"):
        (d / "file").write_text("x")
    os.symlink("file", tree / "link")
    monkeypatch.setattr(workdir, "RECENTLY_DELETED_SECONDS", 0.0)
    workdir._remove_in_two_passes(tree)
    assert not tree.exists()


def test_work_dir_is_a_top_level_directory_for_ext4(tmp_path: Path) -> None:
    work = workdir.create_work_dir(tmp_path, "x")
    assert work == tmp_path / "build-x"
    assert work.is_dir() and (work.stat().st_mode & 0o777) == 0o700
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("l", [0])
        try:
            fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
        except OSError:
            pytest.fail("the test's tmp dir should be on ext4 here, which has inode flags")
    finally:
        os.close(fd)
    assert flags[0] & FS_TOPDIR_FL
