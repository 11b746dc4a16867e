"""A whole build request: check → plan → stages → commit → outputs.

Everything that can be refused without building (output specs, the tag, the context, the
Dockerfile, .dockerignore) is refused first. An image FROM or COPY --from names that the store
lacks is pulled (through the daemon's registry settings) when the stage needs it. Each needed
stage then runs in dependency order
(plan.needed(); the plan's levels would let independent stages run in parallel later). Only
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

from isula_build.builder.cache import BuildCache
from isula_build.builder.config import StageConfig
from isula_build.builder.executor import PROXY_VARIABLES, BuildRun, RootStack
from isula_build.builder.outputs import export, image_names, parse_output
from isula_build.builder.result import (check_iidfile, committed_line, report_image_id,
                                        unused_args_warning)
from isula_build.builder.session import ClientSession, check_required
from isula_build.builder.stage import LayerFile, StageBase, StageResult, format_step, run_stage
from isula_build.builder.steptimes import StepClock
from isula_build.builder.workdir import create_work_dir, discard_work_dir
from isula_build.distribution.pull import pull_image
from isula_build.dockerfile import BuildPlan, DockerfileError, DockerignoreMatcher, parse_dockerfile
from isula_build.errors import (Cancelled, InvalidArgument, IsulaBuildError, NotFound, Unimplemented,
                                at_line, reworded)
from isula_build.image.layerfile import VerifiedLayerFile
from isula_build.progress import Report
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store
from isula_build.transports.base import ImageSource, LayerInfo
from isula_build.transports.copy import copy_image
from isula_build.transports.reference import RegistryRef, output_compression
from isula_build.transports.store import StoreDestination

_log = logging.getLogger(__name__)

MAX_IGNORE_FILE = 1024 * 1024
# Under the run root: the tmpfs of RUNs with secret or ssh mounts (secretmounts.py).
PRIVATE_DIR = "secrets"
DOCKERIGNORE = ".dockerignore"
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
    context_dir = _check_context(request.context_dir)
    ignore = _read_dockerignore(context_dir)
    plan = parse_dockerfile(request.dockerfile, dict(request.build_args))
    for warning in plan.warnings:
        log(warning)
    check_required(plan, request.session)

    work = create_work_dir(env.tmp_dir, request.build_id)
    ctx = BuildRun(
        runtime=env.runtime, state_root=env.run_root / "runc",
        mountopt=env.mountopt, work_dir=work, context_dir=context_dir, ignore=ignore,
        proxy_env={k: env.daemon_env[k] for k in PROXY_VARIABLES
                   if request.proxy and k in env.daemon_env},
        cap_add=list(request.cap_add), build_time=request.build_time, log=log, cancel=cancel,
        escape=plan.escape, check_space=env.store.space.check,
        cache=env.cache, use_cache=not request.no_cache, data_root=env.data_root,
        progress=progress, steps=StepClock(progress),
        session=request.session, private_root=env.run_root / PRIVATE_DIR)
    try:
        with StoreDestination(env.store, names) as destination:
            ctx.find_layer = lambda diff_id: env.store.layer_blob_path(diff_id) \
                if destination.pin_layers([diff_id]) else None
            final = _run_stages(ctx, plan, env, destination)
            ctx.check()
            config = _final_config(final.config, request.image_format, log)
            created = request.build_time or _reused_created(ctx, final.key) or \
                datetime.now(timezone.utc)
            config_bytes = config.serialize(created, [layer.diff_id for layer in final.layers])
            with _BuiltImage(final.layers, config_bytes) as source:
                image_id = copy_image(source, destination, log, progress)
        # Only the target stage is committed: earlier stages have no image (and no ID) to name.
        log(committed_line(plan.stages[plan.target], image_id))
        _log.info("build %s: image %s", request.build_id, image_id)
        if output is not None:
            export(output, env.store, env.store.lookup(image_id), env.tmp_dir, log, env.registry,
                   progress, compression)
        ctx.steps.finish()
        report_image_id(image_id, request.iidfile, log)
        if env.cache is not None:
            _cache_after_build(env.cache, final.key, created)
        return image_id
    finally:
        unused = unused_args_warning(plan.unused_build_args)
        if unused:
            log(unused)
        if env.cache is not None:
            env.cache.release(ctx.cache_holds)
        discard_work_dir(work, env.store.layout.tmp)


def _reused_created(ctx: BuildRun, final_key: str) -> datetime | None:
    """A build served wholly from the cache gets the `created` time of the image the same
    steps made before, so a rebuild with nothing changed gives the same image ID (as docker)."""
    if ctx.cache is None or not ctx.use_cache or not ctx.all_cached:
        return None
    text = ctx.cache.image_created(final_key)
    return datetime.fromisoformat(text) if text else None


def _cache_after_build(cache: BuildCache, final_key: str, created: datetime) -> None:
    """Remembers the image's time for a rebuild, then evicts what the limits say."""
    try:
        cache.remember_image_created(final_key, created.isoformat())
        cache.collect()
        cache.seal_in_background()
    except OSError as exc:
        _log.warning("build cache: %s", exc)


