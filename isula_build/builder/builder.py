"""A whole build request: check → plan → stages → commit → outputs.

Everything that can be refused without building (output specs, the tag, the context and the
named contexts, the Dockerfile, .dockerignore, --target) is refused first. An image FROM or
COPY --from names that the store lacks is pulled (through the daemon's registry settings) when
the stage needs it. The stages the target needs (plan.needed()) then run, each once the stages
it reads are done, independent ones at once (schedule.py). Only
the target stage is committed — through copy_image into the store, which prints the copy
lines — and tagged; earlier stages leave nothing behind: their uppers and layer tars live in
the build's work dir (`<data_root>/tmp/build-<id>`, workdir.py), removed at the end whatever
happens, and blobs the store writer made for them are dropped when the writer closes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from isula_build.builder.binfmt import binfmt_dir
from isula_build.builder.cache import BuildCache
from isula_build.builder.config import StageConfig
from isula_build.builder.contextbase import directory_base
from isula_build.builder.contexts import NamedContext, local_context, parse_build_contexts
from isula_build.builder.executor import PROXY_VARIABLES, BuildRun, RootStack
from isula_build.builder.outputs import export, export_list, image_names, parse_output
from isula_build.builder.heldoutput import HeldOutput
from isula_build.builder.platforms import (StageMemo, check_emulation, check_output, find_base,
                                           pull_failed, start_base,
                                           prefixed, set_platform, stage_platform)
from isula_build.builder.remotecache import WARNING, SharedCache, SharedCacheLost
from isula_build.builder.result import (check_iidfile, committed_line, report_image_id,
                                        unused_args_warning)
from isula_build.builder.schedule import run_stages
from isula_build.builder.session import ClientSession, check_required
from isula_build.builder.stage import LayerFile, StageBase, StageResult, format_step, run_stage
from isula_build.builder.steptimes import StepClock
from isula_build.builder.workdir import create_work_dir, discard_work_dir
from isula_build.builder.contexts import LocalContext
from isula_build.distribution.lists import commit_build_list
from isula_build.dockerfile import BuildPlan, DockerfileError, parse_dockerfile
from isula_build.errors import (Cancelled, FailedPrecondition, InvalidArgument, IsulaBuildError,
                                Unimplemented, at_line)
from isula_build.distribution.pull import PullUnderWay
from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.image.platform import Platform, host_platform, parse_platforms
from isula_build.progress import Report
from isula_build.registry.names import parse_remote
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store
from isula_build.transports.base import ImageSource, LayerInfo
from isula_build.transports.copy import copy_image
from isula_build.transports.oci_layout import open_oci_layout
from isula_build.transports.reference import RegistryRef, output_compression
from isula_build.transports.store import StoreDestination

_log = logging.getLogger(__name__)

# Under the run root: the tmpfs of RUNs with secret or ssh mounts (secretmounts.py).
PRIVATE_DIR = "secrets"
OCI_FORMAT = "oci"
# Config fields the OCI image format has no place for (buildah drops them with a warning too).
_DOCKER_ONLY = ("Healthcheck", "OnBuild", "Shell")


@dataclass(frozen=True)
class BuildInput:
    """One build request, decoded (build args decrypted, times parsed)."""

    build_id: str
    dockerfile: str
    context_dir: Path
    build_args: dict[str, str] = field(default_factory=dict)
    output: str = ""
    proxy: bool = True
    build_time: datetime | None = None
    tag: str = ""
    cap_add: list[str] = field(default_factory=list)
    image_format: str = "docker"
    iidfile: str = ""  # absolute; the daemon writes the image ID there (builder/result.py)
    no_cache: bool = False  # --no-cache: serve nothing from the build cache (still fill it)
    compression: str = ""  # a registry output's layers: "gzip[:LEVEL]"/"zstd[:LEVEL]", "" gzip
    target: str = ""        # --target: a stage's name or index; "" is the last stage
    # --build-context NAME=VALUE (contexts.py): a directory, docker-image://, oci-layout://
    build_contexts: list[str] = field(default_factory=list)
    platform: str = ""  # --platform, comma-separated as given; "" = this machine's (platforms.py)
    # The shared cache (remotecache.py): REF[,mode=min|max] to export to, references to import.
    cache_to: str = ""
    cache_from: list[str] = field(default_factory=list)
    session: ClientSession = field(default_factory=ClientSession)  # --secret, --ssh


@dataclass(frozen=True)
class BuildEnvironment:
    """What the daemon gives every build."""

    store: Store
    data_root: Path
    run_root: Path
    runtime: str = "runc"
    mountopt: str = "nodev"
    daemon_env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # The daemon's registries.toml, policy.json, auth.json and certs.d: images missing from
    # `store` are pulled, and `-o docker://` / `oci://` push. None: neither.
    registry: RegistrySettings | None = None
    # The build cache (builder/cache.py); None: builds use none and save none.
    cache: BuildCache | None = None
    # How many stages may run at once (schedule.py); None: one per core.
    stage_jobs: int | None = None

    @property
    def tmp_dir(self) -> Path:
        return self.data_root / "tmp"


def build_image(request: BuildInput, env: BuildEnvironment, log: Callable[[str], None],
                cancel: threading.Event, progress: Report | None = None) -> str:
    """Builds the image; returns its ID. Raises IsulaBuildError with a message for the user.
    progress: told the bytes of blobs pulled and pushed and each step's time (a client
    watching on a terminal)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", request.build_id):
        raise InvalidArgument(f"invalid build ID {request.build_id!r}")
    output = parse_output(request.output)
    if isinstance(output, RegistryRef) and env.registry is None:
        raise Unimplemented(f"output {output.transport}:// needs the daemon's registry settings")
    compression = output_compression(output, request.compression, request.image_format)
    names = image_names(output, request.tag)
    check_iidfile(request.iidfile)
    main = local_context(request.context_dir)
    targets = parse_platforms(request.platform)
    check_output(output, targets)
    wanted: list[Platform | None] = list(targets) or [None]
    plans = [(target, parse_dockerfile(request.dockerfile, dict(request.build_args),
                                       request.target, platform=target)) for target in wanted]
    contexts = parse_build_contexts(request.build_contexts, plans[0][1])
    for warning in plans[0][1].warnings:
        log(warning)
    check_emulation(plans, binfmt_dir(env.daemon_env))
    if request.cache_to or request.cache_from:
        if env.cache is None:
            raise FailedPrecondition("--cache-to and --cache-from need the daemon's build cache")
        if len(plans) > 1:
            # A shared cache is for one platform (another's is ignored): which one would be
            # exported, or imported for each, is left for later.
            raise Unimplemented("--cache-to and --cache-from work with one --platform at a time")
        for ref in request.cache_from:
            parse_remote(ref)   # a malformed reference is refused before anything is built
    for _, plan in plans:
        check_required(plan, request.session)

    work = create_work_dir(env.tmp_dir, request.build_id)
    memo = StageMemo() if len(plans) > 1 else None
    shared = _Shared(request, env, main, contexts, cancel, progress, [])
    try:
        if env.cache is not None and (request.cache_to or request.cache_from):
            shared.remote = SharedCache(env.cache, env.registry,
                                        [] if request.no_cache else request.cache_from,
                                        request.cache_to, log, shared.holds.extend,
                                        push_layers=not isinstance(output, RegistryRef),
                                        platform=str(wanted[0]) if wanted[0] else None)
        if memo is None:
            target, plan = plans[0]
            image_id = _build_one(shared, plan, target, names, work, None, log)
            if output is not None:
                export(output, env.store, env.store.lookup(image_id), env.tmp_dir, log,
                       env.registry, progress, compression)
        else:
            built = []
            for target, plan in plans:
                assert target is not None
                folder = work / str(target).replace("/", "-")
                folder.mkdir()
                built.append((target, _build_one(shared, plan, target, [], folder, memo,
                                                 prefixed(log, target))))
            record = commit_build_list(env.store, names, built, request.image_format)
            image_id = record.id
            log(f"Committed manifest list of {len(built)} platforms with ID: {image_id}")
            if output is not None:
                export_list(output, env.store, record, env.tmp_dir, log, env.registry)
        shared.steps.finish()
        report_image_id(image_id, request.iidfile, log)
        if shared.remote is not None and shared.built is not None:
            shared.remote.finish()
            shared.remote.export(*shared.built)
        if env.cache is not None:
            _cache_after_build(env.cache)
        return image_id
    finally:
        unused = unused_args_warning(plans[0][1].unused_build_args)
        if unused:
            log(unused)
        if shared.remote is not None:
            shared.remote.close()
        if env.cache is not None:
            env.cache.release(shared.holds)
        discard_work_dir(work, env.store.layout.tmp)


