"""Interoperability with the real tools: docker load/save/run and skopeo read what we write and
we load what they write."""

from __future__ import annotations

import json
import subprocess
import tarfile
import uuid

import pytest

from .helpers import make_rootfs_tar


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True)


@pytest.fixture
def docker_names(docker):
    """Unique docker image names for one test; removed afterwards."""
    made: list[str] = []

    def name(base: str) -> str:
        n = f"isb-test-{base}-{uuid.uuid4().hex[:8]}:latest"
        made.append(n)
        return n

    yield name
    if made:
        subprocess.run([docker, "rmi", "-f", *made], capture_output=True)


def test_docker_loads_and_runs_our_archive(client, busybox_image, tmp_path, docker, docker_names):
    name = docker_names("bb")
    client("ctr-img", "tag", "busybox:latest", name)
    archive = tmp_path / "bb.tar"
    out = client("ctr-img", "save", name, "-o", str(archive)).stdout
    assert "Copying blob sha256:" in out and f"Save success with image: {name}" in out
    loaded = run(docker, "load", "-i", str(archive)).stdout
    assert name in loaded
    assert run(docker, "image", "inspect", "-f", "{{.Id}}", name).stdout.strip() == f"sha256:{busybox_image}"
    result = subprocess.run([docker, "run", "--rm", "--network", "none", name, "/bin/busybox", "true"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    hello = run(docker, "run", "--rm", "--network", "none", name, "/bin/sh", "-c", "echo hi from busybox").stdout
    assert hello.strip() == "hi from busybox"


@pytest.fixture
def experimental_client(daemon_factory, client_factory):
    """A client and daemon with the experimental features (--format) enabled on both sides."""
    d = daemon_factory("experimental", ["--experimental"])
    d.start()
    return client_factory(d, env={"ISULABUILD_CLI_EXPERIMENTAL": "enabled"})


def test_skopeo_reads_our_docker_and_oci_archives(experimental_client, busybox_tar, tmp_path):
    client = experimental_client
    out = client("ctr-img", "import", str(busybox_tar), "busybox:latest").stdout
    busybox_image = out.strip().splitlines()[-1].split('"')[1]
    docker_archive = tmp_path / "d.tar"
    client("ctr-img", "save", "-f", "docker", "busybox:latest", "-o", str(docker_archive))
    info = json.loads(run("skopeo", "inspect", f"docker-archive:{docker_archive}").stdout)
    assert info["Architecture"] and info["Os"] == "linux"
    assert len(info["Layers"]) == 1

    oci_archive = tmp_path / "o.tar"
    out = client("ctr-img", "save", "-f", "oci", "busybox:latest", "-o", str(oci_archive)).stdout
    assert "Writing manifest to image destination" in out
    raw = json.loads(run("skopeo", "inspect", "--raw", f"oci-archive:{oci_archive}").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    config = json.loads(run("skopeo", "inspect", "--config", f"oci-archive:{oci_archive}").stdout)
    assert config["rootfs"]["diff_ids"]
    # The config digest (= image ID) survives the format change.
    assert raw["config"]["digest"] == f"sha256:{busybox_image}"


def test_several_images_share_layers_in_one_archive(client, busybox_image, tmp_path):
    client("ctr-img", "tag", "busybox:latest", "busybox:second")
    other = make_rootfs_tar(tmp_path / "other.tar", {"hello.txt": b"hello"})
    client("ctr-img", "import", str(other), "other:1")
    archive = tmp_path / "multi.tar"
    client("ctr-img", "save", "busybox:latest", "busybox:second", "other:1", "-o", str(archive))
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())
        layer_members = [m for m in tar.getnames() if m.endswith(".tar")]
    tags = sorted(t for entry in manifest for t in entry["RepoTags"])
    assert tags == ["busybox:latest", "busybox:second", "other:1"]
    assert len(manifest) == 2, "the two names of one image share one entry"
    assert len(layer_members) == len(set(layer_members)) == 2

    client("ctr-img", "rm", "-a")
    out = client("ctr-img", "load", "-i", str(archive)).stdout
    assert out.count("Loaded image as ") == 2
    listing = client("ctr-img", "images").stdout
    for tag in ("latest", "second"):
        assert tag in listing


def test_we_load_docker_save_output(client, tmp_path, docker, docker_names, busybox_tar):
    name = docker_names("imported")
    run(docker, "import", str(busybox_tar), name)
    docker_id = run(docker, "image", "inspect", "-f", "{{.Id}}", name).stdout.strip()
    archive = tmp_path / "docker-saved.tar"
    run(docker, "save", "-o", str(archive), name)
    out = client("ctr-img", "load", "-i", str(archive)).stdout
    assert f"Loaded image as {docker_id.removeprefix('sha256:')}" in out
    listing = client("ctr-img", "images").stdout
    assert name.split(":")[0] in listing


def test_we_load_skopeo_oci_archive(client, busybox_image, tmp_path):
    docker_archive = tmp_path / "d.tar"
    client("ctr-img", "save", "busybox:latest", "-o", str(docker_archive))
    oci = tmp_path / "skopeo-oci.tar"
    run("skopeo", "copy", f"docker-archive:{docker_archive}", f"oci-archive:{oci}:skopeo/busybox:v1")
    # skopeo re-serializes the config when it converts to OCI, so the ID is that of its config.
    raw = json.loads(run("skopeo", "inspect", "--raw", f"oci-archive:{oci}").stdout)
    oci_id = raw["config"]["digest"].removeprefix("sha256:")
    client("ctr-img", "rm", "-a")
    out = client("ctr-img", "load", "-i", str(oci)).stdout
    assert f"Loaded image as {oci_id}" in out
    assert "skopeo/busybox" in client("ctr-img", "images").stdout


def test_import_compressed_rootfs(client, busybox_tar, tmp_path):
    ids = set()
    for compressor, suffix in (("gzip", ".gz"), ("xz", ".xz")):
        packed = tmp_path / f"rootfs.tar{suffix}"
        with open(packed, "wb") as f:
            subprocess.run([compressor, "-c", str(busybox_tar)], stdout=f, check=True)
        out = client("ctr-img", "import", str(packed), f"bb-{compressor}:1").stdout
        assert "Getting image source signatures" in out and "Storing signatures" in out
        ids.add(out.strip().splitlines()[-1])
    listing = client("ctr-img", "images").stdout
    assert "bb-gzip" in listing and "bb-xz" in listing
