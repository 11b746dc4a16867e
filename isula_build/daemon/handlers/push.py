"""Push (`ctr-img push REPOSITORY[:TAG]`): the stored image of that name goes to the registry
the name starts with, docker format by default, OCI with --format oci (experimental); layers
gzip-compressed, or zstd with `--compression zstd[:LEVEL]` (PushRequest.compression, ours; OCI
format only). A manifest list a build made goes with every image it names.

The copy lines are streamed; the client prints `Push success with image: …` itself.
"""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.experimental import check_format
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.distribution.lists import load_list
from isula_build.distribution.manifests import push_list
from isula_build.distribution.push import push_image
from isula_build.errors import InvalidArgument
from isula_build.image.compressionspec import parse_compression, require_oci_for_zstd
from isula_build.image.reference import normalize_name
from isula_build.registry.names import parse_remote

_log = logging.getLogger(__name__)


def push(state: DaemonState, request: pb.PushRequest, job: Job) -> None:
    image_format = check_format(state.options.experimental, request.format)
    compression = parse_compression(request.compression)
    require_oci_for_zstd(compression, image_format, "the push")
    if not request.imageName:
        raise InvalidArgument("no image name given to push")
    name = normalize_name(request.imageName)
    parse_remote(name)  # a name without a registry is refused before the store is asked
    if state.store.lookup(name).is_manifest_list:
        # A multi-platform build's list: its images, then the list (manifest push's way).
        digest = push_list(state.store, state.registry, load_list(state.store, name), name,
                           job.log)
    else:
        digest = push_image(state.store, state.registry, name, name, image_format, job.log,
                            job.progress, compression)
    _log.info("push %s: %s as %s", request.pushID, name, digest)
