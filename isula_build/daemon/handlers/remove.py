"""Remove (`ctr-img rm`): by name, ID or ID prefix; `-a` every image; `-p` untagged images.

As in the original, a failure for one image is reported as a line and the rest are still
removed; the request then ends with an error so the client exits non-zero.
"""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.errors import Cancelled, InvalidArgument, IsulaBuildError, RemoveFailed

_log = logging.getLogger(__name__)


def remove(state: DaemonState, request: pb.RemoveRequest, job: Job) -> None:
    refs = list(request.imageID)
    if request.all and request.prune:
        raise InvalidArgument("--prune is not allowed when using --all")
    if refs and (request.all or request.prune):
        flag = "--all" if request.all else "--prune"
        raise InvalidArgument(f"image names are not allowed when using {flag}")
    if request.all:
        _send(job, state.store.remove_all())
        return
    if request.prune:
        _send(job, state.store.prune())
        return
    if not refs:
        raise InvalidArgument("no image given: name the images to remove, or use --all or --prune")
    failures: list[IsulaBuildError] = []
    for ref in refs:
        try:
            lines = state.store.remove(ref)
        except Cancelled:
            raise
        except IsulaBuildError as exc:
            failures.append(exc)
            _log.error("remove image %r failed: %s", ref, exc)
            job.log(f'Remove image "{ref}" failed: {exc}')
            continue
        _send(job, lines)
    if failures:
        raise RemoveFailed(failures)


def _send(job: Job, lines: list[str]) -> None:
    for line in lines:
        job.log(line)
