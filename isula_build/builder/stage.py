"""One stage from FROM to its layer: ONBUILD triggers, steps, then one layer tar.

The stage's steps run on a StepRoot (steproot.py): each step that may change files on a fresh
upper dir stacked over the earlier steps' (its snapshots) and the stage's base (an image's layer
dirs, or an earlier stage's snapshots over that stage's lowers). The stage's one new layer is
the squash of its snapshots — or none when nothing changed (as docker adds no layer for a stage
of metadata instructions only). The snapshots stay on disk until the build ends (in the build
cache, or in the work dir without one): a later stage built FROM this one stacks them as lower
dirs, and COPY --from mounts them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from isula_build.builder.layertar import write_layer_file
from isula_build.builder.config import StageConfig, now_utc
from isula_build.builder.executor import BuildRun, RootStack, StepExecutor, StepKey
from isula_build.builder.stagecache import MISS_PREFIX, USING_CACHE, StageCache
from isula_build.builder.steproot import StepRoot
from isula_build.dockerfile import Stage, Step, parse_trigger
from isula_build.dockerfile.instructions import (
    AddInstruction,
    CopyInstruction,
    RunInstruction,
    WorkdirInstruction,
)
from isula_build.errors import IsulaBuildError
from isula_build.image.layerfile import VerifiedLayerFile

_log = logging.getLogger(__name__)

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
    # A base image still being pulled: called before the stage reads its root or its
    # layers, it waits for the pull and fills `layers` (builder.py, heldoutput.py).
    ready: Callable[[], None] | None = None


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
    hits is served, its snapshots the lower dirs the rest of the steps run on."""
    config = base.config
    triggers = [parse_trigger(text, escape=ctx.escape) for text in config.onbuild]
    config.clear_onbuild()
    # One pass: a Step's environment is a view valid while the iteration stands on it.
    steps = enumerate(stage.resolve(config.env, triggers))
    folder = ctx.new_dir(f"stage{stage.index}")
    key = base.key
    layer_entry: int | None = None  # index in config.new_history of the last file change
    root = StepRoot(folder, base.stack.lowers, ctx.mountopt, ctx.materialize)
    executor = StepExecutor(ctx, root.merged, config, resolve_from)
    layer_needed = ctx.layer_stages is None or stage.index in ctx.layer_stages
    cache = StageCache(ctx.cache, ctx.use_cache, base.cache_note, ctx.hold, ctx.shared,
                       layer_needed) if ctx.cache else None
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
    restored = cache.restore(config) if cache is not None else None
    if restored is not None:
        snapshots, hit = restored
        root.tops = snapshots
        layer_entry = hit.layer_entry

    def execute(i: int, step: Step, text: str, reason: str = "") -> None:
        nonlocal key, layer_entry
        ctx.mark_executed()
        ins = step.instruction
        if isinstance(ins, (CopyInstruction, AddInstruction)) and ins.link:
            step_key = run_linked(i, step, reason)
        else:
            if reason:
                ctx.log(MISS_PREFIX + reason)
            if isinstance(ins, _ON_THE_ROOT):
                root.mount()
            step_key, changed = executor.execute(step, key)
            if changed:
                layer_entry = len(config.new_history) - 1
                upper = root.seal()
                if upper is not None:
                    root.push(cache.adopt(upper) if cache is not None else upper)
        if cache is not None:
            cache.save(key, step, text, i, step_key, config, layer_entry)
        key = step_key.key

    def run_linked(i: int, step: Step, reason: str) -> StepKey:
        """A COPY/ADD --link step: its files go into a directory of their own, stacked over
        the root as the step's snapshot, so they do not depend on what is below; the cache
        serves them by the step's parent-free key even when the steps before it changed."""
        nonlocal layer_entry
        layer_entry = len(config.new_history)   # the entry add_history/execute adds
        try:
            known = executor.key(step, key) if cache is not None else None
        except IsulaBuildError:
            known = None   # executing it reports the error
        served = cache.linked(known.link) if cache is not None and known and known.link else None
        if known is not None and served is not None:
            if i >= len(triggers):
                ctx.log(USING_CACHE)
            executor.add_history(step)
            root.push(served)
            return known
        if reason:
            ctx.log(MISS_PREFIX + reason)
        root.mount()   # --chown names are looked up in the stage's root
        into = folder / f"link-{i}"
        step_key, _ = executor.execute(step, key, link_into=into)
        root.seal()    # nothing of the root changed
        if any(os.scandir(into)):
            root.push(cache.adopt(into) if cache is not None else into)
            if cache is not None and step_key.link:
                cache.remember_linked(step_key.link)
        return step_key

    try:
        if pending is not None:
            i, step, text, reason = pending
            execute(i, step, text, reason)
            for i, step in steps:
                execute(i, step, announce(i, step))
    finally:
        root.close()
    ctx.steps.end()  # writing the stage's layer below is no step's time
    ctx.stage_ends[stage.index] = key
    # A stage only copied from has no use for its layer: none is written (and a stage served
    # from a shared cache then downloads nothing).
    own = _stage_layer(ctx, cache, stage, key, root, folder, pending is None) \
        if root.tops and layer_needed else None
    if base.ready is not None:   # the stage layer above was fetched while the base came
        base.ready()
    layers = list(base.layers)
    if own is not None:
        layers.append(own)
        if layer_entry is None:
            config.add_history("stage changes", ctx.build_time or now_utc(), empty_layer=False)
        else:
            config.mark_layer(layer_entry)
    return StageResult(stage.index, RootStack(root.lowers, key), layers, config, key)


