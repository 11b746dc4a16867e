"""`RUN --mount`: each checked MountSpec (dockerfile/runmount.py) made into a container mount.

Nothing a mount shows enters the layer: runc mounts it over the stage's root for the one RUN,
and the stubs it makes for missing mount points are removed afterwards (runtime.py).

- bind (the default): `source` (default: the root) of the build context or of the `from`
  stage or image. The source is resolved inside its root (symlinks cannot lead out), opened,
  checked to be inside the root, and bind-mounted by its descriptor onto a staging point in the
  build's work dir, which runc then mounts: a path renamed in the context meanwhile changes
  nothing. Read-only unless `rw`; `rw` writes are thrown away — a `from` root is a throwaway
  overlay already, a context directory gets one over it, a context file is copied first.
- cache: a directory of cachemounts.py, kept across builds, seeded from `from`/`source`.
- tmpfs: an empty tmpfs of `size`.
- secret, ssh: the client's secrets and forwarded agents (secretmounts.py), from a tmpfs made
  for the RUN; the RUN's bundle goes there too, since its config.json may hold secret values.
  A secret's `env=` and ssh's SSH_AUTH_SOCK are variables of the RUN (RunMounts.environment).

The context is shown as it is on disk: .dockerignore does not hide entries from a bind mount
(BuildKit's context transfer leaves them out); the step key therefore hashes the whole source.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from isula_build.builder.cachemounts import CacheMountRequest, cache_mount
from isula_build.builder.copier import copy_into_root
from isula_build.builder.mounts import BindMountPoint, OverlayMount
from isula_build.builder.rootpath import resolve_in_root
from isula_build.builder.runtime import BindMount, ContainerMount, TmpfsMount
from isula_build.builder.secretmounts import RunPrivate, mount_secret, mount_ssh
from isula_build.builder.session import ClientSession
from isula_build.dockerfile.runmount import MountSpec
from isula_build.errors import FailedPrecondition, InvalidArgument, NotFound
from isula_build.store.fsutil import delete_tree


@dataclass(frozen=True)
class MountEnv:
    """What making a RUN's mounts needs from the build."""

    context_dir: Path
    data_root: Path | None                     # None: no cache mounts (the engine alone)
    new_dir: Callable[[str], Path]             # a fresh path in the build's work dir
    mountopt: str
    cancel: threading.Event
    log: Callable[[str], None]
    # A `from` value → its root filesystem, mounted as a throwaway overlay while the block lasts.
    open_from: Callable[[str], AbstractContextManager[Path]]
    from_key: Callable[[str], str]             # a `from` value → what stands for its content
    session: ClientSession = field(default_factory=ClientSession)   # secrets, ssh agents
    private_root: Path | None = None           # where RUNs' tmpfs go (None: no secret/ssh)


@dataclass
class RunMounts:
    """What one RUN's mounts give it: container mounts, variables, and the RUN's tmpfs."""

    private: RunPrivate
    mounts: list[ContainerMount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)          # secrets' env=: they win
    default_env: dict[str, str] = field(default_factory=dict)  # SSH_AUTH_SOCK: ENV wins

    def environment(self, env: list[str]) -> list[str]:
        """The RUN's `KEY=value` list with the mounts' variables."""
        values = dict(item.partition("=")[::2] for item in env)
        for key, value in self.default_env.items():
            values.setdefault(key, value)
        values.update(self.env)
        return [f"{k}={v}" for k, v in values.items()]


def _open_source(root: Path, source: str, what: str) -> int:
    """An O_PATH descriptor of `source` resolved inside `root`, checked to be inside it."""
    host = resolve_in_root(root, source)
    try:
        fd = os.open(host, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f'mount source "{source}" not found in {what}') from None
    top = os.path.realpath(root).rstrip("/") + "/"
    real = os.readlink(f"/proc/self/fd/{fd}")
    if stat.S_ISLNK(os.fstat(fd).st_mode) or not (real + "/").startswith(top):
        os.close(fd)   # changed while it was resolved (the context is the user's to change)
        raise InvalidArgument(f'mount source "{source}" leads outside {what}')
    return fd


