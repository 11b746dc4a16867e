"""Login: the password arrives encrypted with the daemon's public key (SPEC §6); the
credentials are checked against the registry and only then saved to auth.json (0600).
Neither the password nor the credentials are ever logged."""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.state import DaemonState
from isula_build.errors import InvalidArgument
from isula_build.registry.credentials import AuthFile, Credentials
from isula_build.registry.connect import login_check

_log = logging.getLogger(__name__)
LOGIN_SUCCEEDED = "Login Succeeded"
MAX_FIELD = 255


def login(state: DaemonState, request: pb.LoginRequest) -> pb.LoginResponse:
    server = _server(request.server)
    if not request.username or len(request.username) > MAX_FIELD:
        raise InvalidArgument("login: the username is empty or too long")
    if not request.password:
        raise InvalidArgument("login: the password is empty")
    password = state.keys.decrypt_hex(request.password)
    if not password:
        raise InvalidArgument("login: the password is empty")
    credentials = Credentials(request.username, password)
    login_check(state.registry, server, credentials)
    AuthFile(state.registry.config_dir).set(server, credentials)
    _log.info("login to %s as %s succeeded", server, request.username)
    return pb.LoginResponse(content=LOGIN_SUCCEEDED)


def _server(server: str) -> str:
    """The registry host[:port]: what the client sends (it strips schemes and paths)."""
    if not server or len(server) > MAX_FIELD or "/" in server or any(c.isspace() for c in server):
        raise InvalidArgument(f'invalid registry address "{server}"')
    return server
