"""Save and load throughput of a ~500 MB image against docker save / docker load.

A printout, not an assertion (machines differ); the test asserts only that both sides moved the
same image. Run with `-s` to see the table.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from isula_build.store import Store
from isula_build.transports.archive import open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination, StoreSource

pytestmark = pytest.mark.docker
SIZE = 500 << 20


def make_rootfs(path: Path, size: int) -> None:
    """A root filesystem of incompressible files, 50 MB each."""
    chunk = 50 << 20
    with tarfile.open(path, "w") as tar:
        for i in range(size // chunk):
            info = tarfile.TarInfo(f"data/blob{i:02d}")
            info.size = chunk
            with open("/dev/urandom", "rb") as random:
                tar.addfile(info, random)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)


def test_throughput_against_docker(tmp_path: Path, docker: str, capsys) -> None:
    rootfs = tmp_path / "rootfs.tar"
    make_rootfs(rootfs, SIZE)
    name = f"isb-test-transports-speed-{uuid.uuid4().hex[:8]}:latest"
    store = Store(tmp_path / "store1")
    fresh = Store(tmp_path / "store2")
    try:
        with ImportSource(rootfs) as source, StoreDestination(store, [name]) as dst:
            image_id = copy_image(source, dst, lambda _: None)
        record = store.lookup(name)
        ours = tmp_path / "ours.tar"

        def save_ours() -> None:
            with DockerArchiveWriter(ours) as archive:
                with StoreSource(store, record) as src, archive.image([name]) as out:
                    copy_image(src, out, lambda _: None)

        def load_ours() -> None:
            for src, names in open_archive(ours):
                with src, StoreDestination(fresh, names) as out:
                    assert copy_image(src, out, lambda _: None) == image_id

        t_save = timed(save_ours)
        t_docker_load = timed(lambda: run(docker, "load", "-i", str(ours)))
        theirs = tmp_path / "theirs.tar"
        t_docker_save = timed(lambda: run(docker, "save", "-o", str(theirs), name))
        t_load = timed(load_ours)
        assert fresh.lookup(name).id == image_id
        mb = os.path.getsize(ours) / 1e6
        with capsys.disabled():
            print(f"\n{mb:.0f} MB image   ours      docker    ratio")
            print(f"save          {t_save:6.2f} s  {t_docker_save:6.2f} s  {t_save / t_docker_save:5.2f}x"
                  f"   ({mb / t_save:.0f} MB/s)")
            print(f"load          {t_load:6.2f} s  {t_docker_load:6.2f} s  {t_load / t_docker_load:5.2f}x"
                  f"   ({mb / t_load:.0f} MB/s)")
    finally:
        subprocess.run([docker, "rmi", "-f", name], capture_output=True)
        store.close()
        fresh.close()
