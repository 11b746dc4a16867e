"""Connections cut in the middle of a push or a pull, and registries that answer garbage."""

from __future__ import annotations

import json
import subprocess

import pytest

from isula_build.distribution.pull import pull_image
from isula_build.distribution.push import push_image
from isula_build.errors import InvalidArgument, RegistryUnavailable
from tests.registry.conftest import import_busybox
from tests.registry.servers import CuttingProxy, GarbageServer


@pytest.fixture
def proxies():
    made: list = []
    yield made
    for proxy in made:
        proxy.stop()


def test_push_cut_midway_is_retried(make_state, plain_registry, big_layer_tar, proxies) -> None:
    proxy = CuttingProxy(plain_registry.port, cut_after=3 << 20, direction="up")
    proxies.append(proxy)
    state = make_state(insecure=(proxy.host,))
    name = f"{proxy.host}/big:1"
    image_id = import_busybox(state, big_layer_tar, name)
    push_image(state.store, state.registry, name, name, "docker", lambda line: None)
    assert proxy.cuts == 1
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{plain_registry.host}/big:1"], check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(raw)["config"]["digest"] == f"sha256:{image_id}"
    puller = make_state("puller", insecure=(plain_registry.host,))
    assert pull_image(puller.store, puller.registry, f"{plain_registry.host}/big:1",
                      lambda line: None).id == image_id


def test_pull_cut_midway_resumes(make_state, plain_registry, big_layer_tar, proxies) -> None:
    state = make_state(insecure=(plain_registry.host,))
    name = f"{plain_registry.host}/big:1"
    image_id = import_busybox(state, big_layer_tar, name)
    push_image(state.store, state.registry, name, name, "docker", lambda line: None)
    proxy = CuttingProxy(plain_registry.port, cut_after=4 << 20, direction="down")
    proxies.append(proxy)
    puller = make_state("puller", insecure=(proxy.host,))
    record = pull_image(puller.store, puller.registry, f"{proxy.host}/big:1", lambda line: None)
    assert record.id == image_id and proxy.cuts == 1


def test_registry_answering_garbage(make_state, proxies) -> None:
    not_http = GarbageServer(http=False)
    bad_json = GarbageServer(http=True)
    proxies.extend([not_http, bad_json])
    state = make_state(insecure=(not_http.host, bad_json.host))
    with pytest.raises(RegistryUnavailable):
        pull_image(state.store, state.registry, f"{not_http.host}/bb:1", lambda line: None)
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        pull_image(state.store, state.registry, f"{bad_json.host}/bb:1", lambda line: None)
    assert state.store.list_images() == []


def test_registry_answering_deeply_nested_json(make_state, proxies) -> None:
    # json.loads of a manifest nested 100,000 deep ran out of stack: an internal error.
    nested = GarbageServer(http=True, body=b"[" * 100_000 + b"]" * 100_000)
    proxies.append(nested)
    state = make_state(insecure=(nested.host,))
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        pull_image(state.store, state.registry, f"{nested.host}/bb:1", lambda line: None)
    assert state.store.list_images() == []
