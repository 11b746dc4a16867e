"""Edit-and-rebuild benchmarks, side by side with BuildKit on this machine (not a test).

(a) The developer's loop (issue 11): FROM busybox, a RUN that installs ~80 MB of files and
    spends a few seconds of CPU (what `apt-get install` does; there is no Docker Hub here, so the
    files are made, not fetched),
    `COPY src /src` of 300 files, one RUN over them. Measured: a cold build (every step misses:
    a fresh build-arg the first RUN reads), an edit-and-rebuild (one source file changed), and a
    rebuild with nothing changed.
(b) COPY of 2,000 small files + one 200 MB file, rebuilt with one small file changed.

Ours: wall time of the whole `isula-build ctr-img build` client process; when the client has
`--no-cache`, the cold build is also measured with it (the issue: a cold build may be at most 5%
slower than a --no-cache one). BuildKit: `DOCKER_BUILDKIT=1 /usr/bin/docker build --network
host`, with its cache. Ours and BuildKit take turns, run after run. Prints medians and ratios
(ours / BuildKit); the targets are ≤ 1.0× for the edit-and-rebuild and under 0.3 s for a
rebuild with nothing changed.
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

from benchlib import BASE, DOCKER, ensure_docker_busybox, run, start_daemon, stop_daemon

REPO = Path(__file__).resolve().parent.parent
LOOP_DOCKERFILE = """FROM busybox
ARG NONCE=0
RUN echo $NONCE > /nonce && mkdir -p /opt/pkg && for i in $(seq 1 300); do \\
    dd if=/dev/urandom of=/opt/pkg/lib$i.so bs=64k count=2 2>/dev/null; done && \\
    dd if=/dev/urandom bs=1M count=40 2>/dev/null | gzip -6 > /opt/pkg/data.gz
COPY src /src
RUN cat /src/* | md5sum > /src.sum
"""
COPY_DOCKERFILE = "FROM busybox\nARG NONCE=0\nRUN echo $NONCE > /nonce\nCOPY . /data/\n"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    os.sync()  # the previous build's writeback is not this one's to wait for
    start = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - start


def loop_context(root: Path) -> Path:
    ctx = root / "loop"
    (ctx / "src").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(LOOP_DOCKERFILE)
    for i in range(300):
        (ctx / "src" / f"file{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n" * 20)
    return ctx


def copy_context(root: Path, small: int, big_mb: int) -> Path:
    ctx = root / "copy"
    (ctx / "small").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(COPY_DOCKERFILE)
    (ctx / ".dockerignore").write_text("Dockerfile\n")
    for i in range(small):
        (ctx / "small" / f"f{i}.txt").write_text(f"small file {i}\n")
    with open(ctx / "big.bin", "wb") as f:
        for _ in range(big_mb):
            f.write(os.urandom(1 << 20))
    return ctx


def touch_one(path: Path, round_: int) -> None:
    path.write_text(path.read_text() + f"// edit {round_}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="isb-bench-cache-", dir="/var/tmp"))
    proc, host = start_daemon(root, "cache")
    cli = [sys.executable, "-m", "isula_build.cli.main", "--host", host]
    bk_env = {"DOCKER_BUILDKIT": "1"}
    try:
        busybox_tar = root / "busybox-rootfs.tar"
        run([str(REPO / "scripts" / "busybox-rootfs.sh"), str(busybox_tar)])
        run([*cli, "ctr-img", "import", str(busybox_tar), BASE])
        ensure_docker_busybox(busybox_tar)
        help_text = subprocess.run([*cli, "ctr-img", "build", "--help"], capture_output=True,
                                   text=True).stdout
        has_no_cache = "--no-cache" in help_text

        def ours(ctx: Path, tag: str, *extra: str) -> list[str]:
            return [*cli, "ctr-img", "build", *extra, "-t", tag, str(ctx)]

        def buildkit(ctx: Path, tag: str, *extra: str) -> list[str]:
            return [DOCKER, "build", "--network", "host", *extra, "-t", tag, str(ctx)]

        scenarios = [("loop", loop_context(root), "src/file7.c"),
                     ("copy", copy_context(root, 2000, 200), "small/f7.txt")]
        for label, ctx, edited in scenarios:
            times: dict[str, list[float]] = {}
            for i in range(opts.repeat):
                nonce = f"{os.getpid()}-{i}"
                cold = ("--build-arg", f"NONCE={nonce}")
                tag = f"isb-test-bench-cache-{label}:latest"
                times.setdefault("ours cold", []).append(timed(ours(ctx, tag, *cold)))
                times.setdefault("buildkit cold", []).append(
                    timed(buildkit(ctx, tag, *cold), bk_env))
                if has_no_cache:
                    times.setdefault("ours --no-cache", []).append(
                        timed(ours(ctx, tag, "--no-cache", *cold)))
                touch_one(ctx / edited, i)
                times.setdefault("ours edit", []).append(timed(ours(ctx, tag, *cold)))
                times.setdefault("buildkit edit", []).append(
                    timed(buildkit(ctx, tag, *cold), bk_env))
                times.setdefault("ours unchanged", []).append(timed(ours(ctx, tag, *cold)))
                times.setdefault("buildkit unchanged", []).append(
                    timed(buildkit(ctx, tag, *cold), bk_env))
            med = {name: statistics.median(runs) for name, runs in times.items()}
            for name, runs in times.items():
                print(f"  {label} {name}: " + ", ".join(f"{t:.2f}" for t in runs) + " s")
            line = (f"({label}) edit-and-rebuild: ours {med['ours edit']:.2f} s, BuildKit "
                    f"{med['buildkit edit']:.2f} s, ratio {med['ours edit'] / med['buildkit edit']:.2f}"
                    f" (target ≤ 1.0); unchanged: ours {med['ours unchanged']:.2f} s (target < 0.3 s),"
                    f" BuildKit {med['buildkit unchanged']:.2f} s; cold: ours {med['ours cold']:.2f} s,"
                    f" BuildKit {med['buildkit cold']:.2f} s")
            if has_no_cache:
                line += (f", ours --no-cache {med['ours --no-cache']:.2f} s (cold/--no-cache "
                         f"{med['ours cold'] / med['ours --no-cache']:.2f}, target ≤ 1.05)")
            print(line, flush=True)
            run([DOCKER, "rmi", "-f", f"isb-test-bench-cache-{label}:latest"])
    finally:
        stop_daemon(proc)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
