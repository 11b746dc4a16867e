"""builder/cachemounts.py: the sharing modes of RUN --mount=type=cache, usage and pruning.
(What a build sees through such a mount is in test_run_mounts_e2e.py.)"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from isula_build.builder.cachemounts import (CacheMountRequest, cache_mount, cache_mount_rows,
                                             cache_mount_usage, mounts_root, prune_cache_mounts)
from isula_build.errors import Cancelled


def use(root: Path, sharing: str, cancel: threading.Event | None = None,
        log: list[str] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    request = CacheMountRequest("/cache", "", sharing, **kwargs)  # type: ignore[arg-type]
    return cache_mount(root, request, cancel or threading.Event(),
                       (log if log is not None else []).append)


def test_shared_builds_see_one_directory_at_once(tmp_path: Path) -> None:
    with use(tmp_path, "shared") as first, use(tmp_path, "shared") as second:
        assert first == second
        (first / "f").write_text("x")
    with use(tmp_path, "shared") as later:
        assert (later / "f").read_text() == "x"


def test_private_gets_a_fresh_directory_while_the_first_is_in_use(tmp_path: Path) -> None:
    with use(tmp_path, "private") as first:
        (first / "f").write_text("x")
        with use(tmp_path, "private") as second:
            assert second != first and not any(second.iterdir())
    with use(tmp_path, "private") as again:
        assert again == first and (again / "f").exists()


def test_locked_waits_for_the_holder_and_can_be_cancelled(tmp_path: Path) -> None:
    log: list[str] = []
    entered = threading.Event()
    waiting = threading.Event()

    class Log(list):
        def append(self, line: str) -> None:
            log.append(line)
            waiting.set()

    def second() -> None:
        with use(tmp_path, "locked", log=Log()):
            entered.set()

    thread = threading.Thread(target=second)
    with use(tmp_path, "locked"):
        thread.start()
        assert waiting.wait(30)
        assert not entered.is_set()          # still held by the first build
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(Cancelled):
            with use(tmp_path, "shared", cancel=cancel):   # shared waits for locked too
                pass
    thread.join(30)
    assert entered.is_set()
    assert "another build holds it" in log[0]


def test_mode_owner_and_seed_apply_to_a_new_directory(tmp_path: Path) -> None:
    def seed(folder: Path) -> None:
        (folder / "seeded").write_text("s")

    with use(tmp_path, "shared", mode=0o750, uid=1000, gid=1001, seed=seed) as path:
        st = os.stat(path)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o750, 1000, 1001)
        assert (path / "seeded").read_text() == "s"


def test_a_half_made_directory_of_a_killed_daemon_is_made_again(tmp_path: Path) -> None:
    with use(tmp_path, "shared") as path:
        folder = path.parent
    delete = folder / "0"
    delete.rename(folder / "0.new")
    (folder / "0.new" / "partial").write_text("p")
    with use(tmp_path, "shared") as path:
        assert not any(path.iterdir()) and not (folder / "0.new").exists()


def test_usage_rows_and_prune_leave_what_a_build_holds(tmp_path: Path) -> None:
    with use(tmp_path, "shared") as path:
        (path / "data").write_bytes(b"x" * 1000)
    assert cache_mount_usage(tmp_path) == 1000
    with use(tmp_path, "private") as held:
        with use(tmp_path, "private") as other:
            (other / "more").write_bytes(b"y" * 10)
        rows = {row.name.split("/")[1]: row for row in cache_mount_rows(tmp_path)}
        assert rows["0"].in_use and not rows["1"].in_use and rows["1"].size == 10
        assert prune_cache_mounts(tmp_path, max_age=3600) == (0, 0)   # used just now
        assert prune_cache_mounts(tmp_path) == (1, 10)                 # all but the held one
        assert (held / "data").exists()
    assert prune_cache_mounts(tmp_path) == (1, 1000)
    assert list(mounts_root(tmp_path).iterdir()) == []
