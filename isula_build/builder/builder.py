"""A whole build request: check → plan → stages → commit → outputs.

Everything that can be refused without building (output specs, the tag, the context, the
Dockerfile, .dockerignore) is refused first. An image FROM or COPY --from names that the store
lacks is pulled (through the daemon's registry settings) when the stage needs it. Each needed
stage then runs in dependency order
(plan.needed(); the plan's levels would let independent stages run in parallel later). Only
the target stage is committed — through copy_image into the store, which prints the copy
lines — and tagged; earlier stages leave nothing behind: their uppers and layer tars live in
the build's work dir (`<data_root>/tmp/build-<id>`), removed at the end whatever happens (moved
out of the way at once, deleted on a thread; see _discard_work_dir), and
blobs the store writer made for them are dropped when the writer closes.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from isula_build.builder.config import StageConfig
from isula_build.builder.executor import PROXY_VARIABLES, BuildRun, RootStack
from isula_build.builder.outputs import export, parse_output
from isula_build.builder.stage import LayerFile, StageBase, StageResult, format_step, run_stage
from isula_build.distribution.pull import pull_image
from isula_build.dockerfile import BuildPlan, DockerfileError, DockerignoreMatcher, parse_dockerfile
from isula_build.errors import (Cancelled, InvalidArgument, IsulaBuildError, NotFound, Unimplemented,
                                at_line, reworded)
from isula_build.image.reference import normalize_name
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store
from isula_build.transports.base import ImageSource, LayerInfo
from isula_build.transports.copy import copy_image
from isula_build.transports.reference import RegistryRef
from isula_build.transports.store import StoreDestination

_log = logging.getLogger(__name__)

MAX_IGNORE_FILE = 1024 * 1024
DOCKERIGNORE = ".dockerignore"
OCI_FORMAT = "oci"
# Config fields the OCI image format has no place for (buildah drops them with a warning too).
_DOCKER_ONLY = ("Healthcheck", "OnBuild", "Shell")
_WORK_PREFIX = "build-"
# ext4 (no journal) passes over inodes freed this recently (30 s, 35 while not yet written back).
RECENTLY_DELETED_SECONDS = 35.0
# linux/fs.h: the inode flags ioctls and "top of directory hierarchy" (chattr +T)
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


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

    @property
    def tmp_dir(self) -> Path:
        return self.data_root / "tmp"


def work_dir_of(env: BuildEnvironment, build_id: str) -> Path:
    return env.tmp_dir / f"{_WORK_PREFIX}{build_id}"


def build_image(request: BuildInput, env: BuildEnvironment, log: Callable[[str], None],
              cancel: threading.Event) -> str:
    """Builds the image; returns its ID. Raises IsulaBuildError with a message for the user."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", request.build_id):
        raise InvalidArgument(f"invalid build ID {request.build_id!r}")
    output = parse_output(request.output)
    if isinstance(output, RegistryRef) and env.registry is None:
        raise Unimplemented(f"output {output.transport}:// needs the daemon's registry settings")
    names = [normalize_name(request.tag)] if request.tag else []
    context_dir = _check_context(request.context_dir)
    ignore = _read_dockerignore(context_dir)
    plan = parse_dockerfile(request.dockerfile, dict(request.build_args))
    for warning in plan.warnings:
        log(warning)

    work = work_dir_of(env, request.build_id)
    env.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _make_work_dir(work)
    ctx = BuildRun(
        runtime=env.runtime, state_root=env.run_root / "runc",
        mountopt=env.mountopt, work_dir=work, context_dir=context_dir, ignore=ignore,
        proxy_env={k: env.daemon_env[k] for k in PROXY_VARIABLES
                   if request.proxy and k in env.daemon_env},
        cap_add=list(request.cap_add), build_time=request.build_time, log=log, cancel=cancel,
        escape=plan.escape)
    try:
        with StoreDestination(env.store, names) as destination:
            final = _run_stages(ctx, plan, env, destination)
            ctx.check()
            config = _final_config(final.config, request.image_format, log)
            created = request.build_time or datetime.now(timezone.utc)
            config_bytes = config.serialize(created, [layer.diff_id for layer in final.layers])
            with _BuiltImage(final.layers, config_bytes) as source:
                image_id = copy_image(source, destination, log)
        _log.info("build %s: image %s", request.build_id, image_id)
        if output is not None:
            export(output, env.store, env.store.lookup(image_id), env.tmp_dir, log, env.registry)
        return image_id
    finally:
        _discard_work_dir(work, env.store)


