"""Layer compression (issue 15): `--compression zstd[:LEVEL]` on push and build outputs, zstd
layers pulled, loaded and built FROM, zstd refused for Docker images, and compressed blobs that
are the same bytes every time. The real client and isula-builder, a real docker-registry on
127.0.0.1, skopeo to check what was pushed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from isula_build.api import control_pb2 as pb
from isula_build.daemon.handlers.push import push
from isula_build.daemon.logstream import Job
from isula_build.errors import InvalidArgument
from tests.registry.conftest import import_busybox

EXPERIMENTAL = {"ISULABUILD_CLI_EXPERIMENTAL": "enabled"}
ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Two layers, busybox's and the build's (a stage commits one), so a pull has two in flight.
DOCKERFILE = "FROM busybox:latest\nRUN echo one > /one\nRUN echo two > /two\n"


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True).stdout


def raw_manifest(name: str) -> dict:
    return json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{name}"))


def layer_digests(name: str) -> list[str]:
    return [layer["digest"] for layer in raw_manifest(name)["layers"]]


def image_id_of(client, name: str) -> str:
    repository, _, tag = name.rpartition(":")
    rows = [line.split() for line in client("ctr-img", "images").stdout.splitlines()[1:]]
    return next(row[2] for row in rows if row[:2] == [repository, tag])


class Side:
    """A daemon (experimental: OCI format) that trusts the plain registry, and its client."""

    def __init__(self, daemon_factory, client_factory, registry, name: str) -> None:
        self.daemon = daemon_factory(name, ["--experimental"])
        (self.daemon.config_dir / "registries.toml").write_text(
            f'[registries.insecure]\nregistries = ["{registry.host}"]\n')
        self.daemon.start()
        self.client = client_factory(self.daemon, env=EXPERIMENTAL)


@pytest.fixture
def side(daemon_factory, client_factory, plain_registry):
    return lambda name: Side(daemon_factory, client_factory, plain_registry, name)


@pytest.fixture
def built(side, plain_registry, busybox_tar, tmp_path) -> tuple[Side, str, str]:
    """A two-layer image built and pushed by the build itself with -o oci://… zstd; returns
    the pushing side, the name in the registry and the image ID."""
    pusher = side("pusher")
    pusher.client("ctr-img", "import", str(busybox_tar), "busybox:latest")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    name = f"{plain_registry.host}/z/app:1"
    out = pusher.client("ctr-img", "build", "-o", f"oci://{name}", "--compression", "zstd",
                        str(context)).stdout
    image_id = out.strip().splitlines()[-1].rsplit(" ", 1)[1]
    return pusher, name, image_id


def test_zstd_push_is_oci_tar_zstd_and_skopeo_copies_it(built, tmp_path) -> None:
    pusher, name, image_id = built
    manifest = raw_manifest(name)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [ZSTD_LAYER] * 2
    assert manifest["config"]["digest"] == f"sha256:{image_id}"

    # skopeo reads every blob and checks it against its digest while copying.
    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:app")
    for digest in layer_digests(name):
        blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
        assert blob.read_bytes()[:4] == ZSTD_MAGIC

    # ctr-img push of the same image with zstd at another level: the registry has the zstd
    # blobs (blob-info cache), nothing is compressed again, the digests stay.
    pusher.client("ctr-img", "tag", image_id, f"{name.rsplit(':', 1)[0]}:2")
    pusher.client("ctr-img", "push", "-f", "oci", "--compression", "zstd:9",
                  f"{name.rsplit(':', 1)[0]}:2")
    assert layer_digests(f"{name.rsplit(':', 1)[0]}:2") == layer_digests(name)


def test_zstd_and_gzip_pulls_give_the_same_image_and_build_from_it(
        built, side, plain_registry, tmp_path) -> None:
    pusher, zstd_name, image_id = built
    gzip_name = f"{plain_registry.host}/g/app:1"
    pusher.client("ctr-img", "tag", image_id, gzip_name)
    pusher.client("ctr-img", "push", "-f", "docker", gzip_name)
    assert all(layer["mediaType"].endswith("tar.gzip")
               for layer in raw_manifest(gzip_name)["layers"])

    # Fresh daemons, so every layer is downloaded and decompressed.
    for name in (zstd_name, gzip_name):
        puller = side(f"puller-{name.split('/')[1]}")
        out = puller.client("ctr-img", "pull", name).stdout.splitlines()
        assert len([l for l in out if l.startswith("Copying blob sha256:")]) == 2
        assert out[-1] == f"Pull success with image: {name}"
        # The same config (so the same diff IDs) whatever the layers were compressed with.
        assert image_id_of(puller.client, name) == image_id[:12]

    # FROM the pulled zstd image: its layers are the build's root filesystem.
    context = tmp_path / "from"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {zstd_name}\nRUN cat /one /two > /both\n")
    builder = side("builder")
    out = builder.client("ctr-img", "build", "-o", f"oci-archive:{tmp_path / 'out.tar'}:x:1",
                         str(context)).stdout
    assert "Build success with image id:" in out
    layout = tmp_path / "out"
    skopeo("copy", f"oci-archive:{tmp_path / 'out.tar'}:x:1", f"oci:{layout}:x")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" /
                           index["manifests"][0]["digest"].split(":")[1]).read_bytes())
    last = layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    listing = subprocess.run(["tar", "-xOf", str(last), "both"], capture_output=True,
                             check=True).stdout
    assert listing == b"one\ntwo\n"


def test_load_oci_archive_with_zstd_layers(built, side, tmp_path) -> None:
    _, name, image_id = built
    # skopeo writes the archive with the registry's zstd blobs as they are.
    archive = tmp_path / "zstd.oci.tar"
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci-archive:{archive}:app:1")
    loader = side("loader")
    out = loader.client("ctr-img", "load", "-i", str(archive)).stdout
    assert f"Loaded image as {image_id}" in out


def test_zstd_refused_for_docker_images(built, side, plain_registry, tmp_path) -> None:
    pusher, name, image_id = built
    host = plain_registry.host
    pusher.client("ctr-img", "tag", image_id, f"{host}/d/app:1")
    refused = pusher.client("ctr-img", "push", "-f", "docker", "--compression", "zstd",
                            f"{host}/d/app:1", check=False)
    assert refused.returncode == 1
    assert "zstd compression needs an OCI image" in refused.stderr
    bad_level = pusher.client("ctr-img", "push", "--compression", "zstd:42", f"{host}/d/app:1",
                              check=False)
    assert bad_level.returncode == 1 and "from 1 to 19" in bad_level.stderr
    for args in (["-o", f"docker://{host}/d/app:2", "--compression", "zstd"],
                 ["-o", f"oci://{host}/d/app:2", "--compression", "zstd", "--format", "docker"],
                 ["-o", f"docker-archive:{tmp_path / 'a.tar'}:a:1", "--compression", "gzip"]):
        refused = pusher.client("ctr-img", "build", *args, str(tmp_path), check=False)
        assert refused.returncode == 1, args
        assert "zstd compression needs an OCI image" in refused.stderr \
            or "applies only to docker:// and oci:// outputs" in refused.stderr, refused.stderr
    # Nothing reached the registry.
    missing = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                              f"docker://{host}/d/app:1"], capture_output=True, text=True)
    assert missing.returncode != 0 and "manifest unknown" in missing.stderr


def test_daemon_refuses_zstd_for_docker_format(make_state, plain_registry, busybox_tar) -> None:
    # The daemon checks for itself: a client other than ours may send the field.
    host = plain_registry.host
    state = make_state(insecure=(host,))
    import_busybox(state, busybox_tar, f"{host}/h/bb:1")
    with pytest.raises(InvalidArgument, match="zstd compression needs an OCI image"):
        push(state, pb.PushRequest(pushID="a", imageName=f"{host}/h/bb:1", format="docker",
                                   compression="zstd"), Job())
    with pytest.raises(InvalidArgument, match="unknown compression"):
        push(state, pb.PushRequest(pushID="a", imageName=f"{host}/h/bb:1", format="oci",
                                   compression="lz4"), Job())


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_blobs_are_the_same_bytes_every_time(side, plain_registry, busybox_tar,
                                                        compression: str) -> None:
    host = plain_registry.host
    digests = []
    for n in (1, 2):
        # Daemons of their own: no blob-info cache to find the first push's blob by.
        pusher = side(f"p{n}")
        name = f"{host}/{compression}{n}/bb:1"
        pusher.client("ctr-img", "import", str(busybox_tar), name)
        pusher.client("ctr-img", "push", "-f", "oci", "--compression", compression, name)
        digests.append(layer_digests(name))
    assert digests[0] == digests[1]
    blob = plain_registry.blob_path(digests[0][0])
    mtime = blob.stat().st_mtime_ns
    # A second push of the same image to the same repository uploads nothing.
    pusher.client("ctr-img", "push", "-f", "oci", "--compression", compression, name)
    assert blob.stat().st_mtime_ns == mtime
    assert layer_digests(name) == digests[1]
