"""The build cache with a daemon killed at any moment, concurrent builds sharing entries, and
pruning while builds read the cache (issue 11): never a half-written entry served, and every
build gives the image a clean build gives."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

STATIC = "build-time=2020-06-30 15:05:05"
DOCKERFILE = """FROM busybox
RUN mkdir -p /big && for i in $(seq 1 40); do dd if=/dev/zero of=/big/f$i bs=64k count=4 2>/dev/null; done && echo ran:$((1+1))
COPY src /src
RUN cat /src/* > /all && sleep 0.3 && echo ran:$((2+2))
RUN rm -rf /big/f1 /etc/hostname && echo more > /big/g && sleep 0.3
ENV DONE=1
"""


def _context(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    for i in range(30):
        (root / "src" / f"s{i}").write_text(f"source {i}\n" * 50)
    return root


def _build(client, ctx: Path, iid: Path, *flags: str):
    return client("ctr-img", "build", "--build-static", STATIC, "--iidfile", str(iid), *flags,
                  str(ctx))


def _cache_is_consistent(data_root: Path) -> None:
    """Every entry names snapshots that are there; nothing half-written is left in tmp/."""
    cache = data_root / "cache"
    assert list((cache / "tmp").iterdir()) == []
    snapshots = {p.name for p in (cache / "snapshots").iterdir()}
    for path in (cache / "entries").iterdir():
        entry = json.loads(path.read_text())   # whole JSON, or the test fails here
        assert {item[0] for item in entry["chain"]} <= snapshots, entry


@pytest.mark.parametrize("kill_after", ["STEP  3", "STEP  4", "ran:4", "STEP  6"])
def test_a_daemon_killed_at_any_moment_leaves_a_cache_that_builds_right(
        daemon, client, busybox_image, tmp_path, kill_after: str) -> None:
    ctx = _context(tmp_path / "ctx")
    clean = tmp_path / "clean"
    _build(client, ctx, clean, "--no-cache")
    client("cache", "prune", "--all")
    (ctx / "src" / "s3").write_text("changed before the killed build\n")

    builder = subprocess.Popen(
        [sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host, "ctr-img", "build",
         "--build-static", STATIC, str(ctx)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert builder.stdout is not None
    seen = []
    for line in builder.stdout:
        seen.append(line)
        if line.startswith(kill_after):
            break
    assert any(l.startswith(kill_after) for l in seen), "".join(seen)
    daemon.stop(signal.SIGKILL)
    builder.wait(30)
    daemon.start()
    _cache_is_consistent(daemon.data_root)

    # Whatever the killed build left, a build now gives what a clean build gives.
    cached, again = tmp_path / "cached", tmp_path / "again"
    _build(client, ctx, cached)
    _build(client, ctx, again, "--no-cache")
    assert cached.read_text() == again.read_text()
    out = _build(client, ctx, tmp_path / "third").stdout
    assert out.count(" ---> Using cache") == 5 and "ran:4" not in out
    assert (tmp_path / "third").read_text() == cached.read_text()
    _cache_is_consistent(daemon.data_root)


def test_concurrent_builds_share_entries_while_the_cache_is_pruned(
        daemon, client, busybox_image, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx")
    clean = tmp_path / "clean"
    _build(client, ctx, clean, "--no-cache")
    client("cache", "prune", "--all")
    stop = threading.Event()

    def prune_again_and_again() -> int:
        rounds = 0
        while not stop.is_set():
            client("cache", "prune", "--all")
            rounds += 1
        return rounds

    with ThreadPoolExecutor(4) as pool:
        pruner = pool.submit(prune_again_and_again)
        builds = [pool.submit(_build, client, ctx, tmp_path / f"iid{i}") for i in range(3)]
        outputs = [b.result().stdout for b in builds]
        stop.set()
        assert pruner.result() > 0
    ids = {(tmp_path / f"iid{i}").read_text() for i in range(3)}
    assert ids == {clean.read_text()}, outputs
    _cache_is_consistent(daemon.data_root)
    # With nothing pruning any more, a build fills what the last prune took; the next one is
    # served wholly from the cache, the same image.
    _build(client, ctx, tmp_path / "fill")
    out = _build(client, ctx, tmp_path / "after").stdout
    assert out.count(" ---> Using cache") == 5
    assert (tmp_path / "after").read_text() == clean.read_text()
