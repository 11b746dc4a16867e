"""`ctr-img import` of a real root filesystem, end to end, and the import's limits.

- A root filesystem as debootstrap leaves it holds device nodes and a fifo in /dev: it is
  imported (plain and gzip), built on with RUN, saved, and then loaded and run by docker.
- The 1 GiB import limit counts the uncompressed layer: a small gzip bomb is refused.
- The data root's free space reserve (configuration.toml min_free_space) refuses an import that
  would eat into it, and a build whose steps do.
Every refusal leaves the store as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
import uuid
import zlib
from pathlib import Path

import pytest

from .helpers import random_file, store_snapshot

# What debootstrap makes in /dev (and a loop device and a fifo, as a VM's tar may hold).
DEVICES = {"dev/null": ("c", 1, 3), "dev/zero": ("c", 1, 5), "dev/full": ("c", 1, 7),
           "dev/random": ("c", 1, 8), "dev/urandom": ("c", 1, 9), "dev/tty": ("c", 5, 0),
           "dev/console": ("c", 5, 1), "dev/ptmx": ("c", 5, 2), "dev/loop0": ("b", 7, 0)}
SYMLINKS = {"dev/fd": "/proc/self/fd", "dev/stdin": "/proc/self/fd/0",
            "dev/stdout": "/proc/self/fd/1", "dev/stderr": "/proc/self/fd/2"}
FIFO = "dev/initctl"


def make_rootfs(busybox_tar: Path, root: Path) -> Path:
    """busybox-static plus a debootstrap-like /dev, made with mknod on a real filesystem."""
    root.mkdir()
    subprocess.run(["tar", "-xf", str(busybox_tar), "-C", str(root)], check=True)
    for sub in ("dev/pts", "dev/shm"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, (kind, major, minor) in DEVICES.items():
        mode = (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | 0o666
        os.mknod(root / name, mode, os.makedev(major, minor))
    for name, target in SYMLINKS.items():
        os.symlink(target, root / name)
    os.mkfifo(root / FIFO, 0o600)
    return root


def tar_of(root: Path, out: Path, *options: str) -> Path:
    subprocess.run(["tar", *options, "--numeric-owner", "-C", str(root), "-cf", str(out), "."],
                   check=True)
    return out


def imported_id(output: str) -> str:
    line = [l for l in output.splitlines() if l.startswith("Import success with image id:")][0]
    return line.split('"')[1]


def device_entries(members: list[tarfile.TarInfo]) -> dict[str, tuple[str, int, int]]:
    found = {}
    for m in members:
        name = m.name.removeprefix("./")
        if m.ischr() or m.isblk():
            found[name] = ("c" if m.ischr() else "b", m.devmajor, m.devminor)
    return found


@pytest.fixture
def docker_image_names(docker):
    made: list[str] = []

    def name(base: str) -> str:
        made.append(f"isb-test-{base}-{uuid.uuid4().hex[:8]}:latest")
        return made[-1]

    yield name
    if made:
        subprocess.run([docker, "rmi", "-f", *made], capture_output=True)


def test_a_root_filesystem_with_device_nodes_is_imported_built_on_and_run_by_docker(
        client, busybox_tar, tmp_path, docker, docker_image_names):
    root = make_rootfs(busybox_tar, tmp_path / "rootfs")
    plain = tar_of(root, tmp_path / "rootfs.tar")
    packed = tar_of(root, tmp_path / "rootfs.tar.gz", "-z")
    with tarfile.open(plain) as tar:
        assert device_entries(tar.getmembers()) == DEVICES  # the test's own premise

    plain_id = imported_id(client("ctr-img", "import", str(plain), "isb-test-deb:plain").stdout)
    packed_id = imported_id(client("ctr-img", "import", str(packed), "isb-test-deb:gz").stdout)
    assert plain_id and packed_id

    # RUN runs in runc with a /dev of its own mounted over the image's.
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM isb-test-deb:gz\n"
                                    "RUN ls -l /dev/null > /out && echo built >> /out\n")
    name = docker_image_names("deb")
    client("ctr-img", "build", "-t", name, str(ctx))
    archive = tmp_path / "deb.tar"
    client("ctr-img", "save", name, "-o", str(archive))

    subprocess.run([docker, "load", "-i", str(archive)], capture_output=True, check=True)
    out = subprocess.run([docker, "run", "--rm", "--network", "none", name, "cat", "/out"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("crw") and "/dev/null" in out and out.endswith("built\n")
    # docker mounts its own /dev too; the image's nodes are what its export shows.
    container = subprocess.run([docker, "create", "--network", "none", name, "true"],
                               capture_output=True, text=True, check=True).stdout.strip()
    try:
        exported = tmp_path / "exported.tar"
        with open(exported, "wb") as f:
            subprocess.run([docker, "export", container], stdout=f, check=True)
    finally:
        subprocess.run([docker, "rm", container], capture_output=True)
    with tarfile.open(exported) as tar:
        members = tar.getmembers()
    # …but for /dev/console, which docker's init layer of every container replaces by a file.
    assert device_entries(members) == {k: v for k, v in DEVICES.items() if k != "dev/console"}
    assert any(m.name.removeprefix("./") == FIFO and m.isfifo() for m in members)
    links = {m.name.removeprefix("./"): m.linkname for m in members if m.issym()}
    assert {k: links.get(k) for k in SYMLINKS} == SYMLINKS


def gzip_bomb(path: Path, size: int) -> Path:
    """A gzip'd tar of one file of `size` zero bytes, streamed: a few hundred KiB a GiB."""
    info = tarfile.TarInfo("zeros")
    info.size = size
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip framing
    zeros = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(packer.compress(info.tobuf(tarfile.PAX_FORMAT)))
        left = size
        while left:
            n = min(left, len(zeros))
            f.write(packer.compress(zeros[:n]))
            left -= n
        f.write(packer.compress(bytes(-size % 512 + 1024)))  # padding, end-of-archive blocks
        f.write(packer.flush())
    return path