@dataclass
class _Shared:
    """What the builds of a request's platforms share."""

    request: BuildInput
    env: BuildEnvironment
    main: LocalContext
    contexts: Mapping[str, NamedContext]
    cancel: threading.Event
    progress: Report | None
    holds: list[str]          # the cache's snapshots the builds mounted, released at the end
    steps: StepClock = field(init=False)
    remote: SharedCache | None = None   # --cache-from / --cache-to
    # What --cache-to exports once the image is out: the stages' last keys, the final key,
    # the image's created time by key, the stage layers written.
    built: tuple[dict[int, str], str, dict[str, str], dict[str, tuple[str, int, Path]]] | None \
        = None

    def __post_init__(self) -> None:
        self.steps = StepClock(self.progress)


def _build_one(shared: _Shared, plan: BuildPlan, target: Platform | None, names: list[str],
               work: Path, memo: StageMemo | None, log: Callable[[str], None]) -> str:
    """Builds the plan's target stage for one platform (None: without --platform) in `work`
    and commits it under `names`; returns the image ID."""
    request, env = shared.request, shared.env
    ctx = BuildRun(
        runtime=env.runtime, state_root=env.run_root / "runc",
        mountopt=env.mountopt, work_dir=work, context_dir=shared.main.path,
        ignore=shared.main.ignore,
        proxy_env={k: env.daemon_env[k] for k in PROXY_VARIABLES
                   if request.proxy and k in env.daemon_env},
        cap_add=list(request.cap_add), build_time=request.build_time, log=log,
        cancel=shared.cancel, escape=plan.escape, check_space=env.store.space.check,
        cache=env.cache, use_cache=not request.no_cache, data_root=env.data_root,
        progress=shared.progress, steps=shared.steps,
        # A stage only copied from needs no layer (a shared cache then downloads nothing).
        layer_stages={plan.target, *(s.base_stage for s in plan.stages
                                     if s.base_stage is not None)},
        session=request.session, private_root=env.run_root / PRIVATE_DIR)
    # Lower dirs come into being when first mounted or read: the base image's layers are
    # extracted then (a build served wholly by the cache extracts none), and a shared cache's
    # snapshots are fetched.
    remote = ctx.shared = shared.remote
    if remote is None:
        ctx.materialize = env.store.extract_layer_dirs
    else:
        def materialize(lowers: list[Path]) -> None:
            env.store.extract_layer_dirs(lowers)
            remote.materialize(lowers)
        ctx.materialize = materialize
    try:
        with StoreDestination(env.store, names) as destination:
            pins = _Pins(destination)
            ctx.find_layer = lambda diff_id: env.store.layer_blob_path(diff_id) \
                if pins.pin([diff_id]) else None
            final = _run_stages_shared(ctx, plan, env, pins, shared.contexts, target, memo)
            config = _final_config(final.config, request.image_format, log)
            platform = stage_platform(plan, plan.stages[plan.target], target)
            if platform is not None:
                set_platform(config, platform)
            created = request.build_time or _reused_created(ctx, final.key) or \
                datetime.now(timezone.utc)
            config_bytes = config.serialize(created, [layer.diff_id for layer in final.layers])
            with _BuiltImage(final.layers, config_bytes) as source:
                image_id = copy_image(source, destination, log, shared.progress)
    finally:
        shared.holds.extend(ctx.cache_holds)   # a later platform may mount them too
    # Only the target stage is committed: earlier stages have no image (and no ID) to name.
    log(committed_line(plan.stages[plan.target], image_id))
    _log.info("build %s: image %s", request.build_id, image_id)
    if env.cache is not None:
        _remember_created(env.cache, final.key, created)
    shared.built = (ctx.stage_ends, final.key, {final.key: created.isoformat()}, ctx.stage_layers)
    return image_id


