#!/usr/bin/env python3
"""Benchmark: builds of Dockerfiles made of ENV lines, end to end (target: 1 MiB under 3 s).

`FROM scratch` followed by `ENV Vn=n` lines: 10,000 lines, 30,000 lines, and as many as fit in
the 1 MiB Dockerfile limit (about 60,000). Each is built by `isula-build ctr-img build` (the
whole client process) against an isula-builder of its own; the wall time of the best of a few
runs is printed. The figure grows linearly with the number of lines when the frontend, the
executor and the commit are linear; quadratic work shows as 30,000 lines taking far more than
three times 10,000. Not a test: nothing here asserts a time, but the exit status is 1 when the
1 MiB build takes 3 s or more.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import start_daemon, stop_daemon

MAX_DOCKERFILE_BYTES = 1 << 20
TARGET_SECONDS = 3.0


def env_dockerfile(lines: int | None) -> tuple[str, int]:
    """`FROM scratch` and `lines` ENV lines, or as many as fit in 1 MiB when lines is None."""
    out = ["FROM scratch\n"]
    size = len(out[0])
    i = 0
    while lines is None or i < lines:
        line = f"ENV V{i}={i}\n"
        if lines is None and size + len(line) > MAX_DOCKERFILE_BYTES:
            break
        out.append(line)
        size += len(line)
        i += 1
    return "".join(out), i


def build_seconds(cli: list[str], ctx: Path, tag: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([*cli, "ctr-img", "build", "-t", tag, str(ctx)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"build of {ctx} failed:\n{done.stderr[-3000:]}")
    subprocess.run([*cli, "ctr-img", "rm", tag], stdout=subprocess.DEVNULL, check=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lines", type=int, nargs="*", default=[10_000, 30_000],
                        help="ENV line counts to build besides the 1 MiB Dockerfile")
    opts = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="isb-bench-env-", dir="/var/tmp"))
    proc, host = start_daemon(root, "env")
    cli = [sys.executable, "-m", "isula_build.cli.main", "--host", host]
    status = 0
    try:
        for count in [*opts.lines, None]:
            text, lines = env_dockerfile(count)
            ctx = root / f"ctx-{lines}"
            ctx.mkdir()
            (ctx / "Dockerfile").write_text(text)
            best = min(build_seconds(cli, ctx, f"isb-bench-env-{os.getpid()}-{lines}:{run}")
                       for run in range(opts.repeat))
            verdict = ""
            if count is None:
                ok = best < TARGET_SECONDS
                status = 0 if ok else 1
                verdict = f" ({'under' if ok else 'OVER'} the {TARGET_SECONDS:g} s target)"
            print(f"bench_env_lines: {lines} ENV lines, {len(text.encode())} bytes: "
                  f"best of {opts.repeat} = {best:.2f} s{verdict}", flush=True)
    finally:
        stop_daemon(proc)
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
