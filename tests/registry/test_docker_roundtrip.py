"""What we push, docker pulls and runs; what docker pushes, we pull (and docker runs it again
after we hand it back). docker treats registries on 127.0.0.1 as insecure, so plain HTTP works."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from isula_build.distribution.pull import pull_image
from isula_build.distribution.push import push_image
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_daemon import DockerDaemonWriter
from isula_build.transports.store import StoreSource
from tests.registry.conftest import import_busybox


def run(*args: str) -> str:
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout


@pytest.fixture
def docker_names(docker: str):
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run([docker, "rmi", "-f", name], capture_output=True)


@pytest.mark.parametrize("image_format", ["docker", "oci"])
def test_docker_pulls_and_runs_what_we_push(make_state, plain_registry, busybox_tar, docker,
                                            docker_names, image_format) -> None:
    host = plain_registry.host
    state = make_state(insecure=(host,))
    name = f"{host}/isb-test-ours:{image_format}"
    image_id = import_busybox(state, busybox_tar, name)
    push_image(state.store, state.registry, name, name, image_format, lambda line: None)
    docker_names.append(name)
    run(docker, "pull", name)
    assert run(docker, "image", "inspect", "-f", "{{.Id}}", name).strip() == f"sha256:{image_id}"
    out = run(docker, "run", "--rm", "--network", "none", name, "echo", "hello from isula")
    assert out == "hello from isula\n"


def test_we_pull_what_docker_pushes(make_state, plain_registry, busybox_tar, docker,
                                    docker_names, tmp_path: Path) -> None:
    host = plain_registry.host
    source = "isb-test-registry-src:1"
    pushed = f"{host}/isb-test-theirs:1"
    docker_names.extend([source, pushed, "isb-test-registry-back:1"])
    run(docker, "import", str(busybox_tar), source)
    run(docker, "tag", source, pushed)
    run(docker, "push", pushed)
    docker_id = run(docker, "image", "inspect", "-f", "{{.Id}}", pushed).strip()

    state = make_state(insecure=(host,))
    record = pull_image(state.store, state.registry, pushed, lambda line: None)
    assert f"sha256:{record.id}" == docker_id
    # Hand the pulled image back to docker under a new name and run it.
    with DockerDaemonWriter(tmp_path) as engine:
        with StoreSource(state.store, record) as src, \
                engine.image(["isb-test-registry-back:1"]) as dst:
            copy_image(src, dst, lambda line: None)
    out = run(docker, "run", "--rm", "--network", "none", "isb-test-registry-back:1",
              "sh", "-c", "echo ok")
    assert out == "ok\n"


def test_skopeo_reads_what_we_push(make_state, plain_registry, busybox_tar, docker,
                                   docker_names) -> None:
    host = plain_registry.host
    state = make_state(insecure=(host,))
    name = f"{host}/isb-test-skopeo-read:1"
    image_id = import_busybox(state, busybox_tar, name)
    push_image(state.store, state.registry, name, name, "oci", lambda line: None)
    docker_names.append("isb-test-skopeo-read:1")
    run("skopeo", "copy", "--src-tls-verify=false", f"docker://{name}",
        "docker-daemon:isb-test-skopeo-read:1")
    assert run(docker, "image", "inspect", "-f", "{{.Id}}",
               "isb-test-skopeo-read:1").strip() == f"sha256:{image_id}"
    out = run(docker, "run", "--rm", "--network", "none", "isb-test-skopeo-read:1",
              "cat", "/etc/passwd")
    assert out.startswith("root:")
