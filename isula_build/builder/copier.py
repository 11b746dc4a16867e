"""COPY and ADD: putting files from the build context (or another stage) into a stage's root.

The rules follow docker (checked against the classic builder where it agrees with BuildKit, and
BuildKit's sources where they differ; docs/architecture.md lists which):
- sources are relative to the context; a source that climbs out of it (`../x`) is refused, and
  symlinks met while resolving a source are resolved inside the context, never on the host;
- `*`, `?` and `[...]` match one path component each, as Go's filepath.Match;
- a directory source copies its contents; a symlink named as a source is followed, symlinks inside
  copied directories stay symlinks; hard links inside one instruction stay hard links;
- several sources need a destination ending in `/`; a relative destination is under WORKDIR;
- modes and mtimes are kept, owners become 0:0 for the context (kept for `--from`) unless
  `--chown`; directories the copy has to create get mode 0755 and the `--chown` owner (or root);
- every destination path is resolved inside the root, so a symlink in the image pointing at `/etc`
  leads to the image's /etc, never the host's; a file named as the destination is written
  through an existing symlink there (BuildKit), while entries of a directory copy replace links,
  and existing directories inside it take the source directory's mode, owner and times;
- ADD extracts local tar archives (plain, gzip, bzip2, xz: detected by content) into the
  destination, confining every entry to it and keeping the archive's owners and modes
  (archive.py), unless --unpack=false, and downloads http(s) URLs (fetch.py), extracting them
  only with --unpack=true;
- --exclude and --parents choose entries below a source as copyselect.py says.

This module walks sources and destinations; copyflags.py parses --chown and --chmod,
wildcards.py matches source patterns, copyselect.py filters entries, filecopy.py copies one
file's bytes and metadata.

The return value is a digest of what was copied (destination paths, types, modes, owners and
content hashes, not mtimes, as BuildKit's content checksums), for the executor's cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from isula_build.builder import fetch
from isula_build.builder.archive import archive_compression, extract_archive
from isula_build.builder.copyflags import Chmod, resolve_chown
from isula_build.builder.copyselect import (EntryFilter, Ignored, Selection, admit_child,
                                            child_path, split_pivot)
from isula_build.builder.filecopy import copy_regular, copy_xattrs, lstat_or_none, remove_entry
from isula_build.builder.rootpath import make_dirs_in_root, resolve_in_root
from isula_build.builder.wildcards import glob_in_root, has_wildcard, unescape
from isula_build.dockerfile import DockerignoreMatcher
from isula_build.dockerfile.sources import is_url
from isula_build.errors import InvalidArgument, NotFound


@dataclass(frozen=True)
class _Source:
    host: Path          # resolved host path (a named symlink already followed)
    name: str           # the name an entry gets in a directory destination
    rel: str            # path relative to the source root, for .dockerignore


@dataclass(frozen=True)
class _Entry:
    """One entry to copy: the source, its lstat, the host target and the container path."""
    src: Path
    st: os.stat_result
    target: Path
    dest: str
    rel: str
    keep_if_empty: bool     # False: an ignored directory, kept only if something comes back
    xrel: str = ""          # the path relative to the source (what --exclude matches)
    whole: bool = True      # False: a --parents directory only on the way to chosen paths


@dataclass(frozen=True)
class _OpenDir:
    """A directory whose entries are being copied, and what finishing it takes."""
    children: Iterator[_Entry]
    entry: _Entry | None = None     # None: the destination itself, left as it is
    created: bool = False
    mode: int = 0
    uid: int = 0
    gid: int = 0


@dataclass
class _Copier:
    root: Path
    source_root: Path
    from_context: bool
    owner: tuple[int, int] | None        # None: keep the source's owners (COPY --from)
    chmod: Chmod | None
    filter: EntryFilter
    digest: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    links: dict[tuple[int, int], Path] = field(default_factory=dict)
    selection: Selection | None = None   # COPY --parents: what the source being copied chose

    # -- recording what was copied --

    def record(self, kind: str, dest: str, mode: int, uid: int, gid: int, extra: str) -> None:
        line = json.dumps([kind, dest, f"{mode & 0o7777:o}", uid, gid, extra])
        self.digest.update(line.encode() + b"\n")

    # -- sources --

    def sources(self, src: str) -> list[_Source]:
        if self.from_context:
            rel = posixpath.normpath(src.lstrip("/") or ".")
            if rel == ".." or rel.startswith("../"):
                raise InvalidArgument(f"forbidden path outside the build context: {src}")
        else:
            rel = posixpath.normpath("/" + src).lstrip("/") or "."
        if has_wildcard(rel):
            found = [_Source(resolve_in_root(self.source_root, m), posixpath.basename(m), m)
                     for m in glob_in_root(self.source_root, rel)
                     if not self.filter.is_ignored(m)
                     and not self.filter.excludes_name(posixpath.basename(m))]
            if not found:
                raise NotFound(f"no source files were specified: no file matches {src}")
            return found
        rel = unescape(rel)
        host = resolve_in_root(self.source_root, rel)
        if self.filter.is_ignored(rel) or not os.path.lexists(host):
            where = "build context or excluded by .dockerignore" if self.from_context else "source image"
            raise NotFound(f"file not found in {where}: stat {src}: file does not exist")
        name = posixpath.basename(rel) if rel != "." else ""
        return [_Source(host, name, rel)]

    def with_parents(self, src: str) -> tuple[_Source, Selection | None]:
        """COPY --parents: the pivot directory of `src` and what below it the source chose."""
        pivot, pattern = split_pivot(src)
        root = self.sources(pivot)[0]
        if not os.path.isdir(root.host):
            raise InvalidArgument(f"COPY --parents: {pivot} (before /./ in {src}) is not a "
                                  "directory")
        chosen = self.sources(posixpath.join(pivot, pattern))
        base = root.rel if root.rel not in ("", ".") else ""
        return root, Selection.of(posixpath.relpath(m.rel, base or ".") for m in chosen)

    # -- destinations --

    def parent_owner(self) -> tuple[int, int]:
        return self.owner if self.owner is not None else (0, 0)

    def make_dir(self, path: str) -> Path:
        uid, gid = self.parent_owner()
        return make_dirs_in_root(self.root, path, uid=uid, gid=gid)

    def target(self, path: str) -> Path:
        """The host path for creating `path`: parents resolved (and made), the last not followed."""
        parent = self.make_dir(posixpath.dirname(path))
        return parent / posixpath.basename(path)

    # -- entries --

    def metadata(self, st: os.stat_result) -> tuple[int, int, int]:
        mode = stat.S_IMODE(st.st_mode)
        if self.chmod is not None:
            mode = self.chmod.apply(mode, stat.S_ISDIR(st.st_mode))
        uid, gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        return mode, uid, gid

    def copy_children(self, src: Path, target: Path, dest: str, rel: str,
                      selection: Selection | None = None) -> None:
        """Copies the entries of the directory `src` into the existing directory `target`
        (with a --parents `selection`, only those it chose and their parents)."""
        self.selection = selection
        try:
            self._copy_dirs([_OpenDir(self._children(src, target, dest, rel, "",
                                                     selection is None))])
        finally:
            self.selection = None

    def copy_tree(self, src: Path, st: os.stat_result, target: Path, dest: str, rel: str,
                  keep_if_empty: bool = True) -> None:
        """Copies one entry (with all inside it, for a directory) to `target` (parents exist)."""
        entry = _Entry(src, st, target, dest, rel, keep_if_empty)
        if stat.S_ISDIR(st.st_mode):
            self._copy_dirs([self._enter_dir(entry)])
        else:
            self._copy_entry(entry)

    def _copy_dirs(self, stack: list[_OpenDir]) -> None:
        """Copies what the directories on `stack` hold, depth first in name order, with a stack
        of its own rather than recursion: a context or a stage's tree can be deeper than
        Python's recursion limit."""
        while stack:
            entry = next(stack[-1].children, None)
            if entry is None:
                self._leave_dir(stack.pop())
            elif stat.S_ISDIR(entry.st.st_mode):
                stack.append(self._enter_dir(entry))
            else:
                self._copy_entry(entry)

    def _children(self, src: Path, target: Path, dest: str, rel: str, xrel: str,
                  whole: bool) -> Iterator[_Entry]:
        for name in sorted(os.listdir(src)):
            child_rel, child_xrel = child_path(rel, name), child_path(xrel, name)
            child_whole = admit_child(self.selection, whole, child_xrel)
            if child_whole is None:
                continue
            child = src / name
            child_st = os.lstat(child)
            walked, keep = self.filter.check(child_rel, child_xrel, stat.S_ISDIR(child_st.st_mode))
            if walked:
                yield _Entry(child, child_st, target / name, posixpath.join(dest, name),
                             child_rel, keep and child_whole, child_xrel, child_whole)

    def _enter_dir(self, entry: _Entry) -> _OpenDir:
        """Makes (or takes over) the directory `entry.target`; its entries come next."""
        target = entry.target
        existing = lstat_or_none(target)
        if existing is not None and not stat.S_ISDIR(existing.st_mode):
            remove_entry(target)
            existing = None
        mode, uid, gid = self.metadata(entry.st)
        if existing is None:
            os.mkdir(target, 0o700)
        # An existing directory inside the destination takes the source directory's
        # mode, owner and times, as BuildKit (and the classic builder) do; only the
        # destination directory itself keeps its own (copy_into_root never passes it here).
        os.chown(target, uid, gid)
        os.chmod(target, mode)
        return _OpenDir(self._children(entry.src, target, entry.dest, entry.rel, entry.xrel,
                                       entry.whole), entry, existing is None, mode, uid, gid)

    def _leave_dir(self, done: _OpenDir) -> None:
        """Records a directory whose entries are all copied and sets its times."""
        entry = done.entry
        if entry is None:
            return
        if done.created and not entry.keep_if_empty and not os.listdir(entry.target):
            os.rmdir(entry.target)    # an ignored directory nothing was brought back from
            return
        self.record("dir", entry.dest, done.mode, done.uid, done.gid, "")
        os.utime(entry.target, ns=(entry.st.st_atime_ns, entry.st.st_mtime_ns))

    def _copy_entry(self, entry: _Entry) -> None:
        """Copies one entry that is not a directory."""
        src, st, target, dest = entry.src, entry.st, entry.target, entry.dest
        if lstat_or_none(target) is not None:
            if os.path.isdir(target) and not os.path.islink(target):
                raise InvalidArgument(f"cannot replace directory {dest} with a file")
            remove_entry(target)
        mode, uid, gid = self.metadata(st)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and not stat.S_ISLNK(st.st_mode) and key in self.links:
            os.link(self.links[key], target)
            self.record("link", dest, mode, uid, gid, str(self.links[key].relative_to(self.root)))
            return
        if stat.S_ISREG(st.st_mode):
            content = copy_regular(src, target, st, mode, uid, gid)
            self.record("file", dest, mode, uid, gid, content)
            if st.st_nlink > 1:
                self.links[key] = target
            return
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(src)
            os.symlink(link, target)
            self.record("symlink", dest, 0o777, uid, gid, link)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            os.mknod(target, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
            self.record("node", dest, mode, uid, gid, f"{stat.S_IFMT(st.st_mode):o}:{st.st_rdev}")
        else:
            return  # sockets cannot be copied; docker skips them too
        os.chown(target, uid, gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, mode)
        copy_xattrs(src, target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        if st.st_nlink > 1 and not stat.S_ISLNK(st.st_mode):
            self.links[key] = target


@dataclass(frozen=True)
class Selected:
    """A source COPY takes from the context, as copy_into_root selects it (for the cache
    key, copydigest.py): with --parents, the pivot and what below it was chosen."""
    pattern: str
    host: Path
    name: str
    rel: str                       # context-relative
    selection: Selection | None    # --parents only; None: everything below


def select_context_sources(sources: Sequence[str], context_dir: Path, filter: EntryFilter,
                           parents: bool = False) -> list[Selected]:
    copier = _Copier(root=context_dir, source_root=context_dir, from_context=True, owner=(0, 0),
                     chmod=None, filter=filter)
    if parents:
        return [Selected(src, root.host, root.name, root.rel, selection)
                for src in sources for root, selection in [copier.with_parents(src)]]
    return [Selected(src, s.host, s.name, s.rel, None) for src in sources
            for s in copier.sources(src)]


def _dest_path(dest: str, workdir: str) -> tuple[str, bool]:
    """The absolute container path of `dest` and whether its syntax says 'a directory'."""
    is_dir = dest.endswith("/") or posixpath.basename(dest) in (".", "..")
    full = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    return posixpath.normpath("/" + full.lstrip("/")), is_dir


def copy_into_root(
    root: Path,
    sources: Sequence[str],
    dest: str,
    *,
    source_root: Path,
    from_context: bool = True,
    workdir: str = "/",
    chown: str | None = None,
    chmod: str | None = None,
    add: bool = False,
    ignored: Ignored | None = None,
    ignore_has_exceptions: bool = False,
    tmp_dir: Path | None = None,
    fetch_limit: int = fetch.DEFAULT_LIMIT,
    fetch_timeout: float = fetch.DEFAULT_TIMEOUT,
    parents: bool = False,
    excludes: DockerignoreMatcher | None = None,
    unpack: bool | None = None,
    fetched: Mapping[str, fetch.Fetched] | None = None,
) -> str:
    """Runs one COPY (or ADD with `add=True`) into the root filesystem directory `root`.

    `source_root` is the build context, or with `from_context=False` the root filesystem of the
    `--from` stage or image (owners are then kept, `.dockerignore` does not apply, and a source
    path is absolute in that root). `ignored(relpath)` answers the context's .dockerignore for a
    context-relative path; with `ignore_has_exceptions` (DockerignoreMatcher.has_exceptions)
    ignored directories are searched for entries a `!` pattern brings back.
    `parents` and `excludes` are COPY --parents and --exclude (copyselect.py); `unpack` is
    ADD --unpack (None: local archives are extracted, downloads are not); `fetched` holds
    downloads made already (the executor fetches a URL first, for its cache key).
    Returns "sha256:<hex>" of what was copied, for the build cache key.
    """
    instruction = "ADD" if add else "COPY"
    if not sources:
        raise InvalidArgument(f"{instruction} needs at least one source and a destination")
    dest_path, dest_is_dir = _dest_path(dest, workdir)
    if len(sources) > 1 and not dest_is_dir:
        raise InvalidArgument(f"When using {instruction} with more than one source file, "
                              f"the destination must be a directory and end with a /")
    copier = _Copier(
        root=root, source_root=source_root, from_context=from_context,
        owner=resolve_chown(root, chown) if chown else (0, 0) if from_context else None,
        chmod=Chmod.parse(chmod) if chmod else None,
        filter=EntryFilter(ignored if from_context else None, ignore_has_exceptions, excludes),
    )
    copier.record("dest", dest_path, 0, 0, 0, f"{dest_is_dir} {chown or ''} {chmod or ''}")

    local: list[_Source] = []
    urls: list[str] = []
    for src in sources:
        if add and is_url(src):
            urls.append(src)
        elif parents:
            # The destination is a directory: the chosen paths go below it.
            pivot, selection = copier.with_parents(src)
            copier.record("parents", dest_path, 0, 0, 0, src)
            copier.copy_children(pivot.host, copier.make_dir(dest_path), dest_path, pivot.rel,
                                 selection)
        else:
            local.extend(copier.sources(src))
    if len(local) + len(urls) > 1 and not dest_is_dir:
        # A wildcard matching several files counts as several sources (docker checks the same).
        raise InvalidArgument(f"When using {instruction} with more than one source file, "
                              f"the destination must be a directory and end with a /")

    def file_target(name: str) -> tuple[Path, str]:
        # The destination is resolved whole, its last component too (BuildKit's RootPath):
        # a file copied onto a symlink is written through it to the link's target (inside
        # the root), and the link stays. Entries of a directory copy replace links instead.
        existing = resolve_in_root(root, dest_path)
        if dest_is_dir or os.path.isdir(existing):
            path = posixpath.join(dest_path, name)
        else:
            path = posixpath.join("/", existing.relative_to(root).as_posix())
        return copier.target(path), path

    for url in urls:
        work = tmp_dir or Path(tempfile.gettempdir())
        known = (fetched or {}).get(url)
        got = known or fetch.fetch_url(url, work, limit=fetch_limit, timeout=fetch_timeout)
        try:
            compression = archive_compression(got.path) if unpack else None
            if compression is not None:
                copier.record("archive", dest_path, 0, 0, 0, got.sha256)
                extract_archive(got.path, compression, copier.make_dir(dest_path),
                                *copier.parent_owner())
                continue
            target, path = file_target(got.filename)
            mode = copier.chmod.apply(fetch.MODE, False) if copier.chmod else fetch.MODE
            uid, gid = copier.parent_owner()
            fetch.place(got, target, mode, uid, gid)
            copier.record("url", path, mode, uid, gid, f"{url} {got.sha256}")
        finally:
            if known is None:
                got.path.unlink(missing_ok=True)

    for source in local:
        st = os.lstat(source.host)
        if stat.S_ISDIR(st.st_mode):
            # The destination directory is made like a parent (0755, the --chown owner); an
            # existing one is left as it is.  Only the source directory's contents are copied.
            copier.copy_children(source.host, copier.make_dir(dest_path), dest_path, source.rel)
            continue
        if add and unpack is not False and stat.S_ISREG(st.st_mode):
            compression = archive_compression(source.host)
            if compression is not None:
                with open(source.host, "rb") as fin:
                    content = hashlib.file_digest(fin, "sha256").hexdigest()
                copier.record("archive", dest_path, 0, 0, 0, content)
                extract_archive(source.host, compression, copier.make_dir(dest_path),
                                *copier.parent_owner())
                continue
        target, path = file_target(source.name)
        copier.copy_tree(source.host, st, target, path, source.rel)
    return "sha256:" + copier.digest.hexdigest()

