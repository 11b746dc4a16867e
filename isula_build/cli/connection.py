"""How the client reaches isula-builder: the address, the start-up timeout, the health check.

Parsing (`parse_host`, `parse_duration`) is pure and cheap.  `connect` is the first place the
client imports grpc and the generated stubs, so `isula-build --help` and commands refused before
contacting the daemon never pay for those imports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from isula_build.errors import DaemonPermissionDenied, DaemonUnreachable, FlagError
from isula_build.units import parse_go_duration

if TYPE_CHECKING:
    import grpc

    from isula_build.api.control_pb2_grpc import ControlStub

DEFAULT_HOST = "unix:///var/run/isula_build.sock"
HOST_ENV = "ISULABUILD_HOST"
UNIX_PREFIX = "unix://"

DEFAULT_TIMEOUT = 20.0
MIN_TIMEOUT = 0.1
MAX_TIMEOUT = 120.0


def resolve_address(flag: str | None) -> str:
    """The daemon address: --host, else $ISULABUILD_HOST, else the default socket."""
    return flag or os.environ.get(HOST_ENV) or DEFAULT_HOST


def parse_host(address: str) -> str:
    """Returns the socket path of a `unix:///path` address."""
    if not address.startswith(UNIX_PREFIX):
        raise FlagError(
            f"invalid host {address!r}: only unix sockets are supported, e.g. {DEFAULT_HOST}")
    path = address[len(UNIX_PREFIX):]
    if not path.startswith("/"):
        raise FlagError(f"invalid host {address!r}: the socket path must be absolute")
    return path


def parse_duration(text: str) -> float:
    """Parses a Go-style duration ("500ms", "20s", "1m30s", "1.5s") into seconds, so that values
    written for the original client keep working."""
    try:
        return parse_go_duration(text.strip()) / 1e9
    except ValueError:
        raise FlagError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 500ms, 20s or 1m") from None


def parse_timeout(text: str | None) -> float:
    """The --timeout value in seconds: default 20s, accepted range 100ms to 120s."""
    if text is None or text == "":
        return DEFAULT_TIMEOUT
    seconds = parse_duration(text)
    if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
        raise FlagError(
            f"invalid timeout value: {text}, supported range [100ms, 120s]")
    return seconds


@dataclass(frozen=True)
class Endpoint:
    """Where and how patiently to reach the daemon, from the global flags."""

    address: str      # as the user gave it (or the default), for messages
    socket_path: str
    timeout: float    # seconds to wait for the daemon to answer the health check

    @classmethod
    def from_flags(cls, host: str | None, timeout: str | None) -> Endpoint:
        address = resolve_address(host)
        return cls(address=address, socket_path=parse_host(address),
                   timeout=parse_timeout(timeout))


@dataclass
class Connection:
    """An open channel to the daemon that passed the health check."""

    channel: grpc.Channel
    stub: ControlStub

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# Messages may be large (manifest inspect, long build logs); the daemon enforces its own limits.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # A unix socket needs no DNS or proxy; the proxy variables a build passes on must not
    # send our own connection elsewhere.
    ("grpc.enable_http_proxy", 0),
]


def connect(endpoint: Endpoint) -> Connection:
    """Opens the channel and calls HealthCheck within the timeout, expecting SERVING."""
    import grpc
    from google.protobuf import empty_pb2

    from isula_build.api import control_pb2
    from isula_build.api.control_pb2_grpc import ControlStub

    gid = _socket_gid(endpoint)
    channel = grpc.insecure_channel(f"unix://{endpoint.socket_path}", options=_CHANNEL_OPTIONS)
    stub = ControlStub(channel)
    # Fail fast like the original: a socket nobody listens on is reported at once, while a
    # daemon that is busy starting up gets the whole timeout to answer.
    try:
        reply = stub.HealthCheck(empty_pb2.Empty(), timeout=endpoint.timeout)
    except grpc.RpcError:
        channel.close()
        raise _connect_failure(endpoint, gid) from None
    if reply.status != control_pb2.HealthCheckResponse.SERVING:
        channel.close()
        raise DaemonUnreachable(endpoint.address)
    return Connection(channel=channel, stub=stub)


def _socket_gid(endpoint: Endpoint) -> int:
    """The group of the daemon's socket; DaemonUnreachable when there is no socket."""
    import stat

    try:
        st = os.stat(endpoint.socket_path)
    except PermissionError:
        # A directory on the way that the user may not search.
        raise DaemonPermissionDenied(endpoint.address, None) from None
    except OSError:
        raise DaemonUnreachable(endpoint.address) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise DaemonUnreachable(endpoint.address)
    return st.st_gid


def _connect_failure(endpoint: Endpoint,
                     gid: int) -> DaemonUnreachable | DaemonPermissionDenied:
    """Why the health check failed, in the words a user acts on. gRPC reports every connect
    failure as UNAVAILABLE, so a plain connect tells "not allowed" (EACCES: the user is not in
    the socket's group) from "nobody listening"; it is done only after a failure."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)  # a full backlog would block a connect without it
        try:
            probe.connect(endpoint.socket_path)
        except PermissionError:
            return DaemonPermissionDenied(endpoint.address, _group_name(gid))
        except OSError:
            pass
    return DaemonUnreachable(endpoint.address)


def _group_name(gid: int) -> str:
    import grp

    try:
        return f'"{grp.getgrgid(gid).gr_name}"'
    except KeyError:
        return f"ID {gid}"
