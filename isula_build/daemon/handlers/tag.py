"""Tag: adds a name to an image; it never removes another name (SPEC §9)."""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.state import DaemonState
from isula_build.image.reference import normalize_name

_log = logging.getLogger(__name__)


def tag(state: DaemonState, request: pb.TagRequest) -> None:
    name = normalize_name(request.tag)
    image = state.store.tag(request.image, name)
    _log.info("tagged image %s as %s", image.id, name)