def _make_work_dir(work: Path) -> None:
    """Creates the build's work dir (0700) as the top of a directory hierarchy (FS_TOPDIR_FL).

    ext4 then puts it in a block group of its own choosing (the Orlov allocator) rather than
    next to its parent, and the build's files go with it. Next to the parent lie the inodes
    that earlier builds' work dirs just freed, and ext4 without a journal passes over inodes
    deleted in the last half minute one by one: creating the 2,000 files of a COPY there took
    ~0.8 ms each instead of ~25 µs. Filesystems without the flag just get a plain directory.
    """
    work.mkdir(mode=0o700)
    try:
        fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        flags = array.array("l", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
        flags[0] |= _FS_TOPDIR_FL
        fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
    except OSError:
        pass  # not ext2/3/4 (tmpfs, overlay…): placement is only an optimization
    finally:
        os.close(fd)


def _discard_work_dir(work: Path, store: Store) -> None:
    """Removes the build's work dir without making the client wait for thousands of unlinks.

    The tree leaves `<data_root>/tmp` at once, renamed into the store's tmp/ (emptied at every
    start-up, so a crash midway leaves nothing for good), and is deleted on a thread of its
    own (_remove_in_two_passes). A work dir with a mount still inside (an unmount failed) is
    removed here and now, as before: sweep_stale_builds only looks for mounts under
    `<data_root>/tmp`.
    """
    prefix = str(work) + "/"
    with open("/proc/self/mountinfo") as f:
        # Field 5 is the mount point, with space, tab, newline and backslash as octal escapes.
        mounted = any(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                             line.split()[4]).startswith(prefix) for line in f)
    if mounted:
        shutil.rmtree(work, ignore_errors=True)
        return
    doomed = store.layout.tmp / f"delete-{work.name}-{uuid.uuid4().hex}"
    try:
        os.rename(work, doomed)
    except FileNotFoundError:
        return
    except OSError:  # the store's tmp/ on another filesystem, say
        shutil.rmtree(work, ignore_errors=True)
        return
    threading.Thread(target=_remove_in_two_passes, args=(doomed,), name=f"remove-{work.name}",
                     daemon=True).start()


def _remove_in_two_passes(tree: Path) -> None:
    """Removes everything but the directories at once (the space is back), the directories
    RECENTLY_DELETED_SECONDS later.

    ext4 without a journal will not reuse an inode freed in the last half minute and passes
    over each such inode, one by one, for every new inode it allocates in that block group:
    right after a removed build tree, creating the next build's 2,000 files there cost ~0.8 ms
    each instead of ~25 µs. Work dirs are placed as top-level directories (_make_work_dir), in
    the block group with the fewest directories; while the removed tree's directories remain,
    that is another group, and by the time they go their files' inodes are free to reuse.
    """
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            try:
                os.unlink(os.path.join(dirpath, name))
            except OSError:
                pass  # shutil.rmtree below gets another try
    time.sleep(RECENTLY_DELETED_SECONDS)
    shutil.rmtree(tree, ignore_errors=True)


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
                     log: Callable[[str], None]) -> ImageRecord:
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
        return pull_image(env.store, env.registry, ref, log)
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

    def image_base(ref: str, what: str) -> StageBase:
        record = _local_or_pulled(env, ref, what, ctx.log)
        for layer in record.layers:
            # Pins the layer: a concurrent rm cannot take the lower dirs away mid-build.
            destination.has_layer(LayerInfo(layer.diff_id, layer.size))
        return StageBase(
            RootStack([store.layer_dir(layer.diff_id) for layer in reversed(record.layers)]),
            [LayerFile(layer.diff_id, layer.size, store.layer_blob_path(layer.diff_id))
             for layer in record.layers],
            StageConfig.from_bytes(store.config_bytes(record.id)),
            "sha256:" + record.id)

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
        ctx.log(format_step(numbers[index], " ".join(stage.from_.original.split())))
        if stage.base_stage is not None:
            parent = results[stage.base_stage]
            base = StageBase(parent.stack, list(parent.layers),
                             parent.config.child([l.diff_id for l in parent.layers]), parent.key)
        elif stage.base_image is None:
            base = StageBase(RootStack([]), [], StageConfig.scratch(), "scratch")
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
    the kernel."""

    def __init__(self, layers: list[LayerFile], config: bytes) -> None:
        self._layers = layers
        self._paths = {layer.diff_id: layer.path for layer in layers}
        self._config = config

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo(layer.diff_id, layer.size) for layer in self._layers]

    def open_layer(self, layer: LayerInfo) -> BinaryIO:
        assert layer.diff_id is not None
        return open(self._paths[layer.diff_id], "rb")

    def config_bytes(self) -> bytes:
        return self._config


def sweep_stale_builds(data_root: Path) -> list[Path]:
    """Unmounts and removes what builds of a daemon that died left under `<data_root>/tmp`.

    Call at daemon start-up, before serving builds. Returns the work dirs removed.
    """
    tmp = Path(data_root) / "tmp"
    if not tmp.is_dir():
        return []
    prefix = str(tmp) + "/"
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for target in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
        _detach(Path(target))
    removed = []
    for entry in tmp.iterdir():
        # Work dirs, and the archives that -o docker-daemon: and -o isulad: hand over.
        if entry.name.startswith((_WORK_PREFIX, "docker-daemon-", "isulad-")):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _detach(target: Path) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    libc.umount2(str(target).encode(), mnt_detach)
