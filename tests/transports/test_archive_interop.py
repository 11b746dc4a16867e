"""Interoperability with the real tools: docker, skopeo and umoci read what we write, and we read
what docker save and skopeo write."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from isula_build.transports.archive import detect_archive_format, open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.rootfs_tarball import ImportSource
from transport_helpers import Image, docker_archive_members, read_all, sha, write_tar

pytestmark = pytest.mark.docker


def run(*cmd: str) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture
def docker_names(docker: str):
    """Unique isb-test- image names; every one is removed from dockerd afterwards."""
    made: list[str] = []

    def make(label: str) -> str:
        name = f"isb-test-transports-{label}-{uuid.uuid4().hex[:8]}:latest"
        made.append(name)
        return name

    yield make
    for name in made:
        subprocess.run([docker, "rmi", "-f", name], capture_output=True)


def busybox_archive(busybox_tar: Path, path: Path, names: list[str], writer_class, log) -> str:
    with writer_class(path) as archive:
        with ImportSource(busybox_tar) as source, archive.image(names) as dst:
            return copy_image(source, dst, log)


def test_docker_loads_and_runs_our_docker_archive(tmp_path: Path, busybox_tar: Path,
                                                  docker: str, docker_names, log) -> None:
    first, second = docker_names("a"), docker_names("b")
    out = tmp_path / "bb.tar"
    image_id = busybox_archive(busybox_tar, out, [first, second], DockerArchiveWriter, log)
    loaded = run(docker, "load", "-i", str(out))
    assert f"Loaded image: {first}" in loaded and f"Loaded image: {second}" in loaded
    assert run(docker, "image", "inspect", "--format", "{{.Id}}", first).strip() == f"sha256:{image_id}"
    run(docker, "run", "--rm", "--network", "none", first, "/bin/busybox", "true")


def test_skopeo_inspects_our_archives(tmp_path: Path, busybox_tar: Path, log) -> None:
    docker_out, oci_out = tmp_path / "d.tar", tmp_path / "o.tar"
    image_id = busybox_archive(busybox_tar, docker_out, ["isb-test-sk:1"], DockerArchiveWriter, log)
    busybox_archive(busybox_tar, oci_out, ["isb-test-sk:1"], OciArchiveWriter, log)
    diff_id = sha(busybox_tar.read_bytes())
    for ref in (f"docker-archive:{docker_out}", f"oci-archive:{oci_out}:isb-test-sk:1"):
        info = json.loads(run("skopeo", "inspect", ref))
        assert info["Layers"] == [diff_id], ref
        assert info["Os"] == "linux"
        config = json.loads(run("skopeo", "inspect", "--config", ref))
        assert config["rootfs"]["diff_ids"] == [diff_id]
    raw = run("skopeo", "inspect", "--raw", f"docker-archive:{docker_out}")
    assert json.loads(raw)["config"]["digest"] == f"sha256:{image_id}"


def test_umoci_unpacks_our_oci_archive(tmp_path: Path, busybox_tar: Path, log) -> None:
    out = tmp_path / "o.tar"
    busybox_archive(busybox_tar, out, ["isb-test-um:1", "isb-test-um:2"], OciArchiveWriter, log)
    layout = tmp_path / "layout"
    layout.mkdir()
    run("tar", "-xf", str(out), "-C", str(layout))
    assert sorted(run("umoci", "ls", "--layout", str(layout)).split()) == ["isb-test-um:1", "isb-test-um:2"]
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--rootless", "--image", f"{layout}:isb-test-um:2", str(bundle))
    assert os.path.islink(bundle / "rootfs" / "bin" / "sh")
    assert (bundle / "rootfs" / "bin" / "busybox").stat().st_size > 100_000


def test_we_read_docker_save_and_skopeo_oci_archive(tmp_path: Path, busybox_tar: Path,
                                                    docker: str, docker_names, log) -> None:
    name = docker_names("save")
    ours = tmp_path / "ours.tar"
    image_id = busybox_archive(busybox_tar, ours, [name], DockerArchiveWriter, log)
    run(docker, "load", "-i", str(ours))
    saved = tmp_path / "saved.tar"
    run(docker, "save", "-o", str(saved), name)
    converted = tmp_path / "skopeo-oci.tar"
    run("skopeo", "copy", "--quiet", f"docker-archive:{ours}", f"oci-archive:{converted}:{name}")
    plain = busybox_tar.read_bytes()
    for path, fmt in ((saved, "docker-archive"), (converted, "oci-archive")):
        assert detect_archive_format(path) == fmt
        [(source, names)] = open_archive(path)
        assert names == [name]
        with source, DockerArchiveWriter(tmp_path / f"re-{path.name}") as archive:
            with archive.image(names) as dst:
                copy_image(source, dst, log)
            _config, [layer] = read_all(source)
        # skopeo compresses the layer, docker keeps it plain: either way we get the same tar.
        assert layer == plain
    # docker keeps the config bytes, so the image ID survives the trip through dockerd.
    [(source, _)] = open_archive(saved)
    with source:
        assert sha(source.config_bytes())[7:] == image_id


def test_docker_loads_multi_image_archive_sharing_layers(tmp_path: Path, two_images: list[Image],
                                                         docker: str, docker_names, log) -> None:
    names = [docker_names("m1"), docker_names("m2")]
    src = write_tar(tmp_path / "in.tar", docker_archive_members(two_images))
    out = tmp_path / "out.tar"
    with DockerArchiveWriter(out) as archive:
        for (source, _), name in zip(open_archive(src), names):
            with source, archive.image([name]) as dst:
                copy_image(source, dst, log)
    run(docker, "load", "-i", str(out))
    for name, image in zip(names, two_images):
        inspected = json.loads(run(docker, "image", "inspect", name))[0]
        assert inspected["Id"] == f"sha256:{image.image_id}"
        assert inspected["RootFS"]["Layers"] == [sha(l) for l in image.layers]
