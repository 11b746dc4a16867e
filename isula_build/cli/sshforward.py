"""build --ssh: the client's ssh agents, forwarded to the build's RUN --mount=type=ssh.

`--ssh default` (or any `ID`) forwards the agent of $SSH_AUTH_SOCK; `--ssh ID=SOCKET` an agent
socket; `--ssh ID=KEY[,KEY...]` key files, for which the client starts an ssh-agent of its own
holding them (LocalAgents; ssh-add asks for a passphrase as usual) and forwards that one. The
agents stay with the client: AgentForwarder opens the daemon's SSHForward stream beside the
Build and relays each connection a RUN makes to the agent's socket (SSHFrame in control.proto),
so the daemon never opens a path of the client's.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from isula_build.errors import InvalidArgument

# ssh-agent makes its socket at once; this long is allowed before it counts as failed.
AGENT_START_SECONDS = 10.0
_CHUNK = 64 << 10


@dataclass(frozen=True)
class AgentSpec:
    id: str
    socket: str = ""               # an agent's socket
    keys: tuple[str, ...] = ()     # or key files for an agent of the client's own


def _kind(path: str, flag: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError as exc:
        raise InvalidArgument(f"--ssh {flag}: cannot use {path}: {exc.strerror}") from None


def parse_ssh(value: str, environ: Mapping[str, str]) -> AgentSpec:
    ident, eq, paths_text = value.partition("=")
    if not ident or "," in ident:
        raise InvalidArgument(f"invalid --ssh {value!r}: use default, ID, or ID=SOCKET|KEY[,KEY...]")
    if not eq:
        sock = environ.get("SSH_AUTH_SOCK", "")
        if not sock:
            raise InvalidArgument(f"--ssh {value}: SSH_AUTH_SOCK is not set, so there is no ssh "
                                  f"agent to forward; start one (eval $(ssh-agent); ssh-add) or "
                                  f"name a socket or key: --ssh {ident}=PATH")
        paths = [sock]
    else:
        paths = paths_text.split(",")
        if not all(paths):
            raise InvalidArgument(f"invalid --ssh {value!r}: an empty path")
    modes = [_kind(path, value) for path in paths]
    if any(stat.S_ISSOCK(m) for m in modes):
        if len(paths) > 1:
            raise InvalidArgument(f"invalid --ssh {value!r}: an agent socket must come alone")
        return AgentSpec(ident, socket=os.path.abspath(paths[0]))
    for path, mode in zip(paths, modes):
        if not stat.S_ISREG(mode):
            raise InvalidArgument(f"--ssh {value}: {path} is neither an agent socket nor a key file")
    return AgentSpec(ident, keys=tuple(os.path.abspath(p) for p in paths))


def parse_ssh_flags(values: list[str], environ: Mapping[str, str]) -> list[AgentSpec]:
    specs: list[AgentSpec] = []
    for value in values:
        spec = parse_ssh(value, environ)
        if any(s.id == spec.id for s in specs):
            raise InvalidArgument(f"--ssh {spec.id} is given twice")
        specs.append(spec)
    return specs


def _end_with_parent() -> None:
    """In the agent's child before exec: a client killed outright takes its agent along."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _start_agent(spec: AgentSpec, directory: str,
                 processes: list[subprocess.Popen[bytes]]) -> str:
    """An ssh-agent holding spec.keys, its socket in `directory`; the socket's path."""
    agent_bin, add_bin = shutil.which("ssh-agent"), shutil.which("ssh-add")
    if agent_bin is None or add_bin is None:
        raise InvalidArgument(f"--ssh {spec.id}: forwarding key files needs ssh-agent and "
                              "ssh-add (openssh-clients)")
    path = os.path.join(directory, f"agent-{len(processes)}.sock")
    agent = subprocess.Popen([agent_bin, "-D", "-a", path], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=_end_with_parent)
    processes.append(agent)
    deadline = time.monotonic() + AGENT_START_SECONDS
    while not os.path.exists(path):
        if agent.poll() is not None or time.monotonic() > deadline:
            raise InvalidArgument(f"--ssh {spec.id}: ssh-agent did not start")
        time.sleep(0.02)
    added = subprocess.run([add_bin, *spec.keys], env={**os.environ, "SSH_AUTH_SOCK": path},
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if added.returncode != 0:
        raise InvalidArgument(f"--ssh {spec.id}: ssh-add refused the key: "
                              f"{added.stderr.strip()}")
    return path


@contextmanager
def local_agents(specs: list[AgentSpec]) -> Iterator[dict[str, str]]:
    """Agent id → socket path: the sockets given, and agents started for key files (ended,
    their private directory removed, when the block ends)."""
    sockets = {s.id: s.socket for s in specs if s.socket}
    processes: list[subprocess.Popen[bytes]] = []
    directory = tempfile.mkdtemp(prefix="isula-build-ssh-") \
        if any(s.keys for s in specs) else None
    try:
        for spec in specs:
            if spec.keys:
                assert directory is not None
                sockets[spec.id] = _start_agent(spec, directory, processes)
        yield sockets
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


class AgentForwarder:
    """The client's end of SSHForward: each channel the daemon opens is a connection to the
    agent it names; bytes are relayed both ways until either end closes."""

    def __init__(self, sockets: Mapping[str, str]) -> None:
        self._sockets = dict(sockets)
        self._out: queue.Queue[Any] = queue.Queue()
        self._conns: dict[int, socket.socket] = {}
        self._lock = threading.Lock()
        self._call: Any = None
        self._thread: threading.Thread | None = None

    def start(self, stub: Any, build_id: str, token: str) -> None:
        from isula_build.api import control_pb2

        self._pb = control_pb2
        self._out.put(control_pb2.SSHFrame(buildID=build_id, token=token))
        self._call = stub.SSHForward(self._requests())
        self._thread = threading.Thread(target=self._receive, name="ssh-forward", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._out.put(None)
        if self._call is not None:
            self._call.cancel()
        if self._thread is not None:
            self._thread.join()
        self._shut_all()

    def _requests(self) -> Iterator[Any]:
        while True:
            frame = self._out.get()
            if frame is None:
                return
            yield frame

    def _receive(self) -> None:
        import grpc

        try:
            for frame in self._call:
                if frame.id:
                    self._open(frame.conn, frame.id)
                    continue
                with self._lock:
                    conn = self._conns.get(frame.conn)
                if conn is None:
                    continue
                try:
                    if frame.data:
                        conn.sendall(frame.data)
                    if frame.close:
                        conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                logging.warning("ssh forwarding ended: %s", exc.details())
        finally:
            self._shut_all()

    def _open(self, number: int, agent_id: str) -> None:
        path = self._sockets.get(agent_id)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            if path is None:
                raise OSError(f"no agent {agent_id}")
            conn.connect(path)
        except OSError as exc:
            logging.warning("ssh forwarding: cannot reach agent %s: %s", agent_id, exc)
            conn.close()
            self._out.put(self._pb.SSHFrame(conn=number, close=True))
            return
        with self._lock:
            self._conns[number] = conn
        threading.Thread(target=self._pump, args=(number, conn), daemon=True,
                         name=f"ssh-forward-{number}").start()

    def _pump(self, number: int, conn: socket.socket) -> None:
        try:
            while True:
                data = conn.recv(_CHUNK)
                if not data:
                    break
                self._out.put(self._pb.SSHFrame(conn=number, data=data))
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.pop(number, None)
            conn.close()
            self._out.put(self._pb.SSHFrame(conn=number, close=True))

    def _shut_all(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def new_token() -> str:
    return secrets.token_hex(16)


__all__ = ["AgentForwarder", "AgentSpec", "local_agents", "new_token", "parse_ssh",
           "parse_ssh_flags"]
