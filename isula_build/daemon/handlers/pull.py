"""Pull (`ctr-img pull [--platform P] REPOSITORY[:TAG]`): the image (of a manifest list, the entry
of this machine's platform or of P) is copied from its registry into the store.

The copy lines are streamed; the client prints `Pull success with image: …` itself.
"""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.distribution.pull import pull_image
from isula_build.errors import InvalidArgument
from isula_build.image.platform import Platform

_log = logging.getLogger(__name__)


def pull(state: DaemonState, request: pb.PullRequest, job: Job) -> None:
    if not request.imageName:
        raise InvalidArgument("no image name given to pull")
    # With --platform the entry of that platform, named as any pull: the name now means it.
    platform = Platform.parse(request.platform) if request.platform else None
    image = pull_image(state.store, state.registry, request.imageName, job.log,
                       job.progress, platform)
    _log.info("pull %s: %s is image %s", request.pullID, request.imageName, image.id)
