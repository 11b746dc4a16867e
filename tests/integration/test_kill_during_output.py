"""A daemon killed while writing an output outside the data root (save -o, build -o
docker-archive:, separated save -d) leaves nothing beside it once restarted, and its store works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .helpers import random_file, store_snapshot

BIG = 256 * 1024 * 1024  # big enough that writing it takes a while


def writing_into(pid: int, prefixes: tuple[str, ...]) -> bool:
    """True once the daemon holds a file whose path starts with one of prefixes open (the
    output being written): "/dir/#1234 (deleted)" for an unnamed file in /dir, else its path."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefixes):
                return True
        except OSError:
            pass  # closed meanwhile
    return False


def kill_while_writing(daemon, client_args: list[str], out: Path,
                       prefixes: tuple[str, ...] = ()) -> None:
    """Runs the client, SIGKILLs the daemon as soon as it writes under out (or into files
    whose path starts with one of prefixes), and restarts it."""
    assert daemon.process is not None
    pid = daemon.process.pid
    prefixes = prefixes or (f"{out}/",)
    proc = subprocess.Popen([sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host,
                             *client_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not writing_into(pid, prefixes):
        time.sleep(0.001)
    assert proc.poll() is None, f"the client ended before the daemon wrote: {proc.communicate()}"
    assert writing_into(pid, prefixes), "the daemon never started writing the output"
    daemon.stop(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode != 0, "the output was complete before the daemon was killed"
    daemon.start()


def assert_nothing_left(daemon, out: Path) -> None:
    assert sorted(os.listdir(out)) == [], "a partial output was left beside the target"
    assert os.listdir(daemon.data_root / "inflight") == []
    assert store_snapshot(daemon.data_root)["tmp"] == []


def big_rootfs(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    random_file(rootfs / "data" / "big.bin", BIG)
    tarball = tmp_path / "big-rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    return tarball


def test_sigkill_during_save_leaves_no_partial_archive(daemon, client, tmp_path):
    client("ctr-img", "import", str(big_rootfs(tmp_path)), "big:1")
    out = tmp_path / "out"
    out.mkdir()
    images = client("ctr-img", "images").stdout
    archive = out / "big.tar"
    kill_while_writing(daemon, ["ctr-img", "save", "big:1", "-o", str(archive)], out)
    assert_nothing_left(daemon, out)
    assert client("ctr-img", "images").stdout == images
    # The name is free and the image whole: the same save now completes.
    client("ctr-img", "save", "big:1", "-o", str(archive))
    assert os.listdir(out) == ["big.tar"]


def test_sigkill_during_build_output_leaves_no_partial_archive(daemon, client, busybox_image,
                                                               tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    random_file(ctx / "big.bin", BIG)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    out = tmp_path / "out"
    out.mkdir()
    spec = f"docker-archive:{out / 'big.tar'}:big:1"
    kill_while_writing(daemon, ["ctr-img", "build", "-o", spec, str(ctx)], out)
    assert_nothing_left(daemon, out)
    client("ctr-img", "build", "-o", spec, str(ctx))
    assert os.listdir(out) == ["big.tar"]


def test_sigkill_during_docker_daemon_output_leaves_nothing_in_tmp(daemon, client, docker,
                                                                  busybox_image, tmp_path):
    # The archive handed to docker is staged in <data_root>/tmp, beside the build's work dir:
    # unnamed, or (before) as a hidden temporary renamed to docker-daemon-<id>.tar.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    random_file(ctx / "big.bin", BIG)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    staging = daemon.data_root / "tmp"
    try:
        kill_while_writing(daemon, ["ctr-img", "build", "-o", "docker-daemon:isb-test-killed:1",
                                    str(ctx)], staging,
                           prefixes=(f"{staging}/#", f"{staging}/.docker-daemon-"))
        assert os.listdir(staging) == []
        assert os.listdir(daemon.data_root / "inflight") == []
    finally:
        subprocess.run([docker, "rmi", "-f", "isb-test-killed:1"], capture_output=True)


def test_sigkill_during_separated_save_leaves_no_partial_directory(daemon, client,
                                                                   busybox_image, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    random_file(ctx / "big.bin", BIG // 2)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    client("ctr-img", "build", "-t", "isb-test-bigapp:1", str(ctx))
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "Images"
    args = ["ctr-img", "save", "-b", "busybox:latest", "-d", str(dest), "isb-test-bigapp:1"]
    kill_while_writing(daemon, args, out)
    assert_nothing_left(daemon, out)
    client(*args)
    assert os.listdir(out) == ["Images"]


def test_start_up_removes_a_recorded_temporary_and_keeps_a_users_file(daemon_factory,
                                                                      tmp_path):
    # What a daemon killed while writing on a filesystem without O_TMPFILE leaves: hidden
    # temporaries beside the targets, named in records under the data root.
    out = tmp_path / "out"
    out.mkdir()
    ours, users = out / ".a.tar.0123456789ab.tmp", out / ".b.tar.0123456789ab.tmp"
    ours.write_bytes(b"half an archive")
    users.write_bytes(b"recorded, but since replaced by a file of the user's")
    daemon = daemon_factory()
    records = daemon.data_root / "inflight"
    records.mkdir(parents=True)
    for name, path in (("1", ours), ("2", users)):
        st = path.stat()
        (records / f"{name}.json").write_text(json.dumps(
            {"path": str(path), "kind": "file", "dev": st.st_dev, "ino": st.st_ino}))
    replacement = out / "replacement"  # made while the old one exists: another inode
    replacement.write_bytes(b"a user's file")
    os.replace(replacement, users)
    daemon.start()
    assert os.listdir(out) == [users.name]
    assert users.read_bytes() == b"a user's file"
    assert os.listdir(records) == []
