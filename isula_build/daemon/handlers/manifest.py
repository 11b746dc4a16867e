"""manifest create / annotate / inspect / push (experimental on both sides).

Lists are made from remote images (each one's manifest and platform read from its registry),
kept in the image store as list images (distribution/lists.py: listed by `images`, removed by `rm`,
looked up by name or ID as any image), and pushed as a Docker manifest list (or an OCI index
when every entry is an OCI manifest) after the images they name are copied to the destination
repository.
"""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.experimental import require_experimental
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.distribution.lists import create_list, load_list, save_list
from isula_build.distribution.manifests import push_list, remote_entry
from isula_build.errors import InvalidArgument
from isula_build.image.manifestlist import ManifestList, annotate

_log = logging.getLogger(__name__)


def manifest_create(state: DaemonState,
                    request: pb.ManifestCreateRequest) -> pb.ManifestCreateResponse:
    require_experimental(state.options.experimental, "manifest")
    if not request.manifestList:
        raise InvalidArgument("manifest create: no manifest list name given")
    manifest_list = ManifestList()
    # Every image is read before the list is stored, so a bad one leaves nothing behind.
    for name in request.manifests:
        entry, source = remote_entry(state.registry, name)
        manifest_list.put(entry, source)
    record = create_list(state.store, request.manifestList, manifest_list)
    _log.info("manifest list %s created with %d images as %s", request.manifestList,
              len(manifest_list.manifests), record.id)
    return pb.ManifestCreateResponse(imageID=record.id)


def manifest_annotate(state: DaemonState, request: pb.ManifestAnnotateRequest) -> None:
    require_experimental(state.options.experimental, "manifest")
    manifest_list = load_list(state.store, request.manifestList)
    entry, source = remote_entry(state.registry, request.manifest)
    existing = next((m for m in manifest_list.manifests if m["digest"] == entry["digest"]), None)
    if existing is not None:
        entry["platform"] = existing.get("platform", entry["platform"])
    annotate(entry, request.arch, request.os, list(request.osFeatures), request.variant)
    manifest_list.put(entry, source)
    record = save_list(state.store, request.manifestList, manifest_list)
    _log.info("manifest list %s annotated: now %s", request.manifestList, record.id)


def manifest_inspect(state: DaemonState,
                     request: pb.ManifestInspectRequest) -> pb.ManifestInspectResponse:
    require_experimental(state.options.experimental, "manifest")
    # The stored bytes themselves, as the original answers (the client indents them).
    return pb.ManifestInspectResponse(data=state.store.manifest_list(request.manifestList).document)


def manifest_push(state: DaemonState, request: pb.ManifestPushRequest, job: Job) -> None:
    require_experimental(state.options.experimental, "manifest")
    manifest_list = load_list(state.store, request.manifestList)
    if not request.dest:
        raise InvalidArgument("manifest push: no destination given")
    digest = push_list(state.store, state.registry, manifest_list, request.dest, job.log)
    _log.info("manifest list %s pushed to %s (%s)", manifest_list.id, request.dest, digest)
