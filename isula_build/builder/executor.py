"""One instruction of a stage, executed on the stage's mounted root filesystem.

`StepExecutor.execute(step)` does what one instruction means: RUN in a container (runtime.py),
COPY/ADD through the copier, WORKDIR's directory, and the metadata instructions on the stage
config (config.py). Each step's effect gets a key — sha256 of the parent key, the expanded
instruction, the ARG values the step put in scope and, for COPY/ADD, the digest of the sources
(copydigest.py: computed from the context without copying, so the build cache can look a step
up before running it; COPY --from stands for its source by that stage's key or image ID;
ADD's URLs and git refs by the download's digest or the commit, fetched first: remotes.py) —
the chain of keys covers every ARG value in scope. `StepExecutor.key(step)` gives it without
executing. A RUN's --mount and --network values are in the expanded instruction; what its bind
and cache mounts read from is added like COPY's sources: a `from` by its key, the context's
source by its digest; secret and ssh mounts by their ids and options only, never their values
(a changed secret is served from the cache, as BuildKit). A COPY/ADD --link step also gets `StepKey.link`, a key made without the
parent's: its files are copied into an empty directory the stage stacks over its root as the
step's own snapshot, so they cannot depend on the layers below, and the cache serves them by
that key when the steps before changed.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import posixpath
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
from isula_build.builder.contexts import LocalContext
from isula_build.builder.copier import copy_into_root
from isula_build.builder.copydigest import source_digest
from isula_build.builder.copyflags import resolve_chown
from isula_build.builder.mounts import OverlayMount
from isula_build.builder.remotecache import SharedCache
from isula_build.builder.remotes import RemoteSources
from isula_build.builder.rootpath import make_dirs_in_root
from isula_build.builder.runmounts import MountEnv, run_mounts
from isula_build.builder.runtime import RunSpec, run_container
from isula_build.builder.session import ClientSession
from isula_build.builder.steptimes import StepClock
from isula_build.builder.users import resolve_user
from isula_build.dockerfile import DockerignoreMatcher, Step
from isula_build.dockerfile.instructions import (
    AddInstruction,
    CopyInstruction,
    Instruction,
    RunInstruction,
    WorkdirInstruction,
    check_copy_flags,
    exclude_matcher,
)
from isula_build.dockerfile.lex import expand_heredoc
from isula_build.dockerfile.parser import Heredoc
from isula_build.dockerfile.runmount import MountSpec, parse_mount
from isula_build.dockerfile.sources import git_source, is_remote
from isula_build.errors import (Cancelled, InternalError, InvalidArgument, IsulaBuildError, RunError,
                                Unimplemented, at_line)
from isula_build.progress import Report

_log = logging.getLogger(__name__)

# Proxy variables RUN inherits from the daemon with --proxy (SPEC §5), never written to the config.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY")
# The hostname RUN sees in a static build, so nothing of the host leaks into the result.
STATIC_HOSTNAME = "localhost"


@dataclass
class _SharedState:
    """The per-build counters the stages of one build share, behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    serial: int = 0               # new_dir's numbering
    executed: bool = False        # some step executed (the build is not wholly cached)
    holds: list[str] = field(default_factory=list)


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
    # fills it but serves nothing.
    cache: BuildCache | None = None
    use_cache: bool = True
    # The path of the store's blob of a layer (pinned for this build), None when the store
    # has no such layer: a stage served from the cache reuses the layer an earlier build made.
    find_layer: Callable[[str], Path | None] = lambda diff_id: None
    # A client watching the build (issue 15): told the bytes of blobs pulled and pushed, and
    # how long each step took (`steps`, begun at each STEP line). None: nothing is reported.
    progress: Report | None = None
    steps: StepClock = field(default_factory=lambda: StepClock(None))
    data_root: Path | None = None     # where RUN --mount=type=cache keeps its directories
    # What the stages share, also when they run at once (for_stage gives each its own log
    # and cancel event over the same state).
    _shared: _SharedState = field(default_factory=lambda: _SharedState(), repr=False)
    # The shared cache (remotecache.py): imported records the local cache lacks. The stages'
    # last keys are what --cache-to exports.
    shared: SharedCache | None = None
    # Called with lower dirs before they are mounted or read: extracts the store layers among
    # them (the base image's), fetches the shared cache's snapshots that imported hits named.
    materialize: Callable[[list[Path]], None] = lambda lowers: None
    stage_ends: dict[int, str] = field(default_factory=dict)
    # The layers the stages wrote, by the stage's last key: (diff ID, size, tar file).
    stage_layers: dict[str, tuple[str, int, Path]] = field(default_factory=dict)
    # The stages whose layer the build needs (the target and the stages built FROM); None: all.
    layer_stages: set[int] | None = None
    # What the client lent (--secret, --ssh), and where RUNs using it get their tmpfs.
    session: ClientSession = field(default_factory=ClientSession)
    private_root: Path | None = None
    # ADD's URLs and git repositories, fetched once per build (for the key, then the copy).
    remotes: RemoteSources = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.remotes = RemoteSources(self.work_dir)

    def for_stage(self, log: Callable[[str], None], cancel: threading.Event) -> BuildRun:
        """The same build as one stage sees it: its own log (prefixed when stages run at
        once) and cancel event (set when another stage fails), everything else shared."""
        view = copy.copy(self)
        view.log, view.cancel = log, cancel
        return view

    @property
    def all_cached(self) -> bool:
        """No step of this build has executed so far."""
        return not self._shared.executed

    def mark_executed(self) -> None:
        self._shared.executed = True

    def forget_executed(self) -> None:
        """The stages run again from the start (a shared cache lost mid-build)."""
        self._shared.executed = False

    @property
    def cache_holds(self) -> list[str]:
        """The cache's snapshots this build mounts (released when it ends; stagecache.py)."""
        with self._shared.lock:
            return list(self._shared.holds)

    def hold(self, snapshots: Iterable[str]) -> None:
        with self._shared.lock:
            self._shared.holds.extend(snapshots)

    def cache_settings(self) -> str:
        """Build settings that change what steps make without appearing in the Dockerfile:
        they start every stage's chain of keys, and are part of a --link step's own key."""
        return repr((sorted(self.proxy_env.items()), sorted(self.cap_add),
                     self.build_time.isoformat() if self.build_time else None))

    def new_dir(self, prefix: str) -> Path:
        """A fresh, unique directory name under the work dir (not created)."""
        with self._shared.lock:
            self._shared.serial += 1
            return self.work_dir / f"{prefix}-{self._shared.serial}"

    def check(self) -> None:
        """Called between steps: stops a cancelled build, or one the disk has no room for."""
        if self.cancel.is_set():
            raise Cancelled("the build was cancelled")
        self.check_space()


