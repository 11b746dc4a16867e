"""Relative symlinks whose target climbs above `/` (`ln -s ../../../../bin /usr/bin/climb`).

The kernel resolves `/..` to `/`, so inside the container such a link is `/bin`, and docker
accepts it. A build that makes one commits, and so do load and pull of images holding one; the
link works in later steps and in images built on top, and docker runs what we hand it.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Real registries on 127.0.0.1 (the registry tests' fixtures, reused as they are).
from tests.registry.conftest import plain_registry, registry_factory  # noqa: F401
from tests.registry.test_e2e import _registries_toml

LINK, TARGET = "/usr/bin/climb", "../../../../bin"


def run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def docker_names(docker: str) -> Iterator:
    """Unique docker image names for one test; removed afterwards."""
    made: list[str] = []

    def name(base: str, host: str = "") -> str:
        made.append(f"{host + '/' if host else ''}isb-test-{base}-{uuid.uuid4().hex[:8]}:1")
        return made[-1]

    yield name
    if made:
        subprocess.run([docker, "rmi", "-f", *made], capture_output=True)


def build(client, tmp_path: Path, name: str, dockerfile: str, *flags: str) -> str:  # type: ignore[no-untyped-def]
    ctx = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return client("ctr-img", "build", *flags, "-t", name, str(ctx)).stdout


def assert_builds_on(client, tmp_path: Path, image: str) -> None:  # type: ignore[no-untyped-def]
    """An image built FROM `image` (its layers extracted for overlayfs) follows the link. The
    same image comes back after save and load, so the RUN must not come from the cache."""
    out = build(client, tmp_path, "isb-test-climb-child:1",
                f"FROM {image}\nRUN ls {LINK}/sh && readlink {LINK}\n", "--no-cache")
    assert f"{LINK}/sh" in out.splitlines() and TARGET in out.splitlines()


def docker_image_with_the_link(docker: str, busybox_tar: Path, tmp_path: Path, name: str) -> None:
    """`docker import` of the busybox root filesystem plus the climbing link."""
    rootfs = tmp_path / "climb-rootfs.tar"
    shutil.copy(busybox_tar, rootfs)
    with tarfile.open(rootfs, "a") as tar:
        info = tarfile.TarInfo("." + LINK)
        info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, TARGET, 0o777, 1577836800
        tar.addfile(info)
    run(docker, "import", str(rootfs), name)


def test_build_commits_a_link_climbing_above_the_root(client, busybox_image: str, docker: str,
                                                      docker_names, tmp_path: Path) -> None:
    name = docker_names("climb-build")
    out = build(client, tmp_path, name,
                f"FROM busybox AS base\nRUN ln -s {TARGET} {LINK} && ls {LINK}/\n"
                f"RUN ls {LINK}/sh\nFROM base\nRUN ls {LINK}/busybox\n")
    lines = out.splitlines()
    assert "busybox" in lines  # the first RUN lists /bin through the link
    assert f"{LINK}/sh" in lines and f"{LINK}/busybox" in lines
    assert lines[-1].startswith("Build success with image id: ")
    assert_builds_on(client, tmp_path, name)

    # Saved, removed, loaded back; then docker loads the archive and runs the image.
    archive = tmp_path / "climb.tar"
    client("ctr-img", "save", name, "-o", str(archive))
    client("ctr-img", "rm", name)
    assert "Loaded image as " in client("ctr-img", "load", "-i", str(archive)).stdout
    assert_builds_on(client, tmp_path, name)
    assert name in run(docker, "load", "-i", str(archive))
    listed = run(docker, "run", "--rm", "--network", "none", name, "ls", f"{LINK}/").split()
    assert "busybox" in listed and "sh" in listed


def test_load_of_a_docker_archive_with_the_link(client, busybox_image: str, busybox_tar: Path,
                                                docker: str, docker_names, tmp_path: Path) -> None:
    name = docker_names("climb-load")
    docker_image_with_the_link(docker, busybox_tar, tmp_path, name)
    archive = tmp_path / "docker-saved.tar"
    run(docker, "save", "-o", str(archive), name)
    out = client("ctr-img", "load", "-i", str(archive)).stdout
    assert "Loaded image as " in out
    assert_builds_on(client, tmp_path, name)


def test_pull_of_an_image_with_the_link(daemon_factory, client_factory, plain_registry,
                                        busybox_tar: Path, docker: str, docker_names,
                                        tmp_path: Path) -> None:
    host = plain_registry.host
    daemon = daemon_factory("reg")
    _registries_toml(daemon, [host])
    daemon.start()
    client = client_factory(daemon)
    name = docker_names("climb-pull", host)
    docker_image_with_the_link(docker, busybox_tar, tmp_path, name)
    run(docker, "push", name)
    out = client("ctr-img", "pull", name).stdout
    assert out.splitlines()[-1] == f"Pull success with image: {name}"
    assert_builds_on(client, tmp_path, name)
