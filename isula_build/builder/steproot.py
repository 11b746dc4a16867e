"""The root a stage's steps run on: one overlay a step, stacked.

Each step that may change files runs on a fresh upper dir over the stage's earlier steps' upper
dirs (its snapshots, top first) and the stage's base, always mounted at the same path, so the
executor sees one root. When such a step ends, seal() unmounts it, prunes the directories
overlayfs merely copied up, and hands back the upper if anything is left: the step's changes
alone, which the build cache keeps as they are (a hit mounts them as a lower dir again) and the
stage's layer squashes with the others (layertar.py). Steps that only change the config need
no mount at all.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from isula_build.builder.layertar import is_opaque
from isula_build.builder.mounts import OverlayMount


class StepRoot:
    def __init__(self, folder: Path, base: list[Path], mountopt: str,
                 prepare: Callable[[list[Path]], None] = lambda lowers: None) -> None:
        self.folder = folder
        self._prepare = prepare        # called with the lower dirs before each mount
        self.merged = folder / "merged"
        self.base = base               # the stage's lower dirs, top first
        self.tops: list[Path] = []     # the snapshots of the steps so far, top first
        self._mountopt = mountopt
        self._mount: OverlayMount | None = None
        self._serial = 0

    @property
    def lowers(self) -> list[Path]:
        return [*self.tops, *self.base]

    def mount(self) -> None:
        """Mounts the root for a step (idempotent until seal)."""
        if self._mount is not None:
            return
        self._serial += 1
        self._prepare(self.lowers)
        mount = OverlayMount(self.lowers, self.folder / f"upper-{self._serial}",
                             self.folder / f"work-{self._serial}", self.merged,
                             mountopt=self._mountopt)
        mount.mount()
        self._mount = mount

    def seal(self) -> Path | None:
        """Ends the mounted step: unmounts it and returns its upper dir, pruned, when it holds
        a change (the caller pushes it, wherever it moved it); None when nothing changed."""
        mount, self._mount = self._mount, None
        if mount is None:
            return None
        mount.unmount()
        shutil.rmtree(mount.work, ignore_errors=True)
        prune_unchanged_dirs(mount.upper, self.lowers)
        if any(os.scandir(mount.upper)):
            return mount.upper
        os.rmdir(mount.upper)
        return None

    def push(self, snapshot: Path) -> None:
        self.tops.insert(0, snapshot)

    def close(self) -> None:
        """Unmounts whatever is mounted (a failed step's upper stays for the work dir's
        removal)."""
        if self._mount is not None:
            self._mount.unmount()
            self._mount = None


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
        if not rel or any(os.scandir(path)) or is_opaque(path):
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


__all__ = ["StepRoot", "prune_unchanged_dirs"]
