"""What the benchmarks share: an isula-builder of their own on temporary directories, running a
command, and docker's busybox made from the same root filesystem as ours."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def start_daemon(root: Path, name: str) -> tuple[subprocess.Popen, str]:
    """Starts isula-builder with its config, data and run roots under root; returns it and its host."""
    host = f"unix:///tmp/isb-bench-{name}-{os.getpid()}.sock"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    log_path = root / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "isula_build.daemon.main", "--host", host,
                                 "--config-dir", str(root / "etc"), "--dataroot", str(root / "data"),
                                 "--runroot", str(root / "run"), "--group", "root"],
                                stdout=log, stderr=subprocess.STDOUT)
    for _ in range(400):
        if "listening on" in log_path.read_text(errors="replace"):
            return proc, host
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"isula-builder did not start:\n{log_path.read_text(errors='replace')}")


def stop_daemon(proc: subprocess.Popen) -> None:
    """Stops an isula-builder start_daemon started, waiting for it to end."""
    proc.terminate()
    proc.wait(timeout=60)


DOCKER = "/usr/bin/docker"  # Debian's 20.10 CLI: the one with BuildKit built in (no buildx here)
BASE = "busybox:latest"


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")


def ensure_docker_busybox(busybox_tar: Path) -> None:
    """docker's busybox:latest must be this busybox; never replace another image of that name."""
    want = ["sha256:" + hashlib.sha256(busybox_tar.read_bytes()).hexdigest()]
    probe = subprocess.run([DOCKER, "image", "inspect", "--format", "{{json .RootFS.Layers}}", BASE],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        if json.loads(probe.stdout) != want:
            raise SystemExit(f"docker's {BASE} is not the test busybox; not replacing it")
        return
    run([DOCKER, "import", str(busybox_tar), BASE])
