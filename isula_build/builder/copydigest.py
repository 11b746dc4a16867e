"""The content part of a COPY/ADD step's cache key, computed WITHOUT copying.

The cache looks a step up before running it, so the key of a COPY or ADD from the build context
must come from the context alone: the sources each pattern selects (after .dockerignore, exactly
as the copier selects them), and for each selected entry its path, type, mode, owner, size,
content digest, link target, device number, xattrs and hard-link group — not its mtime (as
BuildKit's content checksums). The destination side needs nothing: the root before the step is
what the chain of parent keys stands for, and --chown/--chmod/--from are in the instruction.

File content digests are remembered per daemon by (path, size, mtime, ctime, inode, device): an
unchanged 200 MB context is stat'ed, not re-read, and any write changes mtime/ctime (and a
replaced file its inode), so every change is still caught.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from isula_build.builder.copier import select_context_sources
from isula_build.builder.copyselect import EntryFilter, Selection, admit_child, child_path
from isula_build.dockerfile import DockerignoreMatcher
from isula_build.dockerfile.sources import is_remote

_MEMO_LIMIT = 500_000          # remembered file digests (about 150 bytes each)
_memo: dict[tuple[str, int, int, int, int, int], str] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True)
class _Found:
    """An entry met while walking a source."""
    path: Path
    st: os.stat_result
    rel: str            # context-relative
    xrel: str           # source-relative (--exclude)
    whole: bool         # False: a --parents directory only on the way to chosen paths


@dataclass(frozen=True)
class SourceDigest:
    digest: str                 # "sha256:<hex>" of every record below, in walk order
    files: dict[str, str]       # context-relative path → the digest of its own record


def file_content_digest(path: Path, st: os.stat_result) -> str:
    """sha256 hex of a regular file's bytes, remembered by its identity and times."""
    memo_key = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    with _memo_lock:
        known = _memo.get(memo_key)
    if known is not None:
        return known
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    with _memo_lock:
        if len(_memo) >= _MEMO_LIMIT:
            _memo.clear()  # crude but bounded; a context that large is re-read once
        _memo[memo_key] = digest
    return digest


def _xattrs(path: Path) -> list[tuple[str, str]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        try:
            found.append((name, os.getxattr(path, name, follow_symlinks=False).hex()))
        except OSError:
            continue
    return found


class _Walker:
    def __init__(self, filter: EntryFilter) -> None:
        self.filter = filter
        self.selection: Selection | None = None
        self.hasher = hashlib.sha256()
        self.files: dict[str, str] = {}
        self.links: dict[tuple[int, int], str] = {}

    def add(self, record: list[object], rel: str | None) -> None:
        line = json.dumps(record).encode()
        self.hasher.update(line + b"\n")
        if rel is not None:
            self.files[rel] = hashlib.sha256(line).hexdigest()

    def entry(self, path: Path, st: os.stat_result, rel: str,
              selection: Selection | None = None) -> None:
        """Records the entry and, for a directory, everything below it (with a --parents
        `selection`, what it chose), in name order, parents first. Iterative: a context's
        tree may be deeper than Python's recursion limit."""
        self.selection = selection
        below: list[Iterator[_Found]] = []
        current: _Found | None = _Found(path, st, rel, "", selection is None)
        while True:
            if current is not None:
                self._record(current.path, current.st, current.rel)
                if stat.S_ISDIR(current.st.st_mode):
                    below.append(self._children(current))
            if not below:
                return
            current = next(below[-1], None)
            if current is None:
                below.pop()

    def _record(self, path: Path, st: os.stat_result, rel: str) -> None:
        mode = st.st_mode
        extra: object = ""
        if stat.S_ISREG(mode):
            extra = file_content_digest(path, st)
        elif stat.S_ISLNK(mode):
            extra = os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            extra = st.st_rdev
        link = ""
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            identity = (st.st_dev, st.st_ino)
            link = self.links.setdefault(identity, rel)
        self.add([rel, f"{mode:o}", st.st_uid, st.st_gid,
                  st.st_size if stat.S_ISREG(mode) else 0, extra, link, _xattrs(path)], rel)

    def _children(self, parent: _Found) -> Iterator[_Found]:
        # The copier's choices (copier._Copier._children), through the same EntryFilter.
        for name in sorted(os.listdir(parent.path)):
            xrel = child_path(parent.xrel, name)
            whole = admit_child(self.selection, parent.whole, xrel)
            if whole is None:
                continue
            child = parent.path / name
            st = os.lstat(child)
            rel = child_path(parent.rel, name)
            if self.filter.check(rel, xrel, stat.S_ISDIR(st.st_mode))[0]:
                yield _Found(child, st, rel, xrel, whole)


def source_digest(sources: Sequence[str], *, context_dir: Path, add: bool,
                  ignored: Callable[[str], bool] | None,
                  ignore_has_exceptions: bool, excludes: DockerignoreMatcher | None = None,
                  parents: bool = False) -> SourceDigest | None:
    """The digest of what COPY/ADD `sources` select from the context (after .dockerignore,
    --exclude and --parents); None when a source is remote (a URL or a git repository: its
    content is only known by fetching it)."""
    if add and any(is_remote(s) for s in sources):
        return None
    filter = EntryFilter(ignored, ignore_has_exceptions, excludes)
    walker = _Walker(filter)
    for found in select_context_sources(sources, context_dir, filter, parents):
        walker.add(["source", found.pattern, found.name], None)
        walker.entry(found.host, os.lstat(found.host), found.rel, found.selection)
    return SourceDigest("sha256:" + walker.hasher.hexdigest(), walker.files)


__all__ = ["SourceDigest", "file_content_digest", "source_digest"]
