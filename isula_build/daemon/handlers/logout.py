"""Logout: removes the credentials of one registry, or of all with -a, from auth.json.

Answers as the original does: `Removed authentication for SERVER`, `Removed authentications`
(all), and NOT_FOUND `Not logged in registry SERVER` when there was nothing to remove."""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.handlers.login import _server
from isula_build.daemon.state import DaemonState
from isula_build.errors import NotFound
from isula_build.registry.credentials import AuthFile

_log = logging.getLogger(__name__)


def logout(state: DaemonState, request: pb.LogoutRequest) -> pb.LogoutResponse:
    auth = AuthFile(state.registry.config_dir)
    if request.all:
        auth.remove_all()
        _log.info("logged out of all registries")
        return pb.LogoutResponse(result="Removed authentications")
    server = _server(request.server)
    if not auth.remove(server):
        raise NotFound(f"Not logged in registry {server}")
    _log.info("logged out of %s", server)
    return pb.LogoutResponse(result=f"Removed authentication for {server}")
