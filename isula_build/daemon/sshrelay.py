"""`build --ssh`: the client's ssh agents relayed to the build through the SSHForward stream.

A Build whose request names agents (BuildRequest.ssh) opens an AgentRelay under its build ID;
the client's SSHForward stream, which it opens beside the Build (either may come first), finds
it by that ID and must present the request's token. Each connection a RUN makes to its agent
socket (builder/agentsocket.py) becomes a numbered channel of the stream: an open frame naming
the agent, then data frames both ways, then close frames (SSHFrame in control.proto). The daemon
never connects to a path of the client's: the client holds its agents and relays the bytes.

The relay ends with the build (its stream is then answered) or with the stream (every channel
is shut, and RUNs that want the agent later fail to reach it).
"""

from __future__ import annotations

import hmac
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator

import grpc

from isula_build.api import control_pb2 as pb
from isula_build.errors import AlreadyExists, Cancelled, FailedPrecondition, InvalidArgument, NotFound

_log = logging.getLogger(__name__)

# The client opens SSHForward and Build together; the one that comes first waits this long.
ATTACH_SECONDS = 30.0
_POLL_SECONDS = 0.5
_CHUNK = 64 << 10


class AgentRelay:
    """One build's forwarded agents (the builder's SSHAgents), fed by its SSHForward stream."""

    def __init__(self, build_id: str, ids: list[str], token: str,
                 cancel: threading.Event) -> None:
        self.build_id = build_id
        self.token = token
        self._ids = frozenset(ids)
        self._cancel = cancel
        self._cond = threading.Condition()
        self._attached = False
        self._ended = False            # the stream or the build ended: no new channel
        self._out: queue.Queue[pb.SSHFrame | None] = queue.Queue()
        self._conns: dict[int, socket.socket] = {}
        self._serial = 0

    @property
    def ids(self) -> frozenset[str]:
        return self._ids

    def relay(self, ssh_id: str, conn: socket.socket) -> None:
        number = self._open_channel(conn)
        self._out.put(pb.SSHFrame(conn=number, id=ssh_id))
        try:
            while True:
                data = conn.recv(_CHUNK)
                if not data:
                    break
                self._out.put(pb.SSHFrame(conn=number, data=data))
        except OSError:
            pass  # shut down: the RUN or the stream ended
        finally:
            with self._cond:
                self._conns.pop(number, None)
            self._out.put(pb.SSHFrame(conn=number, close=True))

    def _open_channel(self, conn: socket.socket) -> int:
        deadline = time.monotonic() + ATTACH_SECONDS
        with self._cond:
            while not (self._attached or self._ended):
                if self._cancel.is_set():
                    raise Cancelled("the build was cancelled")
                if time.monotonic() > deadline:
                    break
                self._cond.wait(_POLL_SECONDS)
            if not self._attached or self._ended:
                raise FailedPrecondition(f"build {self.build_id}: the client's ssh forwarding "
                                         "is not open (did the client end?)")
            self._serial += 1
            self._conns[self._serial] = conn
            return self._serial

    def serve(self, frames: Iterator[pb.SSHFrame],
              context: grpc.ServicerContext) -> Iterator[pb.SSHFrame]:
        """The stream's daemon side: channels out, client data in, until the build ends."""
        with self._cond:
            if self._attached:
                raise AlreadyExists(f"build {self.build_id} has its ssh forwarding already")
            self._attached = True
            self._cond.notify_all()
        reader = threading.Thread(target=self._read, args=(frames,), daemon=True,
                                  name=f"ssh-forward-{self.build_id}")
        reader.start()
        while True:
            try:
                frame = self._out.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not context.is_active():
                    self.end()
                    return
                continue
            if frame is None:
                return
            yield frame

    def _read(self, frames: Iterator[pb.SSHFrame]) -> None:
        try:
            for frame in frames:
                with self._cond:
                    conn = self._conns.get(frame.conn)
                if conn is None:
                    continue  # the RUN closed it meanwhile
                try:
                    if frame.data:
                        conn.sendall(frame.data)
                    if frame.close:
                        conn.shutdown(socket.SHUT_WR)   # the RUN reads the agent's EOF
                except OSError:
                    pass
        except grpc.RpcError:
            pass  # the client went away
        finally:
            _log.debug("ssh forwarding of build %s ended", self.build_id)
            self.end()

    def end(self) -> None:
        """No more channels; the open ones are shut and the stream is answered."""
        with self._cond:
            self._ended = True
            conns = list(self._conns.values())
            self._cond.notify_all()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._out.put(None)


class AgentRelays:
    """Build IDs → their relays, where the Build and the SSHForward stream meet."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._relays: dict[str, AgentRelay] = {}

    def open(self, build_id: str, spec: pb.SSHForwardSpec,
             cancel: threading.Event) -> AgentRelay | None:
        if not spec.ids:
            return None
        if not spec.token:
            raise InvalidArgument("the ssh forwarding of the build has no token")
        relay = AgentRelay(build_id, list(spec.ids), spec.token, cancel)
        with self._cond:
            if build_id in self._relays:
                raise AlreadyExists(f"a build with ID {build_id} forwards ssh agents already")
            self._relays[build_id] = relay
            self._cond.notify_all()
        return relay

    def close(self, relay: AgentRelay) -> None:
        relay.end()
        with self._cond:
            if self._relays.get(relay.build_id) is relay:
                del self._relays[relay.build_id]

    def forward(self, frames: Iterator[pb.SSHFrame],
                context: grpc.ServicerContext) -> Iterator[pb.SSHFrame]:
        """The SSHForward RPC: the first frame names the build and carries its token."""
        first = next(frames, None)
        if first is None:
            return
        deadline = time.monotonic() + ATTACH_SECONDS
        with self._cond:
            while first.buildID not in self._relays and time.monotonic() < deadline \
                    and context.is_active():
                self._cond.wait(_POLL_SECONDS)
            relay = self._relays.get(first.buildID)
        if relay is None:
            raise NotFound(f"build {first.buildID} not found: no Build forwarding ssh agents "
                           "came with this build ID")
        if not hmac.compare_digest(first.token.encode(), relay.token.encode()):
            raise InvalidArgument(f"build {first.buildID}: wrong ssh forwarding token")
        yield from relay.serve(frames, context)


__all__ = ["AgentRelay", "AgentRelays"]
