"""The build engine with a daemon state and a real registry (Debian's docker-registry on
127.0.0.1): FROM and COPY --from of images the store lacks are pulled, and `-o docker://` /
`-o oci://` push the built image. build_image is called directly; test_build_e2e.py does the
same through the real daemon and client."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from isula_build.builder.builder import BuildEnvironment, BuildInput, build_image
from isula_build.daemon.state import DaemonState
from isula_build.distribution.push import push_image
from isula_build.errors import IsulaBuildError, NotFound
# The registry tests' fixtures (real registries, daemon states on tmp_path), reused as they are.
from tests.registry.conftest import (  # noqa: F401
    import_busybox,
    make_state,
    plain_registry,
    registry_factory,
)
from tests.registry.servers import Registry


def build(state: DaemonState, dockerfile: str, context: Path, lines: list[str],
          build_id: str = "b1", output: str = "") -> str:
    env = BuildEnvironment(store=state.store, data_root=state.options.data_root,
                           run_root=state.options.run_root, daemon_env={}, registry=state.registry)
    request = BuildInput(build_id=build_id, dockerfile=dockerfile, context_dir=context,
                         output=output)
    return build_image(request, env, lines.append, threading.Event())


def skopeo_raw(reference: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{reference}"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@pytest.fixture
def pushed_busybox(make_state, plain_registry: Registry, busybox_tar: Path) -> str:
    """busybox pushed to the registry from a daemon state of its own; returns its name there."""
    source = make_state("source", insecure=(plain_registry.host,))
    import_busybox(source, busybox_tar, "busybox:latest")
    name = f"{plain_registry.host}/busybox:latest"
    push_image(source.store, source.registry, "busybox:latest", name, "docker", lambda line: None)
    return name


def test_missing_base_image_is_pulled_into_the_build(make_state, plain_registry: Registry,
                                                     pushed_busybox: str, tmp_path: Path) -> None:
    state = make_state("builder", insecure=(plain_registry.host,))
    assert state.store.list_images() == []
    context = tmp_path / "ctx"
    context.mkdir()
    lines: list[str] = []
    image_id = build(state, f"FROM {pushed_busybox}\nRUN echo pulled > /p\n", context, lines)
    # The pull's copy lines come between the FROM step and the next one.
    start = lines.index(f"STEP  1: FROM {pushed_busybox}")
    assert lines[start + 1] == "Getting image source signatures"
    assert lines.index("STEP  2: RUN echo pulled > /p") > lines.index("Storing signatures")
    pulled = state.store.lookup(pushed_busybox)
    assert pulled.id != image_id
    config = json.loads(state.store.config_bytes(image_id))
    assert config["rootfs"]["diff_ids"][0] == pulled.layers[0].diff_id

    # Stored now: the next build (COPY --from the same image) pulls nothing.
    lines.clear()
    build(state, f"FROM {pushed_busybox}\nCOPY --from={pushed_busybox} /bin/busybox /bb\n",
          context, lines, build_id="b2")
    assert "Getting image source signatures" not in lines[:lines.index("STEP  2: COPY "
                                                                       f"--from={pushed_busybox} "
                                                                       "/bin/busybox /bb")]


def test_copy_from_a_missing_image_pulls_it(make_state, plain_registry: Registry,
                                            pushed_busybox: str, busybox_tar: Path,
                                            tmp_path: Path) -> None:
    state = make_state("builder", insecure=(plain_registry.host,))
    import_busybox(state, busybox_tar, "busybox:latest")
    lines: list[str] = []
    build(state, f"FROM busybox\nCOPY --from={pushed_busybox} /bin/busybox /bb\n",
          tmp_path, lines)
    copy_step = lines.index(f"STEP  2: COPY --from={pushed_busybox} /bin/busybox /bb")
    assert lines[copy_step + 1] == "Getting image source signatures"
    assert state.store.lookup(pushed_busybox).names == (pushed_busybox,)


def test_pull_failure_names_the_line_and_leaves_nothing(make_state, plain_registry: Registry,
                                                       tmp_path: Path) -> None:
    state = make_state("builder", insecure=(plain_registry.host,))
    absent = f"{plain_registry.host}/absent:1"
    with pytest.raises(NotFound, match=f'Dockerfile line 1: base image "{absent}" not found in '
                                       "the local store, and pulling it failed: .*manifest unknown"):
        build(state, f"FROM {absent}\nRUN true\n", tmp_path, [])
    assert state.store.list_images() == []
    assert list((state.options.data_root / "tmp").iterdir()) == []


def test_short_name_without_search_registries_is_refused(make_state, tmp_path: Path) -> None:
    state = make_state("builder")
    with pytest.raises(IsulaBuildError, match="registries.search in registries.toml is empty"):
        build(state, "FROM isb-test-nowhere:1\n", tmp_path, [])


@pytest.mark.parametrize("transport, media_type", [
    ("docker", "application/vnd.docker.distribution.manifest.v2+json"),
    ("oci", "application/vnd.oci.image.manifest.v1+json"),
])
def test_output_pushes_to_the_registry(make_state, plain_registry: Registry, busybox_tar: Path,
                                       tmp_path: Path, transport: str, media_type: str) -> None:
    state = make_state("builder", insecure=(plain_registry.host,))
    import_busybox(state, busybox_tar, "busybox:latest")
    dest = f"{plain_registry.host}/app:{transport}"
    lines: list[str] = []
    image_id = build(state, "FROM busybox\nRUN echo built > /b\n", tmp_path, lines,
                     output=f"{transport}://{dest}")
    # The commit's copy lines, then the push's.
    assert lines.count("Writing manifest to image destination") == 2
    manifest = skopeo_raw(dest)
    assert manifest["mediaType"] == media_type
    assert manifest["config"]["digest"] == f"sha256:{image_id}"
    assert len(manifest["layers"]) == 2
