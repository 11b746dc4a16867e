"""The daemon process: permissions, key pair, one daemon per run root, signals, packaging files."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import grpc

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from isula_build.api import control_pb2 as pb
from isula_build.api import control_pb2_grpc
from isula_build.daemon.keys import KeyPair
from tests.daemon.helpers import run_to_exit, wait_for

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_socket_roots_and_key_permissions(daemon):
    sock = os.lstat(daemon.socket)
    assert stat.S_ISSOCK(sock.st_mode)
    assert mode(daemon.socket) == 0o660
    assert sock.st_gid == 0  # --group root
    assert mode(daemon.data_root) == 0o700
    assert mode(daemon.run_root) == 0o700
    key = daemon.config_dir / "isula-build.pub"
    assert mode(key) == 0o400
    public = serialization.load_pem_public_key(key.read_bytes())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    assert key.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # SubjectPublicKeyInfo


def test_public_key_is_replaced_at_each_start(daemon):
    key = daemon.config_dir / "isula-build.pub"
    first = key.read_bytes()
    daemon.restart()
    # Daemon.start appends to the same log, so it may return on the first daemon's line.
    wait_for(lambda: daemon.log().count("is listening on") == 2)
    assert key.read_bytes() != first
    assert mode(key) == 0o400
    leftovers = [p.name for p in daemon.config_dir.iterdir() if p.name != "isula-build.pub"]
    assert leftovers == []


def test_daemon_killed_while_writing_its_key_leaves_no_temporary(daemon_factory):
    daemon = daemon_factory()
    # The real daemon, SIGKILLed while its new key file reaches the disk (before the rename).
    hook = (
        "import os, runpy, signal, sys\n"
        "real_fsync = os.fsync\n"
        "def fsync(fd):\n"
        f"    if os.readlink(f'/proc/self/fd/{{fd}}').startswith({str(daemon.config_dir)!r}):\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real_fsync(fd)\n"
        "os.fsync = fsync\n"
        "sys.argv = ['isula-builder', *sys.argv[1:]]\n"
        "runpy.run_module('isula_build.daemon.main', run_name='__main__')\n")
    killed = subprocess.run([sys.executable, "-c", hook, *daemon.command()[3:]],
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = daemon.config_dir.iterdir()
    assert left.name.startswith(".isula-build.pub."), "killed before the temporary was made"
    daemon.start()
    assert [p.name for p in daemon.config_dir.iterdir()] == ["isula-build.pub"]


def test_decrypt_undoes_rsa_oaep_sha512_hex():
    keys = KeyPair()
    public = serialization.load_pem_public_key(keys.public_pem())
    secret = "p@ssw0rd-ü"
    ciphertext = public.encrypt(secret.encode(), padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA512()), algorithm=hashes.SHA512(), label=None))
    assert keys.decrypt_hex(ciphertext.hex()) == secret
    other = KeyPair()
    try:
        other.decrypt_hex(ciphertext.hex())
    except Exception as exc:
        assert "cannot decrypt" in str(exc)
    else:
        raise AssertionError("a ciphertext for another key must not decrypt")


def test_second_daemon_on_same_run_root_is_refused(daemon, daemon_factory):
    second = daemon_factory("second")
    second.run_root = daemon.run_root
    result = run_to_exit(second)
    assert result.code == 1
    assert f"another isula-builder is running on run root {daemon.run_root}" in result.output
    assert daemon.socket.exists() and daemon.process.poll() is None, "the first is untouched"


def test_sigterm_removes_socket_and_releases_lock(daemon, daemon_factory):
    assert daemon.stop(signal.SIGTERM) == 0
    assert not daemon.socket.exists()
    again = daemon_factory("again")
    again.run_root = daemon.run_root
    again.start()  # the lock was released
    assert again.socket.exists()


def test_sigint_also_stops_cleanly(daemon):
    assert daemon.stop(signal.SIGINT) == 0
    assert not daemon.socket.exists()


def test_restart_after_sigkill_replaces_stale_socket(daemon):
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert daemon.socket.exists(), "a killed daemon leaves its socket"
    daemon.start()
    wait_for(lambda: daemon.log().count("is listening on") == 2)
    assert daemon.process.poll() is None


def test_socket_in_use_by_another_daemon_is_refused(daemon, daemon_factory):
    other = daemon_factory("other")
    other.socket = daemon.socket
    result = run_to_exit(other)
    assert result.code == 1 and f"listening on {daemon.socket}" in result.output
    assert daemon.process.poll() is None


def test_version_flag():
    p = subprocess.run([sys.executable, "-m", "isula_build.daemon.main", "--version"],
                       capture_output=True, text=True, check=True)
    assert p.stdout.startswith("isula-builder version 0.1.0, build ")


def test_completion_matches_contrib_file():
    p = subprocess.run([sys.executable, "-m", "isula_build.daemon.main", "completion"],
                       capture_output=True, text=True, check=True)
    contrib = (REPO / "contrib" / "completion" / "isula-builder").read_text()
    assert p.stdout == contrib, "regenerate: isula-builder completion > contrib/completion/isula-builder"
    assert "--dataroot" in contrib and "complete -F _isula_builder isula-builder" in contrib
    subprocess.run(["bash", "-n"], input=contrib, text=True, check=True)


def test_systemd_unit_verifies(tmp_path):
    # systemd-analyze verify insists that ExecStart exists and that the units it depends on are
    # known. The unit is verified unchanged inside an alternate root holding this system's unit
    # files and an executable at /usr/bin/isula-builder, so the host is left untouched.
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    exe = root / "usr" / "bin" / "isula-builder"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (root / "usr" / "lib" / "systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system",
                    symlinks=True)
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    shutil.copy(REPO / "contrib" / "systemd" / "isula-build.service", units)
    p = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                        "/etc/systemd/system/isula-build.service"],
                       capture_output=True, text=True)
    # verify only warns (exit 0) about many mistakes, so its output must be empty too.
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stderr
    unit = (units / "isula-build.service").read_text()
    assert "ExecStart=/usr/bin/isula-builder\n" in unit and "Type=notify\n" in unit


def test_sigterm_lets_a_running_request_finish(daemon, tmp_path):
    # A 400 MB layer takes the daemon a good fraction of a second to store: long enough for
    # SIGTERM to arrive mid-copy, well within the grace period.
    big = tmp_path / "big.tar"
    with tarfile.open(big, "w") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 400 << 20
        with open("/dev/zero", "rb") as zeros:
            tar.addfile(info, zeros)
    with grpc.insecure_channel(daemon.host) as channel:
        stream = control_pb2_grpc.ControlStub(channel).Import(
            pb.ImportRequest(importID="big", source=str(big), reference="big:1"))
        assert next(stream).log == "Getting image source signatures\n"
        daemon.process.send_signal(signal.SIGTERM)
        rest = [m.log for m in stream]
    assert rest[-1].startswith("Import success with image id: ")
    assert daemon.stop() == 0
    assert not daemon.socket.exists()
