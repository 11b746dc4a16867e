"""Pull (`ctr-img pull REPOSITORY[:TAG]`): the image is copied from its registry into the store.

The copy lines are streamed; the client prints `Pull success with image: …` itself.
"""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.distribution.pull import pull_image
from isula_build.errors import InvalidArgument

_log = logging.getLogger(__name__)


def pull(state: DaemonState, request: pb.PullRequest, job: Job) -> None:
    if not request.imageName:
        raise InvalidArgument("no image name given to pull")
    image = pull_image(state.store, state.registry, request.imageName, job.log,
                       job.progress)
    _log.info("pull %s: %s is image %s", request.pullID, request.imageName, image.id)