# The instructions that read or change the root filesystem (the others only change the config).
_ON_THE_ROOT = (RunInstruction, CopyInstruction, AddInstruction, WorkdirInstruction)


def _stage_layer(ctx: BuildRun, cache: StageCache | None, stage: Stage, key: str,
                 root: StepRoot, folder: Path, served: bool) -> LayerFile:
    """The stage's one layer: the squash of its steps' snapshots. When an earlier build made
    it from the same snapshots and the store still has it, that one, without reading a file.
    served: every step came from the cache."""
    known = cache.layer(key) if cache is not None else None
    if known is not None:
        path = ctx.find_layer(known[0])
        if path is not None:
            _log.debug("stage %d: layer %s from the cache", stage.index, known[0])
            ctx.stage_layers[key] = (known[0], known[1], path)
            if ctx.shared is not None:
                ctx.shared.layer_made(known[0], known[1], path, root.tops,
                                      ctx.build_time is not None)
            return LayerFile(known[0], known[1], path)
    ctx.check()  # the last step may have left no room for its layer tar
    folder.mkdir(parents=True, exist_ok=True)   # all steps served: nothing was mounted here
    path = folder / "layer.tar"
    # A stage served wholly from a shared cache downloads the layer it made there (no more
    # bytes than the image's), not the snapshots it was squashed from.
    fetched = ctx.shared.fetch_stage_layer(key, path) \
        if ctx.shared is not None and cache is not None and served else None
    if fetched is not None:
        layer = LayerFile(fetched.diff_id, fetched.size, path, fetched)
    else:
        ctx.materialize(root.lowers)
        epoch = int(ctx.build_time.timestamp()) if ctx.build_time else None
        stats = write_layer_file(root.tops, path, base=root.base, mtime=epoch)
        layer = LayerFile(stats.diff_id, stats.size, path, stats.verified)
    if cache is not None:
        cache.remember_layer(key, layer.diff_id, layer.size)
    ctx.stage_layers[key] = (layer.diff_id, layer.size, path)
    if ctx.shared is not None:
        ctx.shared.layer_made(layer.diff_id, layer.size, path, root.tops,
                              ctx.build_time is not None)
    _log.debug("stage %d: layer %s (%d bytes)", stage.index, layer.diff_id, layer.size)
    return layer


def _one_line(text: str) -> str:
    """The instruction as written, continuation lines joined (the log has one line a step)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