@dataclass
class RootStack:
    """A root filesystem as overlay lower dirs, TOP FIRST (an image's layers or a stage), or
    a named context's directory (its one lower dir, `local` set: COPY --from copies from it as
    from the main context, and keys it by the files it selects)."""

    lowers: list[Path]
    key: str = ""   # what stands for its content in a step key: a stage's last key, an image ID
    local: LocalContext | None = None


@dataclass(frozen=True)
class StepKey:
    key: str
    files: dict[str, str] | None = None   # COPY/ADD from the context: per-file digests
    # COPY/ADD --link: the key of the files the step adds, made without the parent key (the
    # layers below cannot change them); None when they depend on the state before the step.
    link: str | None = None


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
    ctx.materialize(stack.lowers)
    mount = OverlayMount(stack.lowers, base / "upper", base / "work", base / "merged",
                         mountopt=ctx.mountopt)
    try:
        with mount:
            yield base / "merged"
    finally:
        _remove_tree(base)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class _Sources:
    """A COPY/ADD's sources by kind."""
    documents: list[Heredoc]
    remote: list[str]        # ADD's URLs and git repositories
    local: list[str]         # paths in the context (or the --from root)

    @classmethod
    def of(cls, ins: CopyInstruction | AddInstruction) -> _Sources:
        documents, remote, local = [], [], []
        add = isinstance(ins, AddInstruction)
        for source in ins.sources:
            doc = _heredoc_of(source, ins.heredocs)
            if doc is not None:
                documents.append(doc)
            elif add and is_remote(source):
                remote.append(source)
            else:
                local.append(source)
        return cls(documents, remote, local)


def _link_independent(ins: CopyInstruction | AddInstruction) -> bool:
    """Whether a --link step's files are the same whatever the state before it: not when a
    relative destination depends on WORKDIR, --chown names a user (looked up in the stage's
    /etc/passwd) or a heredoc is expanded with the stage's environment."""
    chown_numeric = ins.chown is None or all(part.isdigit() for part in ins.chown.split(":"))
    return (ins.dest.startswith("/") and chown_numeric
            and not any(doc.expand for doc in ins.heredocs))