def _reused_created(ctx: BuildRun, final_key: str) -> datetime | None:
    """A build served wholly from the cache gets the `created` time of the image the same
    steps made before, so a rebuild with nothing changed gives the same image ID (as docker)."""
    if ctx.cache is None or not ctx.use_cache or not ctx.all_cached:
        return None
    text = ctx.cache.image_created(final_key) or (
        ctx.shared.created(final_key) if ctx.shared is not None else None)
    return datetime.fromisoformat(text) if text else None


def _remember_created(cache: BuildCache, final_key: str, created: datetime) -> None:
    """Remembers the image's time for a rebuild."""
    try:
        cache.remember_image_created(final_key, created.isoformat())
    except OSError as exc:
        _log.warning("build cache: %s", exc)


def _cache_after_build(cache: BuildCache) -> None:
    """Evicts what the limits say once the build is done."""
    try:
        cache.collect()
        cache.seal_in_background()
    except OSError as exc:
        _log.warning("build cache: %s", exc)


def _step_numbers(plan: BuildPlan) -> list[int]:
    """The step number of each stage's FROM: every instruction of every stage counts."""
    numbers, n = [], 1
    for stage in plan.stages:
        numbers.append(n)
        n += 1 + len(stage.instructions)
    return numbers


class _Pins:
    """The store destination's pins, taken by stages that may run at once."""

    def __init__(self, destination: StoreDestination) -> None:
        self._destination = destination
        self._lock = threading.Lock()

    def pin(self, diff_ids: list[str]) -> bool:
        with self._lock:
            return self._destination.pin_layers(diff_ids)


