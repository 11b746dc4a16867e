"""Import (`ctr-img import FILE [REPOSITORY[:TAG]]`): a root filesystem tarball becomes a
one-layer image. The last line is the original's: `Import success with image id: "<64 hex>"`."""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.handlers.paths import existing_file
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.image.reference import normalize_name
from isula_build.transports.copy import copy_image
from isula_build.transports.rootfs_tarball import ImportSource
from isula_build.transports.store import StoreDestination

_log = logging.getLogger(__name__)


def import_image(state: DaemonState, request: pb.ImportRequest, job: Job) -> None:
    names = [normalize_name(request.reference)] if request.reference else []
    path = existing_file(request.source, "tarball")
    with ImportSource(path) as src, StoreDestination(state.store, names) as dst:
        image_id = copy_image(src, dst, job.log, job.progress)
    _log.info("import %s: image %s from %s", request.importID, image_id, path)
    job.log(f'Import success with image id: "{image_id}"')
