"""`ctr-img build --platform` end to end: the real client and daemon, runc, qemu-user through
binfmt_misc, a real registry holding a two-platform busybox list made from Debian's packages,
skopeo and docker (its BuildKit too) reading what we made."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.differential.flatten import apply_layer, config_fields, normalize
from tests.builder.test_build_e2e import leftovers
from tests.platform_images import publish_busybox_list, read_oci_archive_files, skopeo_raw
from tests.registry.servers import Registry, free_port

EXPERIMENTAL = {"ISULABUILD_CLI_EXPERIMENTAL": "enabled"}
VOLATILE = {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname", "/.dockerenv"}


@pytest.fixture(scope="session")
def platform_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = Registry(tmp_path_factory.mktemp("platform-registry"), free_port())
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def busybox_list(platform_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """HOST/busybox-multi:latest, a list of busybox for linux/arm64 and linux/amd64."""
    return publish_busybox_list(platform_registry.host, tmp_path_factory.mktemp("busybox-multi"))


@pytest.fixture
def platform_daemon(daemon_factory, client_factory, platform_registry):  # type: ignore[no-untyped-def]
    daemon = daemon_factory("plat", ["--experimental"])
    (daemon.config_dir / "registries.toml").write_text(
        f'[registries.insecure]\nregistries = ["{platform_registry.host}"]\n')
    daemon.start()
    return daemon, client_factory(daemon, env=EXPERIMENTAL)


def context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def archive_image(archive: Path) -> tuple[dict, dict]:
    """(config, flattened tree) of the one image of a docker-archive."""
    with tarfile.open(archive) as tar:
        members = {normalize(m.name): m for m in tar.getmembers()}

        def read(name: str):  # type: ignore[no-untyped-def]
            return tar.extractfile(members[normalize(name)])

        manifest = json.load(read("manifest.json"))[0]
        config = json.load(read(manifest["Config"]))
        tree: dict = {}
        for layer in manifest["Layers"]:
            apply_layer(tree, read(layer))
    return config, {p: e for p, e in tree.items() if p not in VOLATILE}


def test_run_of_arm64_goes_through_qemu(platform_daemon, busybox_list: str, tmp_path: Path) -> None:
    daemon, client = platform_daemon
    ctx = context(tmp_path, f"FROM {busybox_list}\nRUN uname -m\n")
    out = client("ctr-img", "build", "--format", "docker", "--platform", "linux/arm64",
                 "-t", "isb-arm:1", str(ctx)).stdout.splitlines()
    assert out[out.index("STEP  2: RUN uname -m") + 1] == "aarch64"
    archive = tmp_path / "arm.tar"
    client("ctr-img", "save", "--format", "docker", "isb-arm:1", "-o", str(archive))
    config, _ = archive_image(archive)
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    # images: a foreign image says its platform after its size; native rows are unchanged.
    client("ctr-img", "pull", busybox_list)
    rows = {line.split()[0]: line.split() for line in
            client("ctr-img", "images").stdout.splitlines() if line.startswith(" ")}
    assert rows["isb-arm"][-1] == "linux/arm64"
    assert rows[busybox_list.rpartition(":")[0]][-1] == "MB"   # the native one pulled
    # pull --platform takes that entry of the list (and the name, as any pull).
    client("ctr-img", "pull", "--platform", "linux/arm64", busybox_list)
    listed = client("ctr-img", "images", busybox_list).stdout
    assert "linux/arm64" in listed


def test_two_platforms_make_a_list_pushed_with_its_images(platform_daemon, platform_registry,
                                                          busybox_list: str, docker: str,
                                                          tmp_path: Path) -> None:
    daemon, client = platform_daemon
    ctx = context(tmp_path, f"FROM {busybox_list}\nRUN uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n")
    dest = f"{platform_registry.host}/isb-multi:1"
    out = client("ctr-img", "build", "--format", "docker", "--platform",
                 "linux/arm64,linux/amd64", "-t", "isb-multi:local", "-o", f"docker://{dest}",
                 str(ctx)).stdout.splitlines()
    # Each line of a platform's build says which; the list's lines come after both.
    assert "[linux/arm64] STEP  2: RUN uname -m > /arch" in out
    assert "[linux/amd64] STEP  2: RUN uname -m > /arch" in out
    assert "Copying 2 of 2 images in list" in out and "Writing manifest list to image destination" in out
    list_id = out[-1].rpartition(" ")[2]
    _, raw = skopeo_raw(dest)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [m["platform"] for m in raw["manifests"]] == [
        {"os": "linux", "architecture": "arm64"}, {"os": "linux", "architecture": "amd64"}]
    # -t names the list in the store, as `manifest create` keeps one.
    shown = json.loads(client("manifest", "inspect", "isb-multi:local").stdout)
    assert len(shown["manifests"]) == 2
    assert client("ctr-img", "images", "isb-multi:local").stdout.count(list_id[:12]) == 1
    # docker pulls the arm64 entry and runs it through binfmt.
    try:
        subprocess.run([docker, "pull", "-q", "--platform", "linux/arm64", dest], check=True,
                       capture_output=True)
        ran = subprocess.run([docker, "run", "--rm", "--platform", "linux/arm64", dest],
                             check=True, capture_output=True, text=True).stdout
        assert ran == "aarch64\n"
    finally:
        subprocess.run([docker, "rmi", "-f", dest], capture_output=True)
    # push of the list (by its name) sends the list and both images again.
    again = f"{platform_registry.host}/isb-multi:again"
    client("ctr-img", "tag", "isb-multi:local", again)
    client("ctr-img", "push", again)
    assert len(skopeo_raw(again)[1]["manifests"]) == 2


def test_buildplatform_stage_runs_once_natively(platform_daemon, busybox_list: str,
                                                tmp_path: Path) -> None:
    daemon, client = platform_daemon
    ctx = context(tmp_path, f"FROM --platform=$BUILDPLATFORM {busybox_list} AS builder\n"
                            "RUN uname -m > /built-on && echo builder-ran\n"
                            f"FROM {busybox_list}\nARG TARGETARCH\n"
                            "COPY --from=builder /built-on /built-on\n"
                            "RUN uname -m > /runs-on && echo target-$TARGETARCH\n")
    archive = tmp_path / "multi.tar"
    out = client("ctr-img", "build", "--no-cache", "--platform", "linux/arm64,linux/amd64",
                 "-o", f"oci-archive:{archive}:isb-multi:oci", str(ctx)).stdout.splitlines()
    assert out.count("[linux/arm64] builder-ran") == 1 and \
        not any(line.endswith("] builder-ran") for line in out if "arm64" not in line)
    assert "[linux/amd64]  ---> Using this stage as built for linux/arm64" in out
    assert "[linux/arm64] target-arm64" in out and "[linux/amd64] target-amd64" in out
    assert leftovers(daemon) == []
    images = read_oci_archive_files(archive, ["/built-on", "/runs-on"])
    assert images["linux/arm64"]["files"] == {"/built-on": "x86_64\n", "/runs-on": "aarch64\n"}
    assert images["linux/amd64"]["files"] == {"/built-on": "x86_64\n", "/runs-on": "x86_64\n"}
    assert images["linux/arm64"]["config"]["architecture"] == "arm64"
    # skopeo reads the archive's list by its name.
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw",
                                     f"oci-archive:{archive}:isb-multi:oci"], check=True,
                                    capture_output=True, text=True).stdout)
    assert len(raw["manifests"]) == 2
    # save of a list: the oci format holds it, a docker-archive cannot.
    client("ctr-img", "tag", out[-1].rpartition(" ")[2], "isb-multi:saved")
    saved = tmp_path / "saved.tar"
    client("ctr-img", "save", "--format", "oci", "isb-multi:saved", "-o", str(saved))
    assert set(read_oci_archive_files(saved, [])) == {"linux/arm64", "linux/amd64"}
    refused = client("ctr-img", "save", "--format", "docker", "isb-multi:saved",
                     "-o", str(tmp_path / "no.tar"), check=False)
    assert refused.returncode == 1 and "is a manifest list" in refused.stderr
    # prune keeps the images the list holds (they have no names of their own).
    client("ctr-img", "rm", "--prune")
    assert set(read_oci_archive_files(saved, [])) == {"linux/arm64", "linux/amd64"}
    client("ctr-img", "save", "--format", "oci", "isb-multi:saved", "-o", str(tmp_path / "2.tar"))


@pytest.mark.parametrize("output", ["docker-archive:{tmp}/x.tar:x:1", "docker-daemon:isb-x:1"])
def test_a_list_is_refused_by_one_image_outputs(platform_daemon, busybox_list: str,
                                                tmp_path: Path, output: str) -> None:
    daemon, client = platform_daemon
    ctx = context(tmp_path, f"FROM {busybox_list}\nRUN echo ran-anyway\n")
    result = client("ctr-img", "build", "--platform", "linux/arm64,linux/amd64",
                    "-o", output.format(tmp=tmp_path), str(ctx), check=False)
    assert result.returncode == 1
    assert "holds one image" in result.stderr and "--platform linux/arm64" in result.stderr
    assert "ran-anyway" not in result.stdout
    # One platform of the list is one image: that goes.
    client("ctr-img", "build", "--platform", "linux/arm64", "-o",
           output.format(tmp=tmp_path).replace("x.tar", "y.tar"), str(ctx))
    if output.startswith("docker-daemon"):
        subprocess.run(["docker", "rmi", "-f", "isb-x:1"], capture_output=True)


def test_a_missing_binfmt_handler_is_named_before_any_run(daemon_factory, client_factory,
                                                          platform_registry, busybox_list: str,
                                                          tmp_path: Path, monkeypatch) -> None:
    binfmt = tmp_path / "binfmt"
    binfmt.mkdir()
    monkeypatch.setenv("ISULA_BUILD_BINFMT_DIR", str(binfmt))   # the daemon inherits it
    daemon = daemon_factory("nobinfmt")
    (daemon.config_dir / "registries.toml").write_text(
        f'[registries.insecure]\nregistries = ["{platform_registry.host}"]\n')
    daemon.start()
    client = client_factory(daemon)
    ctx = context(tmp_path, f"FROM {busybox_list}\nRUN echo should-not-run\nRUN uname -m\n")

    def refused() -> str:
        result = client("ctr-img", "build", "--platform", "linux/arm64", str(ctx), check=False)
        assert result.returncode == 1 and "should-not-run" not in result.stdout
        assert "Dockerfile line 2: cannot RUN for linux/arm64 on this linux/amd64 machine" \
            in result.stderr
        return result.stderr

    assert "binfmt_misc is not mounted at " + str(binfmt) in refused()
    (binfmt / "status").write_text("enabled\n")
    assert "binfmt_misc has no qemu handler for aarch64" in refused()
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/"
                                         "aarch64-binfmt-P\nflags: P\noffset 0\n")
    assert "without the F (fix-binary) flag" in refused()
    assert "Platforms:\n    linux/amd64\n" in client("info").stdout
    # A build without RUN needs no emulation; this machine's platform never does.
    (ctx / "Dockerfile").write_text(f"FROM {busybox_list}\nENV A=1\n")
    client("ctr-img", "build", "--platform", "linux/arm64", str(ctx))
    (ctx / "Dockerfile").write_text(f"FROM {busybox_list}\nRUN true\n")
    client("ctr-img", "build", "--platform", "linux/amd64", str(ctx))
    # A stage FROM a $BUILDPLATFORM stage runs on that platform too: natively.
    (ctx / "Dockerfile").write_text(f"FROM --platform=$BUILDPLATFORM {busybox_list} AS native\n"
                                    "FROM native\nRUN uname -m\n")
    out = client("ctr-img", "build", "--no-cache", "--platform", "linux/arm64",
                 str(ctx)).stdout.splitlines()
    assert out[out.index("STEP  3: RUN uname -m") + 1] == "x86_64"
    # The real binfmt_misc of this machine (install-deps.sh registered qemu-user-static).
    real = client("info", env={"ISULA_BUILD_BINFMT_DIR": ""}).stdout
    assert "    linux/arm64\n" in real.split("Platforms:\n")[1]


def test_arm64_build_matches_buildkit(platform_daemon, busybox_list: str, docker: str,
                                      tmp_path: Path) -> None:
    """BuildKit of docker 20.10 without buildx builds one foreign platform (not a list: its
    docker exporter refuses several); the config's platform and the tree must match ours."""
    daemon, client = platform_daemon
    ctx = context(tmp_path, f"FROM {busybox_list}\nARG TARGETPLATFORM\nARG TARGETARCH\n"
                            "RUN uname -m > /arch && echo $TARGETPLATFORM $TARGETARCH > /target\n"
                            "CMD [\"cat\", \"/arch\"]\n")
    ours = tmp_path / "ours.tar"
    client("ctr-img", "build", "--format", "docker", "--platform", "linux/arm64",
           "-o", f"docker-archive:{ours}:isb-cmp:ours", str(ctx))
    theirs = tmp_path / "theirs.tar"
    tag = f"isb-cmp-buildkit-{os.getpid()}:arm64"
    try:
        subprocess.run(["/usr/bin/docker", "build", "-q", "--network", "host", "--platform",
                        "linux/arm64", "-t", tag, str(ctx)], check=True, capture_output=True,
                       env={**os.environ, "DOCKER_BUILDKIT": "1"})
        subprocess.run([docker, "save", "-o", str(theirs), tag], check=True)
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True)
    our_config, our_tree = archive_image(ours)
    their_config, their_tree = archive_image(theirs)
    for key in ("os", "architecture", "variant"):
        assert our_config.get(key) == their_config.get(key), key
    assert config_fields(our_config) == config_fields(their_config)
    assert our_tree == their_tree
    assert our_tree["/arch"] == their_tree["/arch"]
    multi = subprocess.run(["/usr/bin/docker", "build", "--network", "host", "--platform",
                            "linux/arm64,linux/amd64", str(ctx)], capture_output=True, text=True,
                           env={**os.environ, "DOCKER_BUILDKIT": "1"})
    # What ours adds: dockerd 20.10 refuses a list of platforms outright (buildx is missing).
    assert multi.returncode != 0 and "invalid component" in multi.stderr
