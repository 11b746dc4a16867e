"""One stage from FROM to its layer: mount, ONBUILD triggers, steps, then one layer tar.

The stage's root is an overlay of its base (an image's layer dirs, or an earlier stage's upper
over that stage's lowers) with a fresh upper dir. After the last step the overlay is unmounted,
directories overlayfs merely copied up are pruned from the upper, and what is left becomes the
stage's one new layer — or none when nothing changed (as docker adds no layer for a stage of
metadata instructions only). The upper stays on disk until the build ends: a later stage built
FROM this one stacks it as a lower dir, and COPY --from mounts it.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from isula_build.builder.layertar import write_layer_file
from isula_build.builder.config import StageConfig, now_utc
from isula_build.builder.executor import BuildRun, RootStack, StepExecutor
from isula_build.builder.mounts import OverlayMount
from isula_build.builder.stagecache import MISS_PREFIX, USING_CACHE, StageCache
from isula_build.dockerfile import Stage, Step, parse_trigger
from isula_build.errors import IsulaBuildError
from isula_build.image.layerfile import VerifiedLayerFile

_log = logging.getLogger(__name__)

_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


@dataclass(frozen=True)
class LayerFile:
    """A layer of the image being built, as an uncompressed tar file on disk."""

    diff_id: str
    size: int
    path: Path  # a store blob, or a layer tar this build wrote into its work dir
    # For a layer tar this build wrote: its facts, checked as it was written, for the store.
    verified: VerifiedLayerFile | None = None


@dataclass
class StageBase:
    """What a stage starts from."""

    stack: RootStack            # its root filesystem, top first
    layers: list[LayerFile]     # bottom first
    config: StageConfig         # a private copy the stage may change
    key: str                    # the parent key of the first step
    cache_note: str = ""        # why the first step missed when no build ran it from this base


@dataclass
class StageResult:
    index: int
    stack: RootStack            # the finished root: the stage's upper over its base
    layers: list[LayerFile]     # the base's layers and the stage's own, if any
    config: StageConfig
    key: str                    # key of the last step


def format_step(number: int, text: str) -> str:
    """`STEP  1: FROM busybox`: the number right-aligned in two columns, as the original."""
    return f"STEP {number:2d}: {text}"


def run_stage(ctx: BuildRun, stage: Stage, base: StageBase, first_step: int,
              resolve_from: Callable[[str], RootStack]) -> StageResult:
    """Runs the steps of `stage` (its FROM line was logged by the caller as step first_step-1).
    With a build cache, the steps are looked up first (stagecache.py): the longest prefix of
    hits is restored, the rest executed."""
    config = base.config
    triggers = [parse_trigger(text, escape=ctx.escape) for text in config.onbuild]
    config.clear_onbuild()
    # One pass: a Step's environment is a view valid while the iteration stands on it.
    steps = enumerate(stage.resolve(config.env, triggers))
    folder = ctx.new_dir(f"stage{stage.index}")
    upper, work, merged = folder / "upper", folder / "work", folder / "merged"
    key = base.key
    layer_entry: int | None = None  # index in config.new_history of the last file change
    executor = StepExecutor(ctx, merged, config, resolve_from)
    cache = StageCache(ctx.cache, ctx.use_cache, base.cache_note) if ctx.cache else None
    if triggers:
        ctx.log(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")

    def announce(i: int, step: Step) -> str:
        text = _one_line(step.instruction.original)
        if i >= len(triggers):  # the base image's triggers come first, without STEP lines
            # Begun first: the time of the step before goes out ahead of this STEP line.
            ctx.steps.begin(first_step + i - len(triggers))
            ctx.log(format_step(first_step + i - len(triggers), text))
        return text

    pending: tuple[int, Step, str, str] | None = None   # the first step that missed
    for i, step in steps:
        text = announce(i, step)
        entry, reason = None, ""
        if cache is not None:
            try:
                found = executor.key(step, key)
            except IsulaBuildError:
                found = None  # executing it reports the error
            entry, reason = cache.lookup(step, text, key, found, i)
        if entry is None:
            pending = (i, step, text, reason)
            break
        if i >= len(triggers):
            ctx.log(USING_CACHE)
        key = entry.key
    restored = cache.restore(upper, config) if cache is not None else None
    if restored is not None:
        layer_entry = restored.layer_entry

    def execute(i: int, step: Step, text: str) -> None:
        nonlocal key, layer_entry
        ctx.all_cached = False
        step_key, changed = executor.execute(step, key)
        if changed:
            layer_entry = len(config.new_history) - 1
        if cache is not None:
            cache.save(upper, key, step, text, i, step_key, changed, config, layer_entry)
        key = step_key.key

    with OverlayMount(base.stack.lowers, upper, work, merged, mountopt=ctx.mountopt):
        if pending is not None:
            i, step, text, reason = pending
            if reason:
                ctx.log(MISS_PREFIX + reason)
            execute(i, step, text)
            for i, step in steps:
                execute(i, step, announce(i, step))
    ctx.steps.end()  # writing the stage's layer below is no step's time
    shutil.rmtree(work, ignore_errors=True)
    prune_unchanged_dirs(upper, base.stack.lowers)
    layers = list(base.layers)
    if any(upper.iterdir()):
        ctx.check()  # the last step may have left no room for its layer tar
        path = folder / "layer.tar"
        epoch = int(ctx.build_time.timestamp()) if ctx.build_time else None
        stats = write_layer_file(upper, path, mtime=epoch)
        layers.append(LayerFile(stats.diff_id, stats.size, path, stats.verified))
        if layer_entry is None:
            config.add_history("stage changes", ctx.build_time or now_utc(), empty_layer=False)
        else:
            config.mark_layer(layer_entry)
        _log.debug("stage %d: layer %s (%d bytes)", stage.index, stats.diff_id, stats.size)
    return StageResult(stage.index, RootStack([upper, *base.stack.lowers], key), layers, config,
                       key)


def _one_line(text: str) -> str:
    """The instruction as written, continuation lines joined (the log has one line a step)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def prune_unchanged_dirs(upper: Path, lowers: list[Path]) -> None:
    """Removes directories of `upper` that overlayfs only copied up: empty, not opaque, and
    with the mode, owner and mtime of the directory they cover (docker's RUN layer has no
    `etc/` when a command changed nothing in /etc)."""

    def covered(rel: str) -> os.stat_result | None:
        for lower in lowers:
            try:
                return os.lstat(lower / rel)
            except FileNotFoundError:
                continue
        return None

    def prune(path: Path, rel: str) -> None:
        if not rel or any(os.scandir(path)) or _opaque(path):
            return
        mine, theirs = os.lstat(path), covered(rel)
        if theirs is not None and stat.S_ISDIR(theirs.st_mode) and \
                (mine.st_mode, mine.st_uid, mine.st_gid, mine.st_mtime_ns) == \
                (theirs.st_mode, theirs.st_uid, theirs.st_gid, theirs.st_mtime_ns):
            os.rmdir(path)

    # Children before their parent (a parent can only go once it is empty), with a stack of
    # our own rather than recursion: a RUN can make a tree deeper than Python's recursion limit.
    stack: list[tuple[Path, str, bool]] = [(upper, "", False)]   # (dir, rel, children done)
    while stack:
        path, rel, children_done = stack.pop()
        if children_done:
            prune(path, rel)
            continue
        stack.append((path, rel, True))
        stack.extend((Path(entry.path), f"{rel}/{entry.name}" if rel else entry.name, False)
                     for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False))


def _opaque(path: Path) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


