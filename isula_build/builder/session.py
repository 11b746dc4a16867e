"""What the client lends one build: its secrets (`build --secret`) and its ssh agents (`--ssh`).

The daemon decodes them from the request (daemon/secrets.py, daemon/sshrelay.py); RUN
--mount=type=secret and type=ssh use them (secretmounts.py). A secret's value is kept in
memory only and is never part of a repr, a log line or an error: everything names the id.
What a step may show of the session — which ids exist — does not enter its cache key either:
the key holds the ids the Dockerfile names and the mount options, so a changed or newly given
secret is served from the cache, as BuildKit does.

`check_required` refuses, before any step runs, a build whose Dockerfile says a secret or
agent is `required` that the client did not give; a mount whose words need the stage's
environment to expand is checked when its step runs.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from isula_build.dockerfile import BuildPlan
from isula_build.dockerfile.instructions import RunInstruction
from isula_build.dockerfile.runmount import MountSpec, parse_mount
from isula_build.errors import NotFound


class ClientSecrets(Mapping[str, bytes]):
    """Secret id → value; the values never show in a repr."""

    def __init__(self, values: Mapping[str, bytes] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> bytes:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"ClientSecrets(ids={sorted(self._values)})"

    def total_size(self) -> int:
        return sum(len(v) for v in self._values.values())


class SSHAgents(Protocol):
    """The client's forwarded agents, by id."""

    @property
    def ids(self) -> frozenset[str]: ...

    def relay(self, ssh_id: str, conn: socket.socket) -> None:
        """Relays one connection a RUN made to its agent socket to the client's agent `ssh_id`,
        until either end closes it; the caller closes `conn`."""


@dataclass(frozen=True)
class ClientSession:
    secrets: ClientSecrets = field(default_factory=ClientSecrets)
    ssh: SSHAgents | None = None

    def has_agent(self, ssh_id: str) -> bool:
        return self.ssh is not None and ssh_id in self.ssh.ids


def missing_secret(spec: MountSpec) -> NotFound:
    return NotFound(f'secret "{spec.secret_id}" is required but was not given: pass it with '
                    f"--secret id={spec.secret_id},src=FILE (or env=VARIABLE)")


def missing_agent(spec: MountSpec) -> NotFound:
    return NotFound(f'ssh agent "{spec.ssh_id}" is required but was not forwarded: pass '
                    f"--ssh {spec.ssh_id}[=SOCKET|KEY]")


def check_required(plan: BuildPlan, session: ClientSession) -> None:
    """Refuses (naming the line) a `required` secret or agent the client did not give, in the
    stages the build runs, for every mount whose words are known before the build."""
    for index in plan.needed():
        stage = plan.stages[index]
        for written, settled in zip(stage.instructions, stage.settled):
            ins = settled or written
            if not isinstance(ins, RunInstruction):
                continue
            for text in ins.mounts:
                if settled is None and "$" in text:
                    continue  # expanded with the base's environment: checked at its step
                spec = parse_mount(text, ins.line)
                if not spec.required:
                    continue
                if spec.type == "secret" and spec.secret_id not in session.secrets:
                    raise NotFound.on_line(ins.line, str(missing_secret(spec)))
                if spec.type == "ssh" and not session.has_agent(spec.ssh_id):
                    raise NotFound.on_line(ins.line, str(missing_agent(spec)))


__all__ = ["ClientSecrets", "ClientSession", "SSHAgents", "check_required",
           "missing_agent", "missing_secret"]
