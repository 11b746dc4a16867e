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

from isula_build.builder import fetch
from isula_build.builder.copier import select_context_sources

_MEMO_LIMIT = 500_000          # remembered file digests (about 150 bytes each)
_memo: dict[tuple[str, int, int, int, int, int], str] = {}
_memo_lock = threading.Lock()


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
    def __init__(self, is_ignored: Callable[[str], bool], reinclude: bool) -> None:
        self.is_ignored = is_ignored
        self.reinclude = reinclude
        self.hasher = hashlib.sha256()
        self.files: dict[str, str] = {}
        self.links: dict[tuple[int, int], str] = {}

    def add(self, record: list[object], rel: str | None) -> None:
        line = json.dumps(record).encode()
        self.hasher.update(line + b"\n")
        if rel is not None:
            self.files[rel] = hashlib.sha256(line).hexdigest()

    def entry(self, path: Path, st: os.stat_result, rel: str) -> None:
        """Records the entry and, for a directory, everything below it, in name order, parents
        first. Iterative: a context's tree may be deeper than Python's recursion limit."""
        below: list[Iterator[tuple[Path, os.stat_result, str]]] = []
        current: tuple[Path, os.stat_result, str] | None = (path, st, rel)
        while True:
            if current is not None:
                self._record(*current)
                if stat.S_ISDIR(current[1].st_mode):
                    below.append(self._children(current[0], current[2]))
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

    def _children(self, path: Path, rel: str) -> Iterator[tuple[Path, os.stat_result, str]]:
        for name in sorted(os.listdir(path)):
            child_rel = f"{rel}/{name}" if rel not in ("", ".") else name
            child = path / name
            st = os.lstat(child)
            if self.is_ignored(child_rel):
                if not (self.reinclude and stat.S_ISDIR(st.st_mode)):
                    continue
                # Searched for what a "!" pattern brings back; its metadata counts when kept.
            yield child, st, child_rel


def source_digest(sources: Sequence[str], *, context_dir: Path, add: bool,
                  ignored: Callable[[str], bool] | None,
                  ignore_has_exceptions: bool) -> SourceDigest | None:
    """The digest of what COPY/ADD `sources` select from the context; None when a source is
    a URL (its content is only known by fetching it)."""
    if add and any(fetch.is_url(s) for s in sources):
        return None
    selected = select_context_sources(sources, context_dir, ignored, ignore_has_exceptions)
    walker = _Walker(lambda rel: bool(ignored and rel not in ("", ".") and ignored(rel)),
                     ignore_has_exceptions)
    for pattern, host, name, rel in selected:
        walker.add(["source", pattern, name], None)
        walker.entry(host, os.lstat(host), rel)
    return SourceDigest("sha256:" + walker.hasher.hexdigest(), walker.files)


__all__ = ["SourceDigest", "file_content_digest", "source_digest"]