def _bind(env: MountEnv, spec: MountSpec, target: str, stack: ExitStack, out: RunMounts) -> None:
    if spec.from_:
        root, what = stack.enter_context(env.open_from(spec.from_)), f"--mount from={spec.from_}"
    else:
        root, what = env.context_dir, "the build context"
    fd = _open_source(root, spec.source or "/", what)
    stack.callback(os.close, fd)
    staging = stack.enter_context(BindMountPoint(fd, env.new_dir("mount")))
    source = staging.target
    if not spec.readonly and not spec.from_:
        # Writes must not reach the user's context: they go to a throwaway upper (or copy).
        base = env.new_dir("rw")
        stack.callback(delete_tree, base, ignore_errors=True)
        if source.is_dir():
            stack.enter_context(OverlayMount([source], base / "upper", base / "work",
                                             base / "merged", mountopt=env.mountopt))
            source = base / "merged"
        else:
            base.mkdir()
            copied = base / "file"
            shutil.copy2(source, copied)
            source = copied
    out.mounts.append(BindMount(source, target, readonly=spec.readonly))


def _cache(env: MountEnv, spec: MountSpec, target: str, stack: ExitStack, out: RunMounts) -> None:
    if env.data_root is None:
        raise FailedPrecondition("RUN --mount=type=cache needs the daemon's data root")
    origin = repr((env.from_key(spec.from_) if spec.from_ else "", spec.source, spec.mode,
                   spec.uid, spec.gid))
    from_ = spec.from_

    def seed(folder: Path) -> None:
        assert from_ is not None
        with env.open_from(from_) as root:
            copy_into_root(folder, [spec.source or "/"], "/", source_root=root,
                           from_context=False)

    request = CacheMountRequest(spec.cache_id, origin, spec.sharing,
                                0o755 if spec.mode is None else spec.mode,
                                spec.uid or 0, spec.gid or 0, seed if from_ else None)
    path = stack.enter_context(cache_mount(env.data_root, request, env.cancel, env.log))
    out.mounts.append(BindMount(path, target, readonly=spec.readonly))


def _tmpfs(env: MountEnv, spec: MountSpec, target: str, stack: ExitStack, out: RunMounts) -> None:
    out.mounts.append(TmpfsMount(target, spec.size))


def _secret(env: MountEnv, spec: MountSpec, target: str, stack: ExitStack, out: RunMounts) -> None:
    mount, variable = mount_secret(env.session, spec, target, out.private, stack)
    if mount is not None:
        out.mounts.append(mount)
    if variable is not None:
        out.env[variable[0]] = variable[1]


def _ssh(env: MountEnv, spec: MountSpec, target: str, stack: ExitStack, out: RunMounts) -> None:
    if not out.default_env:  # the first ssh mount's, present or not (BuildKit's rule)
        out.default_env["SSH_AUTH_SOCK"] = target
    mount = mount_ssh(env.session, spec, target, out.private, stack)
    if mount is not None:
        out.mounts.append(mount)


_MOUNTERS: dict[str, Callable[[MountEnv, MountSpec, str, ExitStack, RunMounts], None]] = {
    "bind": _bind, "cache": _cache, "tmpfs": _tmpfs, "secret": _secret, "ssh": _ssh,
}


def _with_default_target(spec: MountSpec, ssh_index: int) -> MountSpec:
    """A secret's or ssh socket's target as BuildKit defaults it ("": a secret in env only)."""
    if spec.type == "secret":
        return replace(spec, target=spec.secret_file or "")
    if spec.type == "ssh" and not spec.target:
        return replace(spec, target=f"/run/buildkit/ssh_agent.{ssh_index}")
    return spec


@contextmanager
def run_mounts(env: MountEnv, specs: Sequence[MountSpec], workdir: str) -> Iterator[RunMounts]:
    """The container mounts of one RUN, made ready; all undone when the block ends."""
    with ExitStack() as stack:
        out = RunMounts(RunPrivate(env.private_root, env.session))
        ssh_index = 0
        for written in specs:
            spec = _with_default_target(written, ssh_index)
            ssh_index += spec.type == "ssh"
            target = spec.container_target(workdir) if spec.target else ""
            if target == "/":
                raise InvalidArgument(f'invalid mount target "{spec.target}": with WORKDIR '
                                      f'{workdir} it is "/"')
            _MOUNTERS[spec.type](env, spec, target, stack, out)
        yield out


__all__ = ["MountEnv", "RunMounts", "run_mounts"]
