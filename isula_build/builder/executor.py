"""One instruction of a stage, executed on the stage's mounted root filesystem.

`StepExecutor.execute(step)` does what one instruction means: RUN in a container (runtime.py),
COPY/ADD through the copier, WORKDIR's directory, and the metadata instructions on the stage
config (config.py). Each step's effect gets a key — sha256 of the parent key, the expanded
instruction, the ARG values the step put in scope and, for COPY/ADD, the digest of the sources
(copydigest.py: computed from the context without copying, so the build cache can look a step
up before running it; COPY --from stands for its source by that stage's key or image ID) — the
chain of keys covers every ARG value in scope. `StepExecutor.key(step)` gives it without
executing; None for ADD of a URL, whose key needs the fetched content. A RUN's --mount and
--network values are in the expanded instruction; what its bind and cache mounts read from
is added like COPY's sources: a `from` by its key, the context's source by its digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from isula_build.builder.cache import BuildCache
from isula_build.builder.config import StageConfig, history_text, now_utc
from isula_build.builder.copier import copy_into_root
from isula_build.builder.copydigest import source_digest
from isula_build.builder.mounts import OverlayMount
from isula_build.builder.rootpath import make_dirs_in_root
from isula_build.builder.runmounts import MountEnv, run_mounts
from isula_build.builder.runtime import RunSpec, run_container
from isula_build.builder.users import resolve_user
from isula_build.dockerfile import DockerignoreMatcher, Step
from isula_build.dockerfile.instructions import (
    AddInstruction,
    CopyInstruction,
    Instruction,
    RunInstruction,
    WorkdirInstruction,
)
from isula_build.dockerfile.lex import expand_heredoc
from isula_build.dockerfile.parser import Heredoc
from isula_build.dockerfile.runmount import MountSpec, parse_mount
from isula_build.errors import (Cancelled, InvalidArgument, IsulaBuildError, RunError,
                                Unimplemented, at_line)

_log = logging.getLogger(__name__)

# Proxy variables RUN inherits from the daemon with --proxy (SPEC §5), never written to the config.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY")
# The hostname RUN sees in a static build, so nothing of the host leaks into the result.
STATIC_HOSTNAME = "localhost"


@dataclass
class BuildRun:
    """What every step of one build shares."""

    runtime: str                      # OCI runtime binary (daemon config `runtime`)
    state_root: Path                  # runc --root
    mountopt: str                     # overlay mount options (storage.toml)
    work_dir: Path                    # this build's private directory (removed at the end)
    context_dir: Path                 # the build context
    ignore: DockerignoreMatcher | None
    proxy_env: dict[str, str]         # proxy variables of the daemon (empty without --proxy)
    cap_add: list[str]
    build_time: datetime | None       # --build-static time; None: now
    log: Callable[[str], None]
    cancel: threading.Event
    escape: str = "\\"
    # Raises when the data root's filesystem (which holds work_dir) is short of space: the
    # store's reserve check. COPY and RUN can write any amount, so every step boundary asks.
    check_space: Callable[[], None] = lambda: None
    # The build cache (stagecache.py): None leaves it out; use_cache False (--no-cache) still
    # fills it but serves nothing. all_cached: no step of this build has executed so far.
    cache: BuildCache | None = None
    use_cache: bool = True
    all_cached: bool = True
    data_root: Path | None = None     # where RUN --mount=type=cache keeps its directories
    _serial: int = field(default=0, repr=False)

    def new_dir(self, prefix: str) -> Path:
        """A fresh, unique directory name under the work dir (not created)."""
        self._serial += 1
        return self.work_dir / f"{prefix}-{self._serial}"

    def check(self) -> None:
        """Called between steps: stops a cancelled build, or one the disk has no room for."""
        if self.cancel.is_set():
            raise Cancelled("the build was cancelled")
        self.check_space()


@dataclass
class RootStack:
    """A root filesystem as overlay lower dirs, TOP FIRST (an image's layers or a stage)."""

    lowers: list[Path]
    key: str = ""   # what stands for its content in a step key: a stage's last key, an image ID


@dataclass(frozen=True)
class StepKey:
    key: str
    files: dict[str, str] | None = None   # COPY/ADD from the context: per-file digests



def step_key(parent: str, ins: Instruction, new_args: Iterable[tuple[str, str]],
             content: str = "") -> str:
    """The key of a step's effect: what a cache would look up (see the module docstring).
    Keys are chained: with the parent's key, the ARG values this step put in scope stand for
    all those in scope, so a step hashes its own part only."""
    text = repr((parent, ins, sorted(new_args), content))  # repr quotes: unambiguous
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@contextmanager
def mounted_root(ctx: BuildRun, stack: RootStack) -> Iterator[Path]:
    """A throwaway overlay of `stack` to read from (COPY --from): nothing in it is kept."""
    base = ctx.new_dir("from")
    mount = OverlayMount(stack.lowers, base / "upper", base / "work", base / "merged",
                         mountopt=ctx.mountopt)
    try:
        with mount:
            yield base / "merged"
    finally:
        _remove_tree(base)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _heredoc_of(word: str, heredocs: tuple[Heredoc, ...]) -> Heredoc | None:
    """The heredoc a word such as `<<EOF`, `<<-EOF` or `<<'EOF'` introduces, if any."""
    for doc in heredocs:
        if re.fullmatch(r"\d*<<-?(['\"]?)" + re.escape(doc.name) + r"\1", word.strip()):
            return doc
    return None


class StepExecutor:
    """Executes the steps of one stage on its mounted root `rootfs`."""

    def __init__(self, ctx: BuildRun, rootfs: Path, config: StageConfig,
                 resolve_from: Callable[[str], RootStack]) -> None:
        self.ctx = ctx
        self.rootfs = rootfs
        self.config = config
        self._resolve_from = resolve_from  # COPY --from value → root stack (stage or image)

    def execute(self, step: Step, parent_key: str) -> tuple[StepKey, bool]:
        """Runs one step; returns (its key, whether it may have changed the filesystem)."""
        self.ctx.check()
        ins = step.instruction
        try:
            return self._execute(step, parent_key)
        except (Cancelled, RunError):
            raise  # docker's own wording for a failed RUN names the command already
        except IsulaBuildError as exc:
            if str(exc).startswith("Dockerfile line"):
                raise
            raise at_line(exc, ins.line) from None

    def key(self, step: Step, parent_key: str) -> StepKey | None:
        """The step's key, without executing it (the root is not read); None when only
        executing can tell (ADD of a URL)."""
        ins = step.instruction
        if isinstance(ins, RunInstruction) and ins.mounts:
            try:
                content = self._mount_content(ins)
            except OSError:
                return None  # the mount itself reports it
            return StepKey(step_key(parent_key, ins, step.new_args, content))
        if not isinstance(ins, (CopyInstruction, AddInstruction)):
            return StepKey(step_key(parent_key, ins, step.new_args))
        plain = [s for s in ins.sources if _heredoc_of(s, ins.heredocs) is None]
        from_ = ins.from_ if isinstance(ins, CopyInstruction) else None
        if not plain:
            return StepKey(step_key(parent_key, ins, step.new_args))  # heredocs: in `ins`
        if from_:
            return StepKey(step_key(parent_key, ins, step.new_args,
                                    "from " + self._resolve_from(from_).key))
        ignore = self.ctx.ignore
        try:
            found = source_digest(plain, context_dir=self.ctx.context_dir,
                                  add=isinstance(ins, AddInstruction),
                                  ignored=ignore.ignored if ignore else None,
                                  ignore_has_exceptions=ignore.has_exceptions if ignore else False)
        except OSError:
            return None  # the copy itself reports it
        if found is None:
            return None
        return StepKey(step_key(parent_key, ins, step.new_args, found.digest), found.files)

    def _execute(self, step: Step, parent_key: str) -> tuple[StepKey, bool]:
        ins, args = step.instruction, step.args
        shell = self.config.shell
        changes_files = True
        known = None
        if isinstance(ins, RunInstruction):
            try:  # from the mount sources as they are before the run
                known = self.key(step, parent_key) if ins.mounts else None
            except IsulaBuildError:
                known = None  # the mount reports it, in its own words
            self._run(ins, step)
        elif isinstance(ins, (CopyInstruction, AddInstruction)):
            try:  # from the sources as they are before the copy
                known = self.key(step, parent_key)
            except IsulaBuildError:
                known = None  # the copy reports it, in its own words
            copied = self._copy(ins, step.env)
            if known is None:
                known = StepKey(step_key(parent_key, ins, step.new_args, copied))
        elif isinstance(ins, WorkdirInstruction):
            self.config.apply(ins)
            self._make_workdir()
        else:
            if not self.config.apply(ins):
                raise InvalidArgument.on_line(ins.line,
                                              f"{type(ins).__name__} cannot be executed here")
            changes_files = False
        known = known or StepKey(step_key(parent_key, ins, step.new_args))
        _log.debug("step key %s: line %d %r", known.key, ins.line, ins)
        # Only RUN's history names the ARG values (walking them for every step is quadratic).
        history_args = {k: v for k, v in args.items()
                        if k not in PROXY_VARIABLES} if isinstance(ins, RunInstruction) else {}
        self.config.add_history(history_text(ins, shell, history_args),
                                self.ctx.build_time or now_utc(), empty_layer=True)
        return known, changes_files

    # --- RUN -------------------------------------------------------------------------------

    def run_env(self, step: Step) -> list[str]:
        """The step's build environment, then the proxy build args no ARG declared, then
        the daemon's proxy variables unless an ARG, ENV or build arg sets them."""
        env = dict(step.env)
        for key, value in step.args.items():
            env.setdefault(key, value)
        for key, value in self.ctx.proxy_env.items():
            env.setdefault(key, value)
        return [f"{k}={v}" for k, v in env.items()]

    def run_args(self, ins: RunInstruction) -> list[str]:
        if ins.json:
            return list(ins.command)
        shell = self.config.shell
        if not ins.heredocs:
            return [*shell, *ins.command]
        command = ins.command[0] if ins.command else ""
        only = ins.heredocs[0]
        if len(ins.heredocs) == 1 and _heredoc_of(command, ins.heredocs) is only:
            # RUN <<EOF: the document is the script (BuildKit runs it with the SHELL).
            if only.content.startswith("#!"):
                raise InvalidArgument.on_line(ins.line, "a RUN heredoc starting with #! is not "
                                                          "supported yet")
            return [*shell, only.content]
        # A command reading heredocs (`cat <<EOF > f`): the shell gets the documents too.
        text = command + "\n" + "".join(
            h.content + ("" if h.content.endswith("\n") else "\n") + h.name + "\n"
            for h in ins.heredocs)
        return [*shell, text]

    def _mount_specs(self, ins: RunInstruction) -> list[MountSpec]:
        return [parse_mount(text, ins.line) for text in ins.mounts]

    def _mount_content(self, ins: RunInstruction) -> str:
        """What the bind and cache mounts read, for the key: a `from` by its key, a context
        source by its digest (all of it: .dockerignore does not hide entries from a mount)."""
        parts = []
        for spec in self._mount_specs(ins):
            if spec.type not in ("bind", "cache"):
                continue
            if spec.from_:
                parts.append("from " + self._resolve_from(spec.from_).key)
            elif spec.type == "bind":
                found = source_digest([spec.source or "."], context_dir=self.ctx.context_dir,
                                      add=False, ignored=None, ignore_has_exceptions=False)
                assert found is not None  # None only for ADD of a URL
                parts.append("context " + found.digest)
        return "+".join(parts)

    def _mount_env(self) -> MountEnv:
        ctx = self.ctx
        return MountEnv(context_dir=ctx.context_dir, data_root=ctx.data_root, new_dir=ctx.new_dir,
                        mountopt=ctx.mountopt, cancel=ctx.cancel, log=ctx.log,
                        open_from=lambda ref: mounted_root(ctx, self._resolve_from(ref)),
                        from_key=lambda ref: self._resolve_from(ref).key)

    def _run(self, ins: RunInstruction, step: Step) -> None:
        if ins.security == "insecure":  # sandbox is what every RUN gets
            raise Unimplemented.on_line(ins.line, "RUN --security=insecure is not supported")
        workdir = self.config.workdir
        user = resolve_user(self.rootfs, self.config.user)
        self._make_workdir()
        with run_mounts(self._mount_env(), self._mount_specs(ins), workdir) as mounts:
            spec = RunSpec(args=self.run_args(ins), env=self.run_env(step), cwd=workdir,
                           user=user, cap_add=list(self.ctx.cap_add),
                           hostname=STATIC_HOSTNAME if self.ctx.build_time else "",
                           mounts=mounts, network=ins.network or "default")
            run_container(self.ctx.runtime, self.rootfs, spec, self.ctx.new_dir("bundle"),
                          output=self.ctx.log, cancel=self.ctx.cancel,
                          state_root=self.ctx.state_root)

    def _make_workdir(self) -> None:
        workdir = self.config.workdir
        if workdir == "/":
            return
        user = resolve_user(self.rootfs, self.config.user) if self.config.user else None
        make_dirs_in_root(self.rootfs, workdir, mode=0o755,
                          uid=user.uid if user else 0, gid=user.gid if user else 0)

    # --- COPY / ADD ------------------------------------------------------------------------

    def _copy(self, ins: CopyInstruction | AddInstruction, env: Mapping[str, str]) -> str:
        add = isinstance(ins, AddInstruction)
        if isinstance(ins, AddInstruction) and ins.checksum:
            raise InvalidArgument.on_line(ins.line, "ADD --checksum is not supported")
        documents = [doc for doc in (_heredoc_of(s, ins.heredocs) for s in ins.sources) if doc]
        plain = [s for s in ins.sources if _heredoc_of(s, ins.heredocs) is None]
        common = dict(workdir=self.config.workdir, chown=ins.chown, chmod=ins.chmod, add=add,
                      tmp_dir=self.ctx.work_dir)
        digests = []
        try:
            if documents:
                digests.append(self._copy_heredocs(ins, documents, env, common))
            if plain:
                from_ = ins.from_ if isinstance(ins, CopyInstruction) else None
                if from_:
                    with mounted_root(self.ctx, self._resolve_from(from_)) as source:
                        digests.append(copy_into_root(self.rootfs, plain, ins.dest,
                                                      source_root=source, from_context=False,
                                                      **common))  # type: ignore[arg-type]  # common holds each keyword's right type
                else:
                    ignore = self.ctx.ignore
                    digests.append(copy_into_root(
                        self.rootfs, plain, ins.dest, source_root=self.ctx.context_dir,
                        ignored=ignore.ignored if ignore else None,
                        ignore_has_exceptions=ignore.has_exceptions if ignore else False,
                        **common))  # type: ignore[arg-type]  # common holds each keyword's right type
        except PermissionError as exc:
            raise InvalidArgument(f"cannot read {exc.filename or 'a source'}: "
                                  "permission denied") from None
        except OSError as exc:
            raise InvalidArgument(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
        return "+".join(digests)

    def _copy_heredocs(self, ins: CopyInstruction | AddInstruction, documents: list[Heredoc],
                       env: Mapping[str, str], common: dict[str, Any]) -> str:
        """The heredoc sources, expanded (unless quoted) with the step's build environment."""
        folder = Path(tempfile.mkdtemp(prefix="heredoc-", dir=self.ctx.work_dir))
        try:
            for doc in documents:
                text = expand_heredoc(doc.content, env, self.ctx.escape) if doc.expand else doc.content
                path = folder / doc.name
                path.write_text(text)
                os.chmod(path, 0o644)
            return copy_into_root(self.rootfs, [d.name for d in documents], ins.dest,
                                  source_root=folder, **common)
        finally:
            _remove_tree(folder)


__all__ = ["BuildRun", "PROXY_VARIABLES", "RootStack", "StepExecutor", "StepKey",
           "mounted_root", "step_key"]
