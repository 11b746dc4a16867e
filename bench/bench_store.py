"""Store benchmarks of issue 2, side by side with docker.

1. `isula-build ctr-img images` with 100 images: wall time of the whole client process, and
   `docker images` with the same 100 images.
2. save of a SIZE MB image: ours vs `docker save` of the same image.
3. load into an empty store: ours vs `docker load` of the same archive (after `docker rmi`).
Prints the medians and the ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from benchlib import start_daemon, stop_daemon

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], repeat: int, before=None) -> float:
    times = []
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def small_rootfs(path: Path, i: int) -> None:
    with tarfile.open(path, "w") as tar:
        data = f"image {i}\n".encode()
        info = tarfile.TarInfo("id.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def big_rootfs(path: Path, size_mb: int) -> None:
    """Mostly incompressible data in files of 10 MB, like a real application layer."""
    root = path.parent / "bigroot"
    (root / "data").mkdir(parents=True, exist_ok=True)
    for i in range(max(1, size_mb // 10)):
        with open(root / "data" / f"f{i}.bin", "wb") as f:
            f.write(os.urandom(10 * 1024 * 1024))
    subprocess.run(["tar", "-C", str(root), "-cf", str(path), "."], check=True)
    shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="isb-bench-", dir="/var/tmp"))
    (root / "etc").mkdir()
    proc, host = start_daemon(root, "store")
    cli = [sys.executable, "-m", "isula_build.cli.main", "--host", host]
    installed = shutil.which("isula-build")
    if installed:
        cli = [installed, "--host", host]
    docker_names: list[str] = []
    try:
        # 1. images with 100 images
        for i in range(100):
            tar = root / f"s{i}.tar"
            small_rootfs(tar, i)
            subprocess.run([*cli, "ctr-img", "import", str(tar), f"isb-bench-{i}:latest"],
                           check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["docker", "import", str(tar), f"isb-bench-{i}:latest"],
                           check=True, stdout=subprocess.DEVNULL)
            docker_names.append(f"isb-bench-{i}:latest")
        ours = timed([*cli, "ctr-img", "images"], max(args.repeat, 5))
        theirs = timed(["docker", "images"], max(args.repeat, 5))
        print(f"images (100): ours {ours * 1000:.0f} ms, docker {theirs * 1000:.0f} ms, ratio {ours / theirs:.2f}")

        # 2. save of a big image
        big = root / "big-rootfs.tar"
        big_rootfs(big, args.size_mb)
        subprocess.run([*cli, "ctr-img", "import", str(big), "isb-bench-big:latest"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["docker", "import", str(big), "isb-bench-big:latest"], check=True, stdout=subprocess.DEVNULL)
        docker_names.append("isb-bench-big:latest")
        big.unlink()
        ours_tar, docker_tar = root / "ours.tar", root / "docker.tar"
        rm = lambda p: (lambda: p.unlink(missing_ok=True))
        ours = timed([*cli, "ctr-img", "save", "isb-bench-big:latest", "-o", str(ours_tar)], args.repeat, rm(ours_tar))
        theirs = timed(["docker", "save", "-o", str(docker_tar), "isb-bench-big:latest"], args.repeat, rm(docker_tar))
        print(f"save ({args.size_mb} MB): ours {ours:.2f} s, docker {theirs:.2f} s, ratio {ours / theirs:.2f}")

        # 3. load into an empty store
        def empty_ours() -> None:
            subprocess.run([*cli, "ctr-img", "rm", "-a"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def empty_docker() -> None:
            subprocess.run(["docker", "rmi", "-f", "isb-bench-big:latest"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

        ours = timed([*cli, "ctr-img", "load", "-i", str(ours_tar)], args.repeat, empty_ours)
        theirs = timed(["docker", "load", "-i", str(docker_tar)], args.repeat, empty_docker)
        print(f"load ({args.size_mb} MB): ours {ours:.2f} s, docker {theirs:.2f} s, ratio {ours / theirs:.2f}")
    finally:
        stop_daemon(proc)
        if docker_names:
            subprocess.run(["docker", "rmi", "-f", *docker_names], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
