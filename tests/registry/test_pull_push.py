"""Pull and push against a real plain-HTTP registry listed as insecure, through the operations
the handlers and the build engine use; round trips with skopeo."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from isula_build.distribution.pull import pull_image
from isula_build.distribution.push import push_image
from isula_build.errors import FailedPrecondition, InvalidArgument, NotFound, RegistryUnavailable
from isula_build.store.fsutil import DIRECT_BLOCK, WRITEBACK_STEP
from tests.registry.conftest import import_busybox
from tests.store.pagecache import resident_bytes

COPY_LINES = ["Getting image source signatures", "Writing manifest to image destination",
              "Storing signatures"]


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True).stdout


def test_push_then_pull_roundtrip(make_state, plain_registry, busybox_tar: Path) -> None:
    host = plain_registry.host
    pusher = make_state("pusher", insecure=(host,))
    image_id = import_busybox(pusher, busybox_tar, f"{host}/lib/busybox:1")
    lines: list[str] = []
    digest = push_image(pusher.store, pusher.registry, f"{host}/lib/busybox:1",
                        f"{host}/lib/busybox:1", "docker", lines.append)
    assert lines[0] == COPY_LINES[0] and lines[-2:] == COPY_LINES[1:]
    assert f"Copying config sha256:{image_id}" in lines

    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw",
                            f"docker://{host}/lib/busybox:1"))
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert raw["layers"][0]["mediaType"].endswith("tar.gzip")
    assert raw["config"]["digest"] == f"sha256:{image_id}"
    assert digest.startswith("sha256:")

    puller = make_state("puller", insecure=(host,))
    lines = []
    record = pull_image(puller.store, puller.registry, f"{host}/lib/busybox:1", lines.append)
    assert record.id == image_id
    assert record.names == (f"{host}/lib/busybox:1",)
    assert lines[0] == COPY_LINES[0] and any(l.startswith("Copying blob sha256:") for l in lines)

    # Layers already in the store are not fetched again: remove the blob from the registry's
    # disk and pull under another tag; only the manifest and config are read.
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
           f"docker://{host}/lib/busybox:1", f"docker://{host}/lib/busybox:2")
    layer_blob = plain_registry.blob_path(raw["layers"][0]["digest"])
    layer_blob.unlink()
    again = pull_image(puller.store, puller.registry, f"{host}/lib/busybox:2", lambda line: None)
    assert again.id == image_id


def test_second_push_does_not_recompress(make_state, plain_registry, big_layer_tar) -> None:
    host = plain_registry.host
    state = make_state(insecure=(host,))
    import_busybox(state, big_layer_tar, f"{host}/big:1")
    push_image(state.store, state.registry, f"{host}/big:1", f"{host}/big:1", "docker",
               lambda line: None)
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/big:1"))
    blob = plain_registry.blob_path(raw["layers"][0]["digest"])
    mtime = blob.stat().st_mtime_ns
    # A second push to another repository mounts the blob; to the same one it is skipped.
    push_image(state.store, state.registry, f"{host}/big:1", f"{host}/other/big:1", "oci",
               lambda line: None)
    push_image(state.store, state.registry, f"{host}/big:1", f"{host}/big:1", "docker",
               lambda line: None)
    assert blob.stat().st_mtime_ns == mtime
    oci = json.loads(skopeo("inspect", "--tls-verify=false", "--raw",
                            f"docker://{host}/other/big:1"))
    assert oci["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert oci["layers"][0]["digest"] == raw["layers"][0]["digest"]
    assert oci["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"


def test_a_pulled_layer_leaves_the_page_cache_an_imported_one_stays(
        make_state, plain_registry, tmp_path: Path) -> None:
    layer = tmp_path / "big.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = 5 * WRITEBACK_STEP
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    host = plain_registry.host
    pusher, puller = make_state("pusher", insecure=(host,)), make_state("puller", insecure=(host,))
    import_busybox(pusher, layer, f"{host}/big:1")
    imported = pusher.store.lookup(f"{host}/big:1").layers[0].diff_id
    # A local copy keeps its pages (a save or push often reads it next)...
    assert resident_bytes(pusher.store.layer_blob_path(imported)) > 4 * WRITEBACK_STEP
    push_image(pusher.store, pusher.registry, f"{host}/big:1", f"{host}/big:1", "docker",
               lambda line: None)
    pulled = pull_image(puller.store, puller.registry, f"{host}/big:1", lambda line: None)
    # ...a pulled one is written past the page cache, all but its last partial block.
    blob = puller.store.layer_blob_path(pulled.layers[0].diff_id)
    assert resident_bytes(blob) < DIRECT_BLOCK
    assert blob.read_bytes() == pusher.store.layer_blob_path(imported).read_bytes()


def test_skopeo_pushed_image_is_pulled(make_state, plain_registry, busybox_tar, tmp_path) -> None:
    host = plain_registry.host
    state = make_state(insecure=(host,))
    # skopeo pushes an OCI image it reads from an archive of ours.
    from isula_build.transports.oci_archive import OciArchiveWriter
    from isula_build.transports.copy import copy_image
    from isula_build.transports.store import StoreSource

    image_id = import_busybox(state, busybox_tar, "busybox:latest")
    archive = tmp_path / "bb.oci.tar"
    with OciArchiveWriter(archive) as writer, \
            StoreSource(state.store, state.store.lookup(image_id)) as src, \
            writer.image(["busybox:latest"]) as dst:
        copy_image(src, dst, lambda line: None)
    skopeo("copy", "--dest-tls-verify=false", f"oci-archive:{archive}:busybox:latest",
           f"docker://{host}/skopeo/bb:oci")
    puller = make_state("puller", insecure=(host,))
    record = pull_image(puller.store, puller.registry, f"{host}/skopeo/bb:oci", lambda line: None)
    assert record.id == image_id


def test_short_names_use_search_in_order(make_state, registry_factory, busybox_tar) -> None:
    empty = registry_factory("empty")
    full = registry_factory("full")
    state = make_state(insecure=(empty.host, full.host))
    image_id = import_busybox(state, busybox_tar, f"{full.host}/busybox:latest")
    push_image(state.store, state.registry, f"{full.host}/busybox:latest",
               f"{full.host}/busybox:latest", "docker", lambda line: None)
    puller = make_state("puller", insecure=(empty.host, full.host),
                        search=(empty.host, full.host))
    record = pull_image(puller.store, puller.registry, "busybox", lambda line: None)
    assert record.id == image_id and record.names == (f"{full.host}/busybox:latest",)


def test_unknown_repository_and_tag(make_state, plain_registry, busybox_tar) -> None:
    host = plain_registry.host
    state = make_state(insecure=(host,))
    with pytest.raises(NotFound):
        pull_image(state.store, state.registry, f"{host}/nothing/here:1", lambda line: None)
    import_busybox(state, busybox_tar, f"{host}/bb:1")
    push_image(state.store, state.registry, f"{host}/bb:1", f"{host}/bb:1", "docker",
               lambda line: None)
    with pytest.raises(NotFound):
        pull_image(state.store, state.registry, f"{host}/bb:2", lambda line: None)


def test_blocked_registry_is_refused(make_state, plain_registry, busybox_tar) -> None:
    host = plain_registry.host
    state = make_state(insecure=(host,), block=(host,))
    with pytest.raises(FailedPrecondition, match="blocked"):
        pull_image(state.store, state.registry, f"{host}/bb:1", lambda line: None)
    import_busybox(state, busybox_tar, f"{host}/bb:1")
    with pytest.raises(FailedPrecondition, match="blocked"):
        push_image(state.store, state.registry, f"{host}/bb:1", f"{host}/bb:1", "docker",
                   lambda line: None)


def test_registry_down(make_state) -> None:
    from tests.registry.servers import free_port

    host = f"127.0.0.1:{free_port()}"
    state = make_state(insecure=(host,))
    with pytest.raises(RegistryUnavailable, match="cannot reach"):
        pull_image(state.store, state.registry, f"{host}/bb:1", lambda line: None)


def test_plain_http_needs_insecure(make_state, plain_registry) -> None:
    state = make_state()
    with pytest.raises((RegistryUnavailable, FailedPrecondition)):
        pull_image(state.store, state.registry, f"{plain_registry.host}/bb:1", lambda line: None)


def test_corrupt_blob_fails_and_stores_nothing(make_state, plain_registry, busybox_tar) -> None:
    host = plain_registry.host
    pusher = make_state("pusher", insecure=(host,))
    import_busybox(pusher, busybox_tar, f"{host}/bb:1")
    push_image(pusher.store, pusher.registry, f"{host}/bb:1", f"{host}/bb:1", "docker",
               lambda line: None)
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{host}/bb:1"))
    blob = plain_registry.blob_path(raw["layers"][0]["digest"])
    import gzip
    data = bytearray(gzip.decompress(blob.read_bytes()))
    data[len(data) // 2] ^= 0xFF  # inside the busybox binary, so the tar still parses
    blob.write_bytes(gzip.compress(bytes(data)))
    puller = make_state("puller", insecure=(host,))
    with pytest.raises(InvalidArgument, match="digest"):
        pull_image(puller.store, puller.registry, f"{host}/bb:1", lambda line: None)
    assert puller.store.list_images() == []
    storage = puller.options.data_root / "storage"
    assert list((storage / "blobs" / "sha256").iterdir()) == []
    assert list((storage / "tmp").iterdir()) == []


def test_pull_and_push_handlers(make_state, plain_registry, busybox_tar) -> None:
    from isula_build.api import control_pb2 as pb
    from isula_build.daemon.handlers.pull import pull
    from isula_build.daemon.handlers.push import push
    from isula_build.daemon.logstream import Job

    host = plain_registry.host
    state = make_state(insecure=(host,), experimental=False)
    image_id = import_busybox(state, busybox_tar, f"{host}/h/bb:1")
    with pytest.raises(FailedPrecondition, match="experimental"):
        push(state, pb.PushRequest(pushID="a", imageName=f"{host}/h/bb:1", format="oci"), Job())
    with pytest.raises(InvalidArgument, match="does not name a registry"):
        push(state, pb.PushRequest(pushID="a", imageName="busybox:1"), Job())
    job = Job()
    push(state, pb.PushRequest(pushID="a", imageName=f"{host}/h/bb:1"), job)
    lines = [line for line in list(job._lines.queue) if isinstance(line, str)]
    assert lines[0] == COPY_LINES[0] and lines[-2:] == COPY_LINES[1:]

    puller = make_state("puller", insecure=(host,))
    with pytest.raises(InvalidArgument):
        pull(puller, pb.PullRequest(pullID="b", imageName=""), Job())
    job = Job()
    pull(puller, pb.PullRequest(pullID="b", imageName=f"{host}/h/bb:1"), job)
    assert puller.store.lookup(f"{host}/h/bb:1").id == image_id
