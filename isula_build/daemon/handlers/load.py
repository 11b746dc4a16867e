"""Load (`ctr-img load -i FILE`): every image of a docker-archive or oci-archive (told apart by
content) is copied into the store with the names it carries; `Loaded image as <64 hex>` each."""

from __future__ import annotations

import logging
from contextlib import ExitStack

from isula_build.api import control_pb2 as pb
from isula_build.daemon.handlers.paths import existing_file
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.image.reference import normalize_name
from isula_build.transports.archive import open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.store import StoreDestination

_log = logging.getLogger(__name__)


def load(state: DaemonState, request: pb.LoadRequest, job: Job) -> None:
    path = existing_file(request.path, "tarball")
    images = open_archive(path)
    with ExitStack() as sources:
        for src, _ in images:
            sources.enter_context(src)
        # Every name is checked before anything is stored, so a bad one changes nothing.
        planned = [(src, [normalize_name(name) for name in names]) for src, names in images]
        for src, names in planned:
            with StoreDestination(state.store, names) as dst:
                image_id = copy_image(src, dst, job.log, job.progress)
            _log.info("load %s: image %s from %s", request.loadID, image_id, path)
            job.log(f"Loaded image as {image_id}")
