"""The build cache as a stage sees it: look steps up, say why one missed, save what ran.

A stage walks its steps: while each step's key (computed without executing it) has an entry,
the step is served (` ---> Using cache` under its STEP line, docker's classic wording: our log
is the classic builder's, one STEP line a step, so the matching phrase reads naturally there).
The last hit's snapshots become the lower dirs the rest of the steps run on (steproot.py) and
its config state is loaded; each executed step that changed files gives the cache its upper dir
as a new snapshot, and each executed step saves an entry. The first step that
misses says why in one line, from what the key was made of compared with the most recently used
entry of the same parent key: the instruction, a build-arg, the files COPY selected, the base
image, or (after hits) that no earlier build ran the step. A stage's first step that no build
ran before prints nothing, so a first build's log is what it was without a cache.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from isula_build.builder.cache import BuildCache, CacheEntry
from isula_build.builder.config import StageConfig
from isula_build.builder.executor import StepKey
from isula_build.builder.remotecache import SharedCache
from isula_build.dockerfile import Step
from isula_build.dockerfile.instructions import AddInstruction, CopyInstruction
from isula_build.errors import IsulaBuildError

_log = logging.getLogger(__name__)

USING_CACHE = " ---> Using cache"
MISS_PREFIX = "cache miss: "


def step_inputs(step: Step, text: str, key: StepKey | None, position: int) -> dict[str, Any]:
    """What a step's key was made of, small, for the reason of a later miss."""
    return {"ins": hashlib.sha256(repr(step.instruction).encode()).hexdigest(), "text": text,
            "kind": type(step.instruction).__name__, "position": position,
            "args": {k: v for k, v in step.new_args},
            "files": key.files if key is not None else None}


def _counted(what: str, names: list[str]) -> str:
    more = len(names) - 1
    return what + (f" (and {more} other{'s' if more > 1 else ''})" if more else "")


def _comparable(siblings: list[CacheEntry], new: dict[str, Any]) -> dict[str, Any] | None:
    """The inputs to compare with: of the same instruction text, else of the same kind at the
    same position in its stage (siblings are most recently used first). Several stages FROM
    one image share the parent key, so neither is just "the last entry"."""
    for entry in siblings:
        if entry.inputs.get("text") == new["text"]:
            return entry.inputs
    for entry in siblings:
        if (entry.inputs.get("kind"), entry.inputs.get("position")) == \
                (new["kind"], new["position"]):
            return entry.inputs
    return None


def miss_reason(old: dict[str, Any], new: dict[str, Any], copy: bool, copy_from: str = "") -> str:
    """One line saying how `new` inputs differ from the cached `old` ones."""
    if old.get("ins") != new["ins"]:
        if old.get("text") == new["text"]:
            return "the instruction expands to something else than in the cached build"
        return f"the instruction changed (the cached build ran: {old.get('text')})"
    old_args, new_args = old.get("args") or {}, new["args"]
    names = sorted(k for k in set(old_args) | set(new_args) if old_args.get(k) != new_args.get(k))
    if names:
        return _counted(f"build-arg {names[0]} changed", names)
    old_files, new_files = old.get("files"), new["files"]
    if isinstance(old_files, dict) and isinstance(new_files, dict):
        changed = sorted(f for f in new_files if f in old_files and old_files[f] != new_files[f])
        added = sorted(f for f in new_files if f not in old_files)
        removed = sorted(f for f in old_files if f not in new_files)
        count = len(changed) + len(added) + len(removed)
        others = ["-"] * count
        if changed:
            return _counted(f"file {changed[0]} changed", others)
        if added:
            return _counted(f"file {added[0]} was added", others)
        if removed:
            return _counted(f"file {removed[0]} was removed", others)
    if copy_from:
        return f"what it copies from ({copy_from}) changed"
    if copy:
        return "the files it copies changed"
    return "its inputs changed"


