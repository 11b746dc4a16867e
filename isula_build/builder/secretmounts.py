"""RUN --mount=type=secret and type=ssh, from a tmpfs the daemon makes for the one RUN.

A RUN with such a mount gets a private tmpfs (RunPrivate, mounted on first use under
`<run_root>/secrets/`, unmounted when the RUN ends): each secret is written there as a file of
its `mode`, `uid` and `gid` (0400, root by default) and bind-mounted read-only at its target; each
ssh mount is a unix socket there whose connections are relayed to the client's agent
(agentsocket.py). The RUN's bundle goes there too (the executor asks `RunPrivate.directory`),
since its config.json carries `env=` secrets: so no byte of a secret is written to a disk.

A secret or agent the client did not give is absent (no file, no variable, no socket) unless
the mount says `required`, which fails the step (check_required in session.py fails the build
before any step, for every mount it can read beforehand).
"""

from __future__ import annotations

import os
import uuid
from contextlib import ExitStack
from pathlib import Path

from isula_build.builder.agentsocket import AgentSocket
from isula_build.builder.mounts import PrivateTmpfs, detach, mount_points
from isula_build.builder.runtime import BindMount
from isula_build.builder.session import ClientSession, missing_agent, missing_secret
from isula_build.dockerfile.runmount import MountSpec
from isula_build.errors import FailedPrecondition, InvalidArgument

SECRET_MODE = 0o400   # BuildKit's defaults
SSH_MODE = 0o600
# Room in a RUN's tmpfs beyond its secrets: the bundle (hosts and resolv.conf of at most 1 MiB
# each, config.json, runc's log). The secrets count twice: as files and in config.json.
_BUNDLE_ROOM = 8 << 20


class RunPrivate:
    """The tmpfs of one RUN under `root`, mounted on first use; its files get serial names."""

    def __init__(self, root: Path | None, session: ClientSession | None = None) -> None:
        self.root = root
        self.size = _BUNDLE_ROOM + 2 * (session.secrets.total_size() if session else 0)
        self.directory: Path | None = None
        self._serial = 0

    def path(self, stack: ExitStack) -> Path:
        if self.directory is None:
            if self.root is None:
                raise FailedPrecondition("RUN --mount=type=secret and type=ssh need the daemon's "
                                         "run root")
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory = stack.enter_context(
                PrivateTmpfs(self.root / uuid.uuid4().hex, self.size)).target
        return self.directory

    def new_name(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._serial}"


def sweep_stale_private(root: Path) -> None:
    """Unmounts and removes the tmpfs a daemon that died mid-RUN left under `root`."""
    prefix = str(root) + "/"
    for point in reversed(mount_points()):
        if point.startswith(prefix):
            detach(Path(point))
    if root.is_dir():
        for entry in root.iterdir():
            try:
                entry.rmdir()
            except OSError:
                pass  # not an empty directory: nothing of ours


def _write_secret(path: Path, value: bytes, mode: int, uid: int, gid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(value)
        while view:
            view = view[os.write(fd, view):]
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)   # after the chown, which would clear set-id bits
    finally:
        os.close(fd)


def _env_value(spec: MountSpec, value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise InvalidArgument(f'secret "{spec.secret_id}" cannot be the variable {spec.env}: it '
                              "is not UTF-8 text without NUL bytes")
    return text


def mount_secret(session: ClientSession, spec: MountSpec, target: str, private: RunPrivate,
                 stack: ExitStack) -> tuple[BindMount | None, tuple[str, str] | None]:
    """The secret's file mount (none for `env=` alone) and variable (none without `env=`)."""
    value = session.secrets.get(spec.secret_id)
    if value is None:
        if spec.required:
            raise missing_secret(spec)
        return None, None
    variable = (spec.env, _env_value(spec, value)) if spec.env is not None else None
    directory = private.path(stack)   # for the variable alone too: the bundle will hold it
    if not target:
        return None, variable
    path = directory / private.new_name("secret")
    _write_secret(path, value, SECRET_MODE if spec.mode is None else spec.mode,
                  spec.uid or 0, spec.gid or 0)
    return BindMount(path, target, readonly=True), variable


def mount_ssh(session: ClientSession, spec: MountSpec, target: str, private: RunPrivate,
              stack: ExitStack) -> BindMount | None:
    """The agent socket's mount; None when the client forwards no such agent."""
    agents = session.ssh
    if agents is None or spec.ssh_id not in agents.ids:
        if spec.required:
            raise missing_agent(spec)
        return None
    ssh_id = spec.ssh_id
    socket_ = stack.enter_context(AgentSocket(
        private.path(stack), private.new_name("agent"),
        SSH_MODE if spec.mode is None else spec.mode, spec.uid or 0, spec.gid or 0,
        lambda conn: agents.relay(ssh_id, conn)))
    return BindMount(socket_.path, target, readonly=True)


__all__ = ["RunPrivate", "SECRET_MODE", "SSH_MODE", "mount_secret", "mount_ssh",
           "sweep_stale_private"]