def _check_context(path: Path) -> Path:
    if not path.is_absolute():
        raise InvalidArgument(f'context directory "{path}" must be an absolute path')
    if not path.is_dir():
        raise NotFound(f"context directory {path} does not exist or is not a directory")
    return path


def _read_dockerignore(context_dir: Path) -> DockerignoreMatcher | None:
    path = context_dir / DOCKERIGNORE
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IGNORE_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_IGNORE_FILE:
        raise InvalidArgument(f"{DOCKERIGNORE} of the context is larger than 1 MiB")
    return DockerignoreMatcher.from_text(data.decode("utf-8", "replace"))


def _step_numbers(plan: BuildPlan) -> list[int]:
    """The step number of each stage's FROM: every instruction of every stage counts."""
    numbers, n = [], 1
    for stage in plan.stages:
        numbers.append(n)
        n += 1 + len(stage.instructions)
    return numbers


def _local_or_pulled(env: BuildEnvironment, ref: str, what: str,
                     log: Callable[[str], None], progress: Report | None) -> ImageRecord:
    """The stored image `ref`, pulled first when the store lacks it and there are registry
    settings to pull with."""
    try:
        return env.store.lookup(ref)
    except NotFound:
        if env.registry is None:
            raise NotFound(f'{what} "{ref}" not found in the local store (pull it first, or '
                           f"load or import it)") from None
    try:
        # The copy lines go to the build log; a short name is stored under its full name,
        # so the returned record (not a second lookup of `ref`) is the image.
        return pull_image(env.store, env.registry, ref, log, progress)
    except Cancelled:
        raise
    except IsulaBuildError as exc:
        raise reworded(exc, f'{what} "{ref}" not found in the local store, and pulling it '
                            f"failed: {exc}") from None


def _run_stages(ctx: BuildRun, plan: BuildPlan, env: BuildEnvironment,
                destination: StoreDestination) -> StageResult:
    results: dict[int, StageResult] = {}
    numbers = _step_numbers(plan)
    store = env.store
    settings = ctx.cache_settings()

    def root_key(base: str) -> str:
        return "sha256:" + hashlib.sha256(repr((base, settings)).encode()).hexdigest()

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

    def image_base(ref: str, what: str) -> StageBase:
        record = _local_or_pulled(env, ref, what, ctx.log, ctx.progress)
        # Pinned, so that a concurrent rm cannot take the lower dirs away mid-build (a layer
        # already gone fails at layer_dir below).
        destination.pin_layers([layer.diff_id for layer in record.layers])
        return StageBase(
            RootStack([store.layer_dir(layer.diff_id) for layer in reversed(record.layers)],
                      "sha256:" + record.id),
            [LayerFile(layer.diff_id, layer.size, store.layer_blob_path(layer.diff_id))
             for layer in record.layers],
            StageConfig.from_bytes(store.config_bytes(record.id)),
            root_key("sha256:" + record.id), cache_note(ref, record.id))

    def resolve_from(ref: str) -> RootStack:
        try:
            index = plan.stage(ref).index
        except DockerfileError:
            return image_base(ref, "image of COPY --from").stack
        if index not in results:
            raise InvalidArgument(f"COPY --from={ref}: stage {ref} is not built before this one")
        return results[index].stack

    for index in plan.needed():
        stage = plan.stages[index]
        ctx.check()
        ctx.steps.begin(numbers[index])  # the time of the step before goes out first
        ctx.log(format_step(numbers[index], " ".join(stage.from_.original.split())))
        if stage.base_stage is not None:
            parent = results[stage.base_stage]
            base = StageBase(parent.stack, list(parent.layers),
                             parent.config.child([l.diff_id for l in parent.layers]), parent.key)
        elif stage.base_image is None:
            base = StageBase(RootStack([]), [], StageConfig.scratch(), root_key("scratch"))
        else:
            try:
                base = image_base(stage.base_image, "base image")
            except Cancelled:
                raise
            except IsulaBuildError as exc:
                raise at_line(exc, stage.from_.line) from None
        results[index] = run_stage(ctx, stage, base, numbers[index] + 1, resolve_from)
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
