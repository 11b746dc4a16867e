"""What the benchmarks share: an isula-builder of their own on temporary directories."""

from __future__ import annotations

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
