"""manifest create / annotate / inspect / push against real registries; docker and skopeo read
the pushed list back, and pull resolves it to this machine's platform. Lists live in the image
store as list images (listed, removed and looked up as images)."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from isula_build.api import control_pb2 as pb
from isula_build.daemon.handlers.images import list_images
from isula_build.daemon.handlers.manifest import (
    manifest_annotate, manifest_create, manifest_inspect, manifest_push,
)
from isula_build.daemon.logstream import Job
from isula_build.distribution.pull import pull_image
from isula_build.distribution.push import push_image
from isula_build.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from isula_build.image.config import host_architecture
from tests.registry.conftest import import_busybox


def _lines(job: Job) -> list[str]:
    return [item for item in list(job._lines.queue) if isinstance(item, str)]


def test_manifest_list_lifecycle(make_state, registry_factory, busybox_tar, big_layer_tar,
                                 docker) -> None:
    src = registry_factory("src")
    dst = registry_factory("dst")
    state = make_state(insecure=(src.host, dst.host))
    bb_id = import_busybox(state, busybox_tar, f"{src.host}/bb:1")
    import_busybox(state, big_layer_tar, f"{src.host}/big:1")
    for name in (f"{src.host}/bb:1", f"{src.host}/big:1"):
        push_image(state.store, state.registry, name, name, "docker", lambda line: None)

    created = manifest_create(state, pb.ManifestCreateRequest(manifestList="multi",
                                                              manifests=[f"{src.host}/bb:1"]))
    assert len(created.imageID) == 64
    # The list is an image of the store: listed by `images`, with its document as its blob.
    record = state.store.lookup("multi")
    assert (record.id, record.names, record.is_manifest_list) == \
        (created.imageID, ("multi:latest",), True)
    rows = list_images(state, pb.ListRequest()).images
    assert ("multi", "latest", created.imageID) in [(r.repository, r.tag, r.id) for r in rows]
    manifest_annotate(state, pb.ManifestAnnotateRequest(
        manifestList="multi", manifest=f"{src.host}/big:1", arch="arm64", os="linux",
        osFeatures=["sse4"], variant="v8"))
    raw_listed = manifest_inspect(state, pb.ManifestInspectRequest(manifestList="multi:latest")).data
    listed = json.loads(raw_listed)
    assert listed["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    platforms = [m["platform"] for m in listed["manifests"]]
    assert platforms == [{"architecture": host_architecture(), "os": "linux"},
                         {"architecture": "arm64", "os": "linux", "os.features": ["sse4"],
                          "variant": "v8"}]
    # The ID is the sha256 of the stored document, so annotate gave the list a new one; the
    # name moved to it and the old list is gone.
    annotated = state.store.lookup("multi")
    assert annotated.id == hashlib.sha256(raw_listed).hexdigest() != created.imageID
    assert annotated.created == record.created
    assert json.loads(manifest_inspect(state, pb.ManifestInspectRequest(
        manifestList=annotated.id[:8])).data) == listed
    with pytest.raises(NotFound):
        manifest_inspect(state, pb.ManifestInspectRequest(manifestList=created.imageID))

    job = Job()
    manifest_push(state, pb.ManifestPushRequest(manifestList="multi",
                                                dest=f"{dst.host}/multi:1"), job)
    lines = _lines(job)
    assert lines[0] == "Getting image list signatures"
    assert lines[-2:] == ["Writing manifest list to image destination", "Storing list signatures"]

    raw = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                                     f"docker://{dst.host}/multi:1"], check=True,
                                    capture_output=True, text=True).stdout)
    assert raw["manifests"] == listed["manifests"]
    seen = json.loads(subprocess.run([docker, "manifest", "inspect", "--insecure",
                                      f"{dst.host}/multi:1"], check=True, capture_output=True,
                                     text=True).stdout)
    assert [m["digest"] for m in seen["manifests"]] == [m["digest"] for m in raw["manifests"]]
    # skopeo copies the list with all its images, so every blob reached the destination.
    subprocess.run(["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{dst.host}/multi:1", f"docker://{src.host}/copied:1"],
                   check=True, capture_output=True)

    puller = make_state("puller", insecure=(dst.host,))
    assert pull_image(puller.store, puller.registry, f"{dst.host}/multi:1",
                      lambda line: None).id == bb_id

    # rm removes a list as any image, blob included.
    assert state.store.remove("multi") == ["Untagged image: multi:latest",
                                           f"Deleted image: {annotated.id}"]
    assert not state.store.layout.blob(annotated.id).exists()
    with pytest.raises(NotFound):
        manifest_inspect(state, pb.ManifestInspectRequest(manifestList="multi"))


def test_manifest_bad_input(make_state, plain_registry, busybox_tar) -> None:
    host = plain_registry.host
    off = make_state("off", experimental=False)
    with pytest.raises(FailedPrecondition, match="experimental"):
        manifest_create(off, pb.ManifestCreateRequest(manifestList="x", manifests=[]))
    state = make_state(insecure=(host,))
    with pytest.raises(NotFound):
        manifest_create(state, pb.ManifestCreateRequest(manifestList="x",
                                                        manifests=[f"{host}/none:1"]))
    with pytest.raises(NotFound):
        manifest_inspect(state, pb.ManifestInspectRequest(manifestList="x"))
    manifest_create(state, pb.ManifestCreateRequest(manifestList="x", manifests=[]))
    with pytest.raises(AlreadyExists):
        manifest_create(state, pb.ManifestCreateRequest(manifestList="x", manifests=[]))
    with pytest.raises(InvalidArgument, match="empty"):
        manifest_push(state, pb.ManifestPushRequest(manifestList="x", dest=f"{host}/x:1"), Job())
    # A list cannot be an entry of a list.
    import_busybox(state, busybox_tar, f"{host}/bb:1")
    push_image(state.store, state.registry, f"{host}/bb:1", f"{host}/bb:1", "docker",
               lambda line: None)
    # An image's name is taken for lists too; an image is not a list; a list is not an image.
    with pytest.raises(AlreadyExists, match="already used by image"):
        manifest_create(state, pb.ManifestCreateRequest(manifestList=f"{host}/bb:1",
                                                        manifests=[]))
    with pytest.raises(InvalidArgument, match="is not a manifest list"):
        manifest_inspect(state, pb.ManifestInspectRequest(manifestList=f"{host}/bb:1"))
    with pytest.raises(InvalidArgument, match="x:latest is a manifest list"):
        push_image(state.store, state.registry, "x", f"{host}/x:2", "docker", lambda line: None)
    manifest_create(state, pb.ManifestCreateRequest(manifestList="y", manifests=[f"{host}/bb:1"]))
    manifest_push(state, pb.ManifestPushRequest(manifestList="y", dest=f"{host}/y:1"), Job())
    with pytest.raises(InvalidArgument, match="is a manifest list"):
        manifest_create(state, pb.ManifestCreateRequest(manifestList="z",
                                                        manifests=[f"{host}/y:1"]))
