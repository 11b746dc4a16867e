"""Shared fixtures: a real isula-builder on a socket of its own and the real isula-build client.

Every daemon fixture gets fresh data, run and config directories under pytest's tmp_path, so
tests never touch /var/lib/isula-build and can run side by side.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from isula_build.store import inflight

REPO = Path(__file__).resolve().parent.parent
BUSYBOX_ROOTFS_SCRIPT = REPO / "scripts" / "busybox-rootfs.sh"


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root filesystem tarball made from Debian's static busybox."""
    out = tmp_path_factory.mktemp("busybox") / "busybox-rootfs.tar"
    subprocess.run([str(BUSYBOX_ROOTFS_SCRIPT), str(out)], check=True)
    return out


@dataclass
class Daemon:
    """A running isula-builder and the directories it owns."""

    root: Path
    socket: Path
    config_dir: Path
    data_root: Path
    run_root: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "isula_build.daemon.main",
            "--host", self.host,
            "--config-dir", str(self.config_dir),
            "--dataroot", str(self.data_root),
            "--runroot", str(self.run_root),
            "--group", "root",
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> None:
        self.log_path = self.root / "daemon.log"
        # Earlier runs (restarts) append to the same log: only lines after this offset count.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"isula-builder exited early:\n{self.log()}")
            if b"isula-builder is listening on" in self.log_path.read_bytes()[offset:]:
                return
            time.sleep(0.05)
        raise RuntimeError(f"isula-builder did not start:\n{self.log()}")

    def log(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_bytes().decode(errors="replace")
        return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code

    def restart(self) -> None:
        self.stop()
        self.start()


def make_daemon(root: Path, extra_args: list[str] | None = None) -> Daemon:
    # Unix socket paths are limited to 108 bytes; tmp_path can be long, so keep the socket short.
    sock_dir = Path(os.environ.get("ISULA_TEST_SOCK_DIR", "/tmp"))
    sock = sock_dir / f"isb-{os.getpid()}-{abs(hash(str(root))) % 10**8}.sock"
    d = Daemon(
        root=root,
        socket=sock,
        config_dir=root / "etc",
        data_root=root / "data",
        run_root=root / "run",
        extra_args=list(extra_args or []),
    )
    d.config_dir.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
def daemon_factory(tmp_path: Path):
    """Makes (unstarted) daemons; all are stopped at the end of the test."""
    made: list[Daemon] = []

    def factory(name: str = "d", extra_args: list[str] | None = None) -> Daemon:
        d = make_daemon(tmp_path / name, extra_args)
        made.append(d)
        return d

    yield factory
    for d in made:
        d.stop()


@pytest.fixture
def daemon(daemon_factory) -> Daemon:
    d = daemon_factory()
    d.start()
    return d


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class Client:
    """Runs the real isula-build client against one daemon."""

    def __init__(self, daemon: Daemon, env: dict[str, str] | None = None) -> None:
        self.daemon = daemon
        # The client finds the daemon's public key (login, encrypted build args) in the
        # daemon's configuration directory, as on a real machine where both use /etc/isula-build.
        self.env = {**os.environ, "ISULABUILD_CONFIG_DIR": str(daemon.config_dir), **(env or {})}

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        cmd = [sys.executable, "-m", "isula_build.cli.main", "--host", self.daemon.host, *args]
        p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           env={**self.env, **(env or {})}, timeout=timeout)
        result = Result(p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f"isula-build {' '.join(args)} failed ({p.returncode}):\n"
                                 f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
        return result


@pytest.fixture
def client(daemon: Daemon) -> Client:
    return Client(daemon)


@pytest.fixture
def client_factory():
    """Clients for daemons made with daemon_factory: client_factory(daemon, env=None)."""
    return Client


@pytest.fixture
def busybox_image(client: Client, busybox_tar: Path) -> str:
    """The busybox rootfs imported as busybox:latest; returns its image ID."""
    out = client("ctr-img", "import", str(busybox_tar), "busybox:latest").stdout
    line = [l for l in out.splitlines() if l.startswith("Import success with image id:")][0]
    return line.split('"')[1]


@pytest.fixture(scope="session")
def docker() -> str:
    """The docker CLI, talking to a running dockerd (.ci/run starts one).

    A missing dockerd fails the test instead of skipping it: interoperability is part of the
    contract, and a silent skip would hide a gap.
    """
    docker_bin = shutil.which("docker")
    assert docker_bin, "docker CLI not installed (apt-get install docker.io)"
    probe = subprocess.run([docker_bin, "info"], capture_output=True, text=True)
    assert probe.returncode == 0, f"dockerd is not running: {probe.stderr}"
    return docker_bin


@pytest.fixture
def outdir(tmp_path: Path) -> Path:
    """An empty directory to write outputs into."""
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


@pytest.fixture
def inflight_dir(tmp_path: Path):
    """The process records its temporaries in tmp_path/inflight, as a daemon does."""
    directory = tmp_path / "inflight"
    inflight.start(directory)
    yield directory
    inflight.stop()