class _KeyedLocks:
    """One lock per name: two stages FROM the same missing image pull it once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, name: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(name, threading.Lock())


def _load_layout(store: Store, named: NamedContext, log: Callable[[str], None]) -> ImageRecord:
    """The image of an oci-layout:// context, copied into the store as a pull would."""
    assert named.layout is not None
    with open_oci_layout(named.layout, named.tag) as source:
        with StoreDestination(store, []) as destination:
            image_id = copy_image(source, destination, log)
    return store.lookup(image_id)


def _run_stages_shared(ctx: BuildRun, plan: BuildPlan, env: BuildEnvironment, pins: _Pins,
                       contexts: Mapping[str, NamedContext], target: Platform | None,
                       memo: StageMemo | None) -> StageResult:
    """_run_stages; when a snapshot of an imported record cannot be fetched, once more without
    the shared cache (what was fetched by then is in the local cache and serves the rerun)."""
    try:
        return _run_stages(ctx, plan, env, pins, contexts, target, memo)
    except SharedCacheLost as exc:
        if ctx.shared is None:
            raise
        ctx.log(f"{WARNING}{exc}; building again without it")
        ctx.shared.disable()
        ctx.forget_executed()
        ctx.stage_ends.clear()
        return _run_stages(ctx, plan, env, pins, contexts, target, memo)


