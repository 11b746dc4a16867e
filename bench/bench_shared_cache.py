"""The build cache shared through a registry (issue 13), on this machine (not a test).

bench_cache.py's developer loop (FROM busybox, a RUN making ~80 MB of files, COPY of 300
sources, a RUN over them) with a docker-registry on 127.0.0.1:

(a) A fresh daemon (empty store and cache) builds it with `--cache-from` the cache another
    daemon exported, vs a fresh daemon pulling the final image from the same registry (the
    least a builder that gets the image can do). Target: ≤ 1.1×.
(b) A fresh daemon builds it with `--cache-from` after one source file changed: it fetches the
    big RUN's snapshot and runs the last two steps (shown, no target).
(c) A cold build (a fresh build-arg the first RUN reads) with `--cache-to` vs without: the
    export's overhead. Target: ≤ 1.2×. Also with the image pushed to the registry
    (`-o docker://`, as CI does), where the export finds the stage layer there.

Wall time of the whole client process; medians of --repeat rounds; fresh daemons each round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import run, start_daemon, stop_daemon
from bench_cache import LOOP_DOCKERFILE, loop_context, touch_one

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.registry.servers import Registry, free_port  # noqa: E402


def timed(cmd: list[str]) -> float:
    os.sync()  # the previous build's writeback is not this one's to wait for
    start = time.perf_counter()
    run(cmd)
    return time.perf_counter() - start


class Daemons:
    """Daemons under one root that trust the registry (plain HTTP)."""

    def __init__(self, root: Path, registry: str) -> None:
        self.root = root
        self.registry = registry
        self.procs: list[subprocess.Popen] = []
        self.serial = 0

    def start(self, name: str) -> list[str]:
        """A fresh daemon; returns the client command for it."""
        self.serial += 1
        home = self.root / f"{name}-{self.serial}"
        (home / "etc").mkdir(parents=True)
        (home / "etc" / "registries.toml").write_text(
            f'[registries.insecure]\nregistries = ["{self.registry}"]\n')
        proc, host = start_daemon(home, f"shared-{name}-{self.serial}")
        self.procs.append(proc)
        return [sys.executable, "-m", "isula_build.cli.main", "--host", host]

    def stop_all(self) -> None:
        for proc in self.procs:
            stop_daemon(proc)
        self.procs.clear()
        for home in self.root.glob("*-*"):
            if home.is_dir() and (home / "data").exists():
                shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="isb-bench-shared-", dir="/var/tmp"))
    registry = Registry(root / "registry", free_port())
    registry.start()
    daemons = Daemons(root, registry.host)
    try:
        base = f"{registry.host}/base/busybox:1"
        busybox_tar = root / "busybox-rootfs.tar"
        run([str(REPO / "scripts" / "busybox-rootfs.sh"), str(busybox_tar)])
        a = daemons.start("a")
        run([*a, "ctr-img", "import", str(busybox_tar), base])
        run([*a, "ctr-img", "push", base])
        ctx = loop_context(root)
        (ctx / "Dockerfile").write_text(LOOP_DOCKERFILE.replace("FROM busybox", f"FROM {base}"))
        times: dict[str, list[float]] = {}
        for i in range(opts.repeat):
            cache = f"{registry.host}/cache/loop:{i}"
            final = f"{registry.host}/app/loop:{i}"
            plain = ("--build-arg", f"NONCE={os.getpid()}-{i}-plain")
            exported = ("--build-arg", f"NONCE={os.getpid()}-{i}")
            build = [*a, "ctr-img", "build"]
            times.setdefault("cold", []).append(timed([*build, *plain, str(ctx)]))
            times.setdefault("cold --cache-to", []).append(timed(
                [*build, *exported, "--cache-to", cache, "-t", final, str(ctx)]))
            run([*a, "ctr-img", "push", final])
            pushed = ("-o", f"docker://{final}-pushed")
            times.setdefault("cold -o docker://", []).append(timed(
                [*build, "--build-arg", f"NONCE={os.getpid()}-{i}-p1", *pushed, str(ctx)]))
            times.setdefault("cold -o docker:// --cache-to", []).append(timed(
                [*build, "--build-arg", f"NONCE={os.getpid()}-{i}-p2", "--cache-to",
                 f"{cache}-pushed", *pushed, str(ctx)]))

            pull = daemons.start("pull")
            times.setdefault("fresh pull", []).append(timed([*pull, "ctr-img", "pull", final]))
            fresh = daemons.start("fresh")
            times.setdefault("fresh --cache-from", []).append(timed(
                [*fresh, "ctr-img", "build", *exported, "--cache-from", cache, str(ctx)]))
            edited = daemons.start("edit")
            touch_one(ctx / "src" / "file7.c", i)
            times.setdefault("fresh edit --cache-from", []).append(timed(
                [*edited, "ctr-img", "build", *exported, "--cache-from", cache, str(ctx)]))
            daemons.stop_all()
            a = daemons.start("a")
            run([*a, "ctr-img", "pull", base])
        med = {name: statistics.median(runs) for name, runs in times.items()}
        for name, runs in times.items():
            print(f"  {name}: " + ", ".join(f"{t:.2f}" for t in runs) + " s")
        print(f"(a) fresh daemon --cache-from {med['fresh --cache-from']:.2f} s vs pull of the "
              f"final image {med['fresh pull']:.2f} s: "
              f"{med['fresh --cache-from'] / med['fresh pull']:.2f}× (target ≤ 1.1)")
        print(f"(b) fresh daemon, one file edited, --cache-from: "
              f"{med['fresh edit --cache-from']:.2f} s")
        print(f"(c) cold build --cache-to {med['cold --cache-to']:.2f} s vs "
              f"{med['cold']:.2f} s: {med['cold --cache-to'] / med['cold']:.2f}× (target ≤ 1.2); "
              f"pushing the image too (-o docker://): {med['cold -o docker:// --cache-to']:.2f} s "
              f"vs {med['cold -o docker://']:.2f} s: "
              f"{med['cold -o docker:// --cache-to'] / med['cold -o docker://']:.2f}×", flush=True)
    finally:
        daemons.stop_all()
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