class StageCache:
    """One stage's use of the build's cache. Snapshots it holds (the hits', and those it
    adopts) are given to `hold`, which records them for the build to release when it ends
    (later stages and COPY --from mount them too; stages running at once share the record)."""

    def __init__(self, cache: BuildCache, use: bool, base_note: str,
                 hold: Callable[[Iterable[str]], None], shared: SharedCache | None = None,
                 final: bool = True) -> None:
        self.cache = cache
        self.shared = shared         # --cache-from: looked up when the local cache misses
        self.final = final           # the final image is made of this stage (for --cache-to)
        self.use = use
        self.base_note = base_note   # why a first step with no sibling entry missed, if known
        self.hold = hold
        self._save = True
        self.chain: list[list[Any]] = []   # the stage's snapshots in the cache: [id, size]
        self._hit: CacheEntry | None = None  # the last hit

    def lookup(self, step: Step, text: str, parent: str, key: StepKey | None,
               position: int) -> tuple[CacheEntry | None, str]:
        """(the entry, "") on a hit; (None, the reason) on a miss."""
        if key is None:
            return None, "the step's content is only known by running it"
        if not self.use:
            return None, ""
        entry = self.cache.lookup(key.key, hold=True)
        if entry is None and self.shared is not None:
            entry = self.shared.lookup(key.key)
            if entry is not None:
                self.cache.hold(entry.snapshots)
        if entry is not None:
            self.hold(entry.snapshots)
            self._hit = entry
            self.chain = [list(item) for item in entry.chain]
            return entry, ""
        first = position == 0
        new = step_inputs(step, text, key, position)
        siblings = self.cache.siblings(parent)
        if self.shared is not None:
            siblings += self.shared.siblings(parent)
        old = _comparable(siblings, new)
        if old is None:
            # A stage no build started before says nothing: a first build's log stays as it
            # was without a cache. Past a hit, the step is new (a line added, say).
            return None, self.base_note if first else "no earlier build ran this step"
        ins = step.instruction
        copy = isinstance(ins, (CopyInstruction, AddInstruction))
        copy_from = ins.from_ if isinstance(ins, CopyInstruction) and ins.from_ else ""
        return None, miss_reason(old, new, copy, copy_from or "")

    def restore(self, config: StageConfig) -> tuple[list[Path], CacheEntry] | None:
        """The last hit's snapshots (top first), its config state loaded into `config`."""
        entry = self._hit
        if entry is None:
            return None
        config.load_state(entry.config)
        return [self.cache.snapshot_path(s) for s in entry.snapshots], entry

    def adopt(self, upper: Path) -> Path:
        """Moves a step's upper into the cache as a snapshot; returns where it is now. When the
        cache cannot take it, it stays where it is and this stage saves no more entries."""
        if not self._save:
            return upper
        try:
            snapshot, path, size = self.cache.adopt(upper)
        except OSError as exc:
            self._stop_saving(exc)
            return upper
        self.hold([snapshot])
        self.chain.insert(0, [snapshot, size])
        if self.shared is not None:
            self.shared.snapshot_made(snapshot, path, size, self.final)
        return path

    def linked(self, link_key: str) -> Path | None:
        """The snapshot of a COPY/ADD --link step with this parent-free key, now the stage's
        top; None when the cache has none (or this build serves nothing)."""
        if not self.use or not self._save:
            return None
        found = self.cache.linked(link_key)
        if found is None:
            return None
        self.hold([found[0]])
        self.chain.insert(0, [found[0], found[1]])
        return self.cache.snapshot_path(found[0])

    def remember_linked(self, link_key: str) -> None:
        """Records the stage's top snapshot (just adopted) as the linked step's."""
        if not self._save or not self.chain:
            return
        try:
            self.cache.remember_linked(link_key, str(self.chain[0][0]), int(self.chain[0][1]))
        except OSError as exc:
            _log.warning("build cache: %s", exc)

    def save(self, parent: str, step: Step, text: str, position: int, key: StepKey,
             config: StageConfig, layer_entry: int | None) -> None:
        """Saves the state after an executed step; a cache that cannot be written is skipped
        for the rest of the stage (the build itself does not depend on it)."""
        if not self._save:
            return
        try:
            self.cache.put(CacheEntry(key.key, parent, [list(c) for c in self.chain],
                                      config.state(), layer_entry,
                                      step_inputs(step, text, key, position)))
        except (OSError, IsulaBuildError) as exc:
            self._stop_saving(exc)

    def _stop_saving(self, exc: Exception) -> None:
        _log.warning("build cache: not saving this stage's steps: %s", exc)
        self._save = False

    def layer(self, key: str) -> tuple[str, int] | None:
        """(diff ID, size) of the stage layer an earlier build made on the same snapshots."""
        if not self.use or not self._save:
            return None
        return self.cache.stage_layer(key, [str(c[0]) for c in self.chain])

    def remember_layer(self, key: str, diff_id: str, size: int) -> None:
        if not self._save:
            return
        try:
            self.cache.remember_stage_layer(key, [str(c[0]) for c in self.chain], diff_id, size)
        except OSError as exc:
            _log.warning("build cache: %s", exc)


__all__ = ["MISS_PREFIX", "StageCache", "USING_CACHE", "miss_reason", "step_inputs"]
