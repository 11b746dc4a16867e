"""Which entries below a COPY/ADD source are copied: .dockerignore, --exclude and --parents.

The copier and the cache key's digest (copydigest.py) walk sources the same way and ask the
same questions here, so a key covers exactly what the copy takes.

- `.dockerignore` patterns are matched against context-relative paths (build context only).
- `--exclude` patterns (.dockerignore's syntax) are matched against the path relative to the
  source: for a directory source, below it; for an entry a wildcard matched, its name; with
  `--parents`, relative to the pivot. The source a name names is never excluded itself (it is
  the root of the copy, as in BuildKit).
- `--parents`: a source `a/b/./c/*.txt` is split at its first `/./` (BuildKit's pivot; no
  pivot means the context or --from root); what the part after it matches is copied with its
  path relative to the pivot, the directories on the way taking the source directories' modes
  and times; other entries of those directories are left out.
An excluded or ignored directory is still searched when an exception (`!pattern`) could bring
back something inside it, and is dropped when nothing came back.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from isula_build.dockerfile import DockerignoreMatcher

Ignored = Callable[[str], bool]


def split_pivot(source: str) -> tuple[str, str]:
    """(the pivot directory, the pattern relative to it) of a COPY --parents source."""
    pivot, sep, pattern = source.partition("/./")
    if not sep:
        return ".", source
    return pivot or "/", pattern


def child_path(parent: str, name: str) -> str:
    return posixpath.join(parent, name) if parent not in ("", ".") else name


@dataclass(frozen=True)
class Selection:
    """The paths below a --parents pivot that its source matched (and their parents)."""

    chosen: frozenset[str]
    ancestors: frozenset[str]

    @classmethod
    def of(cls, paths: Iterable[str]) -> Selection | None:
        """None when a path is the pivot itself: then everything below it is copied."""
        chosen = frozenset(posixpath.normpath(p) for p in paths)
        if "." in chosen:
            return None
        ancestors = set()
        for path in chosen:
            parent = posixpath.dirname(path)
            while parent:
                ancestors.add(parent)
                parent = posixpath.dirname(parent)
        return cls(chosen, frozenset(ancestors))

    def admit(self, xrel: str) -> bool | None:
        """True: copy the entry and all below it; False: only as the parent of a chosen
        path; None: leave it out."""
        if xrel in self.chosen:
            return True
        return False if xrel in self.ancestors else None


def admit_child(selection: Selection | None, whole: bool, xrel: str) -> bool | None:
    """An entry below a directory that is copied `whole` (or, with --parents, only on the way
    to the chosen paths): True whole, False on the way, None left out."""
    if whole:
        return True
    assert selection is not None
    return selection.admit(xrel)


@dataclass(frozen=True)
class EntryFilter:
    ignored: Ignored | None                 # .dockerignore, context-relative paths
    reinclude: bool                         # .dockerignore has "!" patterns
    excluded: DockerignoreMatcher | None    # --exclude, source-relative paths

    def excludes_name(self, name: str) -> bool:
        """An entry a wildcard matched, judged by its name."""
        return bool(self.excluded and self.excluded.ignored(name, is_dir=False))

    def is_ignored(self, rel: str) -> bool:
        return bool(self.ignored and rel not in ("", ".") and self.ignored(rel))

    def check(self, rel: str, xrel: str, is_dir: bool) -> tuple[bool, bool]:
        """(whether the entry is walked, whether it is kept when nothing below it is)."""
        ignored = self.is_ignored(rel)
        excluded = bool(self.excluded and self.excluded.ignored(xrel, is_dir))
        if ignored and not (self.reinclude and is_dir):
            return False, False
        if excluded and not (is_dir and self.excluded and self.excluded.has_exceptions):
            return False, False
        return True, not (ignored or excluded)


__all__ = ["EntryFilter", "Ignored", "Selection", "admit_child", "child_path", "split_pivot"]
