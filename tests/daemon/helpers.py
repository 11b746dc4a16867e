"""Helpers of the daemon tests: daemons expected to refuse to start, and explicit command lines."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STARTUP_FAILURE_TIMEOUT = 30


@dataclass
class Exit:
    code: int
    output: str


def run_to_exit(daemon, *extra: str) -> Exit:
    """Runs a daemon that is expected to refuse to start; returns its exit code and output."""
    return run_command_to_exit([*daemon.command(), *extra])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def command_without(daemon, *flags: str) -> list[str]:
    """The daemon's command line without some of its value flags (so file values apply)."""
    cmd = daemon.command()
    for flag in flags:
        i = cmd.index(flag)
        cmd = cmd[:i] + cmd[i + 2:]
    return cmd


def run_command_to_exit(cmd: list[str]) -> Exit:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=STARTUP_FAILURE_TIMEOUT)
    return Exit(p.returncode, p.stdout + p.stderr)


@contextmanager
def running(cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
            timeout: float = 20.0) -> Iterator[subprocess.Popen]:
    """A daemon started from an explicit command line; stopped with SIGTERM (exit 0) at the end."""
    with open(log_path, "wb") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while "is listening on" not in log_path.read_text(errors="replace"):
            assert p.poll() is None, f"daemon exited early:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"daemon did not start:\n{log_path.read_text()}"
            time.sleep(0.05)
        yield p
    finally:
        p.terminate()
        assert p.wait(20) == 0


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
