"""Runs the real isula-build client without a daemon, for checks that end before connecting."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


RunClient = Callable[..., Result]


@pytest.fixture
def nowhere(tmp_path: Path) -> str:
    """An address where no daemon listens."""
    return f"unix://{tmp_path}/absent.sock"


@pytest.fixture
def run_client(nowhere: str) -> RunClient:
    """Runs `isula-build ARGS` against an absent daemon unless --host is given."""

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            cwd: Path | None = None, timeout: float = 60) -> Result:
        base = {k: v for k, v in os.environ.items()
                if k not in ("ISULABUILD_CLI_EXPERIMENTAL", "ISULABUILD_HOST")}
        host = [] if "--host" in args else ["--host", nowhere]
        p = subprocess.run([sys.executable, "-m", "isula_build.cli.main", *host, *args],
                           capture_output=True, text=True, input=input, cwd=cwd,
                           env={**base, **(env or {})}, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)

    return run