def _run_stages(ctx: BuildRun, plan: BuildPlan, env: BuildEnvironment, pins: _Pins,
                contexts: Mapping[str, NamedContext], target: Platform | None,
                memo: StageMemo | None) -> StageResult:
    """Runs the needed stages (schedule.py: independent ones at once) and returns the
    target's result. Everything a stage logs goes to its own log (ctx.for_stage)."""
    results: dict[int, StageResult] = {}
    numbers = _step_numbers(plan)
    store = env.store
    settings = ctx.cache_settings()
    locks = _KeyedLocks()
    layouts: dict[str, ImageRecord] = {}

    def root_key(base: str, platform: Platform | None = target) -> str:
        # The stage's platform too: FROM scratch (or one image) for two platforms differs.
        parts = (base, settings, str(platform or host_platform()))
        return "sha256:" + hashlib.sha256(repr(parts).encode()).hexdigest()

    def cache_note(ref: str, image_id: str) -> str:
        """Why a stage FROM `ref` would miss at its first step, compared with the last build."""
        if env.cache is None:
            return ""
        last = env.cache.base(ref)
        try:
            env.cache.remember_base(ref, image_id, settings)
        except OSError:
            pass
        if last is None:
            return ""
        if last.get("id") != image_id:
            return f"the base image {ref} is now a different image"
        if last.get("settings") != settings:
            return "the build settings differ (--proxy, --cap-add or the --build-static time)"
        return ""

    def record_base(ref: str, record: ImageRecord, platform: Platform | None) -> StageBase:
        # Pinned, so that a concurrent rm cannot take the lower dirs away mid-build (a layer
        # already gone fails when its dir is first extracted, ctx.materialize).
        pins.pin([layer.diff_id for layer in record.layers])
        return StageBase(
            RootStack([store.layer_dir_path(layer.diff_id) for layer in reversed(record.layers)],
                      "sha256:" + record.id),
            [LayerFile(layer.diff_id, layer.size, store.layer_blob_path(layer.diff_id))
             for layer in record.layers],
            StageConfig.from_bytes(store.config_bytes(record.id)),
            root_key("sha256:" + record.id, platform),
            cache_note(ref if platform is None else f"{ref} for {platform}", record.id))

    def image_base(ref: str, what: str, log: Callable[[str], None],
                   platform: Platform | None = target) -> StageBase:
        with locks(ref):
            record = find_base(env.store, env.registry, ref, what, log, platform, ctx.progress)
        return record_base(ref, record, platform)

    def started_base(ref: str, sctx: BuildRun, line: int, platform: Platform | None) -> StageBase:
        """image_base for a stage's FROM when the build imports a shared cache: a pull is
        started, and the stage goes on with the image's config while the layers come (its
        lookups, and the fetch of what they hit, overlap the pull). The stage's output is
        held until then (heldoutput.py); its `ready` waits, and raises the pull's error."""
        lock = locks(ref)
        lock.acquire()   # held until the layers are in: a stage FROM the same ref waits
        try:
            found = start_base(store, env.registry, ref, "base image", sctx.log, platform,
                               ctx.progress)
        except BaseException:
            lock.release()
            raise
        if not isinstance(found, PullUnderWay):
            lock.release()
            return record_base(ref, found, platform)
        pull = found
        try:
            config = StageConfig.from_bytes(pull.config)
        except BaseException:
            try:
                pull.wait()
            finally:
                lock.release()
            raise
        held = HeldOutput(sctx.log, sctx.steps)
        log, steps, materialize = sctx.log, sctx.steps, sctx.materialize
        sctx.log, sctx.steps = held.log, held.steps
        pull_done = False

        def ready() -> None:
            nonlocal pull_done
            if pull_done:
                return
            pull_done = True
            try:
                record = pull.wait()
            except IsulaBuildError as exc:
                held.drop()
                raise at_line(pull_failed(exc, "base image", ref), line) from None
            except BaseException:
                held.drop()
                raise
            finally:
                sctx.log, sctx.steps, sctx.materialize = log, steps, materialize
                lock.release()
            held.release()
            pins.pin([layer.diff_id for layer in record.layers])
            base.layers[:] = [LayerFile(layer.diff_id, layer.size,
                                        store.layer_blob_path(layer.diff_id))
                              for layer in record.layers]

        def materialize_when_ready(lowers: list[Path]) -> None:
            ready()
            materialize(lowers)

        sctx.materialize = materialize_when_ready
        base = StageBase(
            RootStack([store.layer_dir_path(diff_id) for diff_id in reversed(pull.diff_ids)],
                      "sha256:" + pull.image_id),
            [],   # filled by ready()
            config,
            root_key("sha256:" + pull.image_id, platform),
            cache_note(ref if platform is None else f"{ref} for {platform}", pull.image_id),
            ready=ready)
        return base

    def context_base(named: NamedContext, sctx: BuildRun) -> StageBase:
        if named.kind == "image":
            return image_base(named.image, f"image of --build-context {named.name}", sctx.log)
        if named.local is not None:
            return directory_base(sctx, named.local, root_key)
        with locks("oci-layout " + named.name):
            if named.name not in layouts:
                layouts[named.name] = _load_layout(store, named, sctx.log)
        return record_base("context " + named.name, layouts[named.name], target)

    def resolver(sctx: BuildRun) -> Callable[[str], RootStack]:
        def resolve_from(ref: str) -> RootStack:
            """What COPY --from=ref (or a RUN mount's from=ref) reads: a stage, a named
            context (a directory's stack has `local` set) or an image."""
            try:
                index = plan.stage(ref).index
            except DockerfileError:
                named = contexts.get(ref)
                if named is None:
                    return image_base(ref, "image of COPY --from", sctx.log).stack
                if named.local is not None:
                    return RootStack([named.local.path], "", named.local)
                return context_base(named, sctx).stack
            if index not in results:
                raise InvalidArgument(f"COPY --from={ref}: stage {ref} is not built before "
                                      "this one")
            return results[index].stack
        return resolve_from

    def run_one(index: int, sctx: BuildRun) -> StageResult:
        stage = plan.stages[index]
        sctx.check()
        sctx.steps.begin(numbers[index])  # the time of the step before goes out first
        sctx.log(format_step(numbers[index], " ".join(stage.from_.original.split())))
        platform = stage_platform(plan, stage, target)
        shared = memo.find(plan, stage, target) if memo is not None else None
        if shared is not None:
            result, built_for = shared
            pins.pin([layer.diff_id for layer in result.layers])
            sctx.log(f" ---> Using this stage as built for {built_for}")
            return result
        if stage.base_stage is not None:
            parent = results[stage.base_stage]
            base = StageBase(parent.stack, list(parent.layers),
                             parent.config.child([l.diff_id for l in parent.layers]), parent.key)
        elif stage.base_image is None:
            base = StageBase(RootStack([]), [], StageConfig.scratch(),
                             root_key("scratch", platform))
        else:
            named = contexts.get(stage.base_image)
            try:
                if named is not None:
                    base = context_base(named, sctx)
                elif ctx.shared is not None and ctx.shared.imports:
                    base = started_base(stage.base_image, sctx, stage.from_.line, platform)
                else:
                    base = image_base(stage.base_image, "base image", sctx.log, platform)
            except Cancelled:
                raise
            except IsulaBuildError as exc:
                raise at_line(exc, stage.from_.line) from None
        try:
            result = run_stage(sctx, stage, base, numbers[index] + 1, resolver(sctx))
        finally:
            if base.ready is not None:
                # Also when the stage failed first: the pull ends before the build does, its
                # error first if it failed too (it would have come first without the overlap).
                base.ready()
        if memo is not None:
            memo.keep(plan, stage, target, result)
        return result

    run_stages(plan, ctx, run_one, results, env.stage_jobs)
    return results[plan.target]


def _final_config(config: StageConfig, image_format: str, log: Callable[[str], None]) -> StageConfig:
    if image_format == OCI_FORMAT:
        for key in _DOCKER_ONLY:
            if config.config.pop(key, None) is not None:
                log(f"[Warning] {key} is not supported by the OCI image format and was dropped; "
                    "build with --format docker to keep it")
    return config


class _BuiltImage(ImageSource):
    """The image a build made: layer tars on disk (store blobs and the build's own) and the
    config. Layers are plain files this daemon wrote and hashed, so writers may copy them in
    the kernel; the build's own come with their verified facts, so the store links them in."""

    def __init__(self, layers: list[LayerFile], config: bytes) -> None:
        self._layers = layers
        self._files = {layer.diff_id: layer for layer in layers}
        self._config = config

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(layer.diff_id, layer.size) for layer in self._layers]

    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        assert layer.diff_id is not None
        return open(self._files[layer.diff_id].path, "rb")

    def verified_file(self, layer: LayerInfo) -> VerifiedLayerFile | None:
        assert layer.diff_id is not None
        return self._files[layer.diff_id].verified

    def config_bytes(self) -> bytes:
        return self._config
