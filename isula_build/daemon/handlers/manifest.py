"""manifest create / annotate / inspect / push (experimental on both sides).

Lists are made from remote images (each one's manifest and platform read from its registry),
kept by registry/lists.py, and pushed as a Docker manifest list (or an OCI index when every
entry is an OCI manifest) after the images they name are copied to the destination repository.
"""

from __future__ import annotations

import json
import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.experimental import require_experimental
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.errors import InvalidArgument
from isula_build.registry.lists import ManifestListStore
from isula_build.registry.manifests import annotate, push_list, remote_entry

_log = logging.getLogger(__name__)


def _lists(state: DaemonState) -> ManifestListStore:
    require_experimental(state.options.experimental, "manifest")
    return ManifestListStore(state.options.data_root)


def manifest_create(state: DaemonState,
                    request: pb.ManifestCreateRequest) -> pb.ManifestCreateResponse:
    lists = _lists(state)
    if not request.manifestList:
        raise InvalidArgument("manifest create: no manifest list name given")
    manifest_list = lists.create(request.manifestList)
    # Every image is read before the list is saved, so a bad one leaves nothing behind.
    for name in request.manifests:
        entry, source = remote_entry(state.options, name)
        manifest_list.put(entry, source)
    lists.save(manifest_list)
    _log.info("manifest list %s created with %d images", manifest_list.names[0],
              len(manifest_list.manifests))
    return pb.ManifestCreateResponse(imageID=manifest_list.id)


def manifest_annotate(state: DaemonState, request: pb.ManifestAnnotateRequest) -> None:
    lists = _lists(state)
    manifest_list = lists.lookup(request.manifestList)
    entry, source = remote_entry(state.options, request.manifest)
    existing = next((m for m in manifest_list.manifests if m["digest"] == entry["digest"]), None)
    if existing is not None:
        entry["platform"] = existing.get("platform", entry["platform"])
    annotate(entry, request.arch, request.os, list(request.osFeatures), request.variant)
    manifest_list.put(entry, source)
    lists.save(manifest_list)


def manifest_inspect(state: DaemonState,
                     request: pb.ManifestInspectRequest) -> pb.ManifestInspectResponse:
    manifest_list = _lists(state).lookup(request.manifestList)
    return pb.ManifestInspectResponse(data=json.dumps(manifest_list.document()).encode())


def manifest_push(state: DaemonState, request: pb.ManifestPushRequest, job: Job) -> None:
    manifest_list = _lists(state).lookup(request.manifestList)
    if not request.dest:
        raise InvalidArgument("manifest push: no destination given")
    digest = push_list(state.options, manifest_list, request.dest, job.log)
    _log.info("manifest list %s pushed to %s (%s)", manifest_list.id, request.dest, digest)