def test_a_gzip_bomb_over_1_gib_uncompressed_is_refused(client, daemon, tmp_path):
    bomb = gzip_bomb(tmp_path / "bomb.tar.gz", (1 << 30) + (1 << 20))
    assert bomb.stat().st_size < 8 << 20
    before = store_snapshot(daemon.data_root)
    result = client("ctr-img", "import", str(bomb), "isb-test-bomb:1", check=False)
    assert result.returncode == 1
    assert "exceeds the limit of 1 GiB" in result.stderr, result.stderr
    assert store_snapshot(daemon.data_root) == before
    assert "isb-test-bomb" not in client("ctr-img", "images").stdout


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_work_that_would_eat_into_the_free_space_reserve_is_refused(
        daemon_factory, client_factory, busybox_tar, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    random_file(big / "data", 100 << 20)
    big_tar = tar_of(big, tmp_path / "big.tar")
    d = daemon_factory()
    d.data_root.mkdir(parents=True)
    # Room for a little, not for 100 MB: other writers on this disk may take some of the 30 MB
    # meanwhile, which only makes the refusal come sooner.
    reserve = free_bytes(d.data_root) - (30 << 20)
    conf = d.config_dir / "configuration.toml"
    conf.write_text(f"min_free_space = {reserve}\n")
    d.start()
    client = client_factory(d)
    client("ctr-img", "import", str(busybox_tar), "busybox:latest")  # a small import fits

    before = store_snapshot(d.data_root)
    result = client("ctr-img", "import", str(big_tar), "isb-test-big:1", check=False)
    assert result.returncode == 1
    message = result.stderr
    assert "not enough free space" in message and str(d.data_root) in message, message
    assert f"min_free_space in {conf}" in message
    assert store_snapshot(d.data_root) == before

    # A build's COPY can write any amount: the next step boundary stops it.
    (big / "Dockerfile").write_text("FROM busybox\nCOPY data /data\nENV AFTER=copy\n")
    result = client("ctr-img", "build", "-t", "isb-test-big:2", str(big), check=False)
    assert result.returncode == 1
    assert "not enough free space" in result.stderr, result.stderr
    assert "isb-test-big" not in client("ctr-img", "images").stdout
    shutil.rmtree(big)