def _names_directory(dest: str) -> bool:
    return dest.endswith("/") or posixpath.basename(dest) in (".", "..")


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
        self._main_context = LocalContext(ctx.context_dir, ctx.ignore)

    def execute(self, step: Step, parent_key: str,
                link_into: Path | None = None) -> tuple[StepKey, bool]:
        """Runs one step; returns (its key, whether it may have changed the filesystem).
        A COPY/ADD --link step copies into `link_into` (an empty directory, the step's own
        layer the stage stacks over its root) instead of the root."""
        self.ctx.check()
        ins = step.instruction
        try:
            return self._execute(step, parent_key, link_into)
        except (Cancelled, RunError):
            raise  # docker's own wording for a failed RUN names the command already
        except IsulaBuildError as exc:
            if str(exc).startswith("Dockerfile line"):
                raise
            raise at_line(exc, ins.line) from None

    def key(self, step: Step, parent_key: str) -> StepKey | None:
        """The step's key, without executing it (the root is not read; ADD's remote sources
        are fetched, once per build, since the key is made of what they hold); None when only
        executing can tell."""
        ins = step.instruction
        if isinstance(ins, RunInstruction) and ins.mounts:
            try:
                mounted = self._mount_content(ins)
            except OSError:
                return None  # the mount itself reports it
            return StepKey(step_key(parent_key, ins, step.new_args, mounted))
        if not isinstance(ins, (CopyInstruction, AddInstruction)):
            return StepKey(step_key(parent_key, ins, step.new_args))
        content, files = self._content_key(ins)
        if content is None:
            return None
        link = None
        if ins.link and _link_independent(ins):
            link = step_key("link", ins, step.new_args, content + self.ctx.cache_settings())
        return StepKey(step_key(parent_key, ins, step.new_args, content), files, link)

    def _content_key(self, ins: CopyInstruction | AddInstruction
                     ) -> tuple[str | None, dict[str, str] | None]:
        """What the sources stand for in the key, and the per-file digests of local ones."""
        check_copy_flags(ins)
        sources = _Sources.of(ins)
        parts = [self.ctx.remotes.content(s, ins.checksum, ins.keep_git_dir)
                 for s in sources.remote if isinstance(ins, AddInstruction)]
        if not sources.local:
            return "+".join(parts), None  # heredocs: in `ins`
        from_ = ins.from_ if isinstance(ins, CopyInstruction) else None
        stack = self._resolve_from(from_) if from_ else None
        if stack is not None and stack.local is None:
            return "from " + stack.key, None
        local = (stack.local if stack is not None else None) or self._main_context
        ignore = local.ignore
        try:
            found = source_digest(sources.local, context_dir=local.path,
                                  add=isinstance(ins, AddInstruction),
                                  ignored=ignore.ignored if ignore else None,
                                  ignore_has_exceptions=ignore.has_exceptions if ignore else False,
                                  excludes=exclude_matcher(ins.excludes, ins.line),
                                  parents=isinstance(ins, CopyInstruction) and ins.parents)
        except OSError:
            return None, None  # the copy itself reports it
        if found is None:
            return None, None
        return "+".join([*parts, found.digest]), found.files

    def _execute(self, step: Step, parent_key: str,
                 link_into: Path | None) -> tuple[StepKey, bool]:
        ins = step.instruction
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
            copied = self._copy(ins, step.env, link_into)
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
        self.add_history(step)
        return known, changes_files

    def add_history(self, step: Step) -> None:
        """The step's history entry (a linked step served from the cache gets it too)."""
        ins = step.instruction
        # Only RUN's history names the ARG values (walking them for every step is quadratic).
        history_args = {k: v for k, v in step.args.items()
                        if k not in PROXY_VARIABLES} if isinstance(ins, RunInstruction) else {}
        self.config.add_history(history_text(ins, self.config.shell, history_args),
                                self.ctx.build_time or now_utc(), empty_layer=True)

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
                        from_key=lambda ref: self._resolve_from(ref).key,
                        session=ctx.session, private_root=ctx.private_root)

    def _run(self, ins: RunInstruction, step: Step) -> None:
        if ins.security == "insecure":  # sandbox is what every RUN gets
            raise Unimplemented.on_line(ins.line, "RUN --security=insecure is not supported")
        workdir = self.config.workdir
        user = resolve_user(self.rootfs, self.config.user)
        self._make_workdir()
        with run_mounts(self._mount_env(), self._mount_specs(ins), workdir) as mounted:
            spec = RunSpec(args=self.run_args(ins), env=mounted.environment(self.run_env(step)),
                           cwd=workdir, user=user, cap_add=list(self.ctx.cap_add),
                           hostname=STATIC_HOSTNAME if self.ctx.build_time else "",
                           mounts=mounted.mounts, network=ins.network or "default")
            # With secrets, the bundle (its config.json names env= values) goes to their tmpfs.
            private = mounted.private.directory
            bundle = private / "bundle" if private else self.ctx.new_dir("bundle")
            run_container(self.ctx.runtime, self.rootfs, spec, bundle,
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

    def _copy(self, ins: CopyInstruction | AddInstruction, env: Mapping[str, str],
              link_into: Path | None) -> str:
        """COPY/ADD into the stage's root; with --link into `link_into`, an empty directory
        the stage stacks over the root as the step's own snapshot (BuildKit's --link: the copy
        cannot see, nor follow symlinks of, the layers below, and its files do not depend on
        them)."""
        check_copy_flags(ins)
        sources = _Sources.of(ins)
        if len(ins.sources) > 1 and not _names_directory(ins.dest):
            what = "ADD" if isinstance(ins, AddInstruction) else "COPY"
            raise InvalidArgument(f"When using {what} with more than one source file, "
                                  f"the destination must be a directory and end with a /")
        try:
            if not ins.link:
                return self._copy_sources(ins, sources, env, self.rootfs, ins.chown)
            if link_into is None:   # stage.py gives every linked step its own directory
                raise InternalError(f"COPY --link on line {ins.line} has no directory to go to")
            link_into.mkdir(parents=True)
            # Names are looked up in the stage's root, as BuildKit reads the user database
            # from the state before the step even with --link.
            owner = resolve_chown(self.rootfs, ins.chown) if ins.chown else None
            return self._copy_sources(ins, sources, env, link_into,
                                      f"{owner[0]}:{owner[1]}" if owner else None)
        except PermissionError as exc:
            raise InvalidArgument(f"cannot read {exc.filename or 'a source'}: "
                                  "permission denied") from None
        except OSError as exc:
            raise InvalidArgument(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None

    def _copy_sources(self, ins: CopyInstruction | AddInstruction, sources: _Sources,
                      env: Mapping[str, str], root: Path, chown: str | None) -> str:
        add = isinstance(ins, AddInstruction)
        unpack = ins.unpack if isinstance(ins, AddInstruction) else None
        common = dict(workdir=self.config.workdir, chown=chown, chmod=ins.chmod, add=add,
                      tmp_dir=self.ctx.work_dir,
                      excludes=exclude_matcher(ins.excludes, ins.line), unpack=unpack)
        digests = []
        if sources.documents:
            digests.append(self._copy_heredocs(ins, root, sources.documents, env, common))
        for source in sources.remote:
            if git_source(source) is not None:
                assert isinstance(ins, AddInstruction)
                done = self.ctx.remotes.git(source, ins.keep_git_dir)
                digests.append(copy_into_root(root, [done.subdir], ins.dest,
                                              source_root=done.root, **common))  # type: ignore[arg-type]  # common holds each keyword's right type
            else:
                got = self.ctx.remotes.url(source, ins.checksum if add else None)  # type: ignore[union-attr]  # add: an AddInstruction
                digests.append(copy_into_root(root, [source], ins.dest, source_root=root,
                                              fetched={source: got}, **common))  # type: ignore[arg-type]  # common holds each keyword's right type
        if not sources.local:
            return "+".join(digests)
        parents = isinstance(ins, CopyInstruction) and ins.parents
        from_ = ins.from_ if isinstance(ins, CopyInstruction) else None
        stack = self._resolve_from(from_) if from_ else None
        if stack is not None and stack.local is None:
            with mounted_root(self.ctx, stack) as source_root:
                digests.append(copy_into_root(root, sources.local, ins.dest,
                                              source_root=source_root, from_context=False,
                                              parents=parents, **common))  # type: ignore[arg-type]  # common holds each keyword's right type
        else:  # the main context, or a named context's directory: read as a context is
            local = (stack.local if stack is not None else None) or self._main_context
            ignore = local.ignore
            digests.append(copy_into_root(
                root, sources.local, ins.dest, source_root=local.path,
                ignored=ignore.ignored if ignore else None,
                ignore_has_exceptions=ignore.has_exceptions if ignore else False,
                parents=parents, **common))  # type: ignore[arg-type]  # common holds each keyword's right type
        return "+".join(digests)

    def _copy_heredocs(self, ins: CopyInstruction | AddInstruction, root: Path,
                       documents: list[Heredoc], env: Mapping[str, str],
                       common: dict[str, Any]) -> str:
        """The heredoc sources, expanded (unless quoted) with the step's build environment."""
        folder = Path(tempfile.mkdtemp(prefix="heredoc-", dir=self.ctx.work_dir))
        try:
            for doc in documents:
                text = expand_heredoc(doc.content, env, self.ctx.escape) if doc.expand else doc.content
                path = folder / doc.name
                path.write_text(text)
                os.chmod(path, 0o644)
            return copy_into_root(root, [d.name for d in documents], ins.dest,
                                  source_root=folder, **common)
        finally:
            _remove_tree(folder)


__all__ = ["BuildRun", "PROXY_VARIABLES", "RootStack", "StepExecutor", "StepKey",
           "mounted_root", "step_key"]
