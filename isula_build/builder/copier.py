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
  destination, confining every entry to it and keeping the archive's owners and modes, and
  downloads http(s) URLs (build/fetch.py).

The return value is a digest of what was copied (destination paths, types, modes, owners and
content hashes, not mtimes, as BuildKit's content checksums), for the executor's cache key.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from isula_build.builder import fetch
from isula_build.builder.rootpath import make_dirs_in_root, resolve_in_root
from isula_build.builder.users import MAX_ID, read_root_file
from isula_build.errors import InvalidArgument, NotFound
from isula_build.store.fsutil import write_all
from isula_build.store.pipe import BackgroundWriter

Ignored = Callable[[str], bool]

_CHUNK = 1 << 20
_WILDCARD = re.compile(r"(?<!\\)[*?\[]")


# --- --chmod ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Chmod:
    """A parsed --chmod: octal (`0755`) or symbolic (`u+x,go=rX`) as BuildKit accepts both."""

    octal: int | None
    clauses: tuple[tuple[str, str, str], ...] = ()   # (who, op, perms) for symbolic modes

    @classmethod
    def parse(cls, text: str) -> Chmod:
        if re.fullmatch(r"[0-7]{1,4}", text):
            return cls(octal=int(text, 8))
        clauses = []
        for clause in text.split(","):
            m = re.fullmatch(r"([ugoa]*)([-+=])([rwxXst]*)", clause)
            if not m:
                raise InvalidArgument(f"invalid --chmod value {text!r}: use octal (0755) or "
                                      f"symbolic (u+x,go=rX) permissions")
            clauses.append((m.group(1) or "a", m.group(2), m.group(3)))
        return cls(octal=None, clauses=tuple(clauses))

    def apply(self, mode: int, is_dir: bool) -> int:
        """Returns the permission bits (07777) for an entry whose current bits are `mode`."""
        if self.octal is not None:
            return self.octal
        mode &= 0o7777
        for who, op, perms in self.clauses:
            # Each class owns its rwx bits plus the special bit that goes with it.
            mask = 0
            for w in who:
                mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[w]
            bits = 0
            for p in perms:
                if p == "r":
                    bits |= 0o444
                elif p == "w":
                    bits |= 0o222
                elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                    bits |= 0o111
                elif p == "s":
                    bits |= 0o6000
                elif p == "t":
                    bits |= 0o1000
            bits &= mask
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~mask) | bits
        return mode


# --- --chown ----------------------------------------------------------------------------------

def _lookup_id(root: Path, file: str, name: str) -> int | None:
    """The id of `name` in the root's /etc/passwd or /etc/group, or None when absent."""
    data = read_root_file(root, file)   # symlinks resolved inside root, size capped
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    return None


def resolve_chown(root: Path, spec: str) -> tuple[int, int]:
    """--chown=user[:group] with names looked up in the destination root, numbers taken as is.

    Without a group the gid is the user's numeric uid, as the Dockerfile reference says.
    """
    user, _, group = spec.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --chown value {spec!r}")
    uid = int(user) if user.isdigit() else _lookup_id(root, "/etc/passwd", user)
    if uid is None:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: "
                              f"can't find uid for user {user}: no such user")
    if uid > MAX_ID:
        raise InvalidArgument(f"invalid --chown value {spec!r}: ids must be in range 0-{MAX_ID}")
    if not group:
        return uid, uid
    gid = int(group) if group.isdigit() else _lookup_id(root, "/etc/group", group)
    if gid is None:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: "
                              f"can't find gid for group {group}: no such group")
    if gid > MAX_ID:
        raise InvalidArgument(f"invalid --chown value {spec!r}: ids must be in range 0-{MAX_ID}")
    return uid, gid


# --- wildcards --------------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Translates one path component of a Go filepath.Match pattern to a regular expression."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = i + 1
            negate = end < len(pattern) and pattern[end] == "^"
            if negate:
                end += 1
            items: list[str] = []
            while end < len(pattern) and (pattern[end] != "]" or not items):
                ch = pattern[end]
                if ch == "\\" and end + 1 < len(pattern):
                    end += 1
                    ch = pattern[end]
                if ch == "-" and items and end + 1 < len(pattern) and pattern[end + 1] != "]":
                    hi = pattern[end + 1]
                    if hi == "\\" and end + 2 < len(pattern):
                        end += 1
                        hi = pattern[end + 1]
                    items[-1] = f"{items[-1]}-{re.escape(hi)}"
                    end += 2
                    continue
                items.append(re.escape(ch))
                end += 1
            if end >= len(pattern):
                raise InvalidArgument(f"syntax error in pattern {pattern!r}")
            out.append(f"[{'^' if negate else ''}{''.join(items)}]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _unescape(component: str) -> str:
    return re.sub(r"\\(.)", r"\1", component)


# --- the copy itself --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    host: Path          # resolved host path (a named symlink already followed)
    name: str           # the name an entry gets in a directory destination
    rel: str            # path relative to the source root, for .dockerignore


@dataclass
class _Copier:
    root: Path
    source_root: Path
    from_context: bool
    owner: tuple[int, int] | None        # None: keep the source's owners (COPY --from)
    chmod: Chmod | None
    ignored: Ignored | None
    reinclude: bool                      # .dockerignore has "!" patterns
    digest: "hashlib._Hash" = field(default_factory=hashlib.sha256)
    links: dict[tuple[int, int], Path] = field(default_factory=dict)

    # -- recording what was copied --

    def record(self, kind: str, dest: str, mode: int, uid: int, gid: int, extra: str) -> None:
        line = json.dumps([kind, dest, f"{mode & 0o7777:o}", uid, gid, extra])
        self.digest.update(line.encode() + b"\n")

    # -- sources --

    def is_ignored(self, rel: str) -> bool:
        return bool(self.ignored and rel not in ("", ".") and self.ignored(rel))

    def sources(self, src: str) -> list[_Source]:
        if self.from_context:
            rel = posixpath.normpath(src.lstrip("/") or ".")
            if rel == ".." or rel.startswith("../"):
                raise InvalidArgument(f"forbidden path outside the build context: {src}")
        else:
            rel = posixpath.normpath("/" + src).lstrip("/") or "."
        if _WILDCARD.search(rel):
            found = [s for s in self._glob(rel) if not self.is_ignored(s.rel)]
            if not found:
                raise NotFound(f"no source files were specified: no file matches {src}")
            return found
        rel = _unescape(rel)
        host = resolve_in_root(self.source_root, rel)
        if self.is_ignored(rel) or not os.path.lexists(host):
            where = "build context or excluded by .dockerignore" if self.from_context else "source image"
            raise NotFound(f"file not found in {where}: stat {src}: file does not exist")
        name = posixpath.basename(rel) if rel != "." else ""
        return [_Source(host, name, rel)]

    def _glob(self, rel: str) -> list[_Source]:
        matches = [""]
        for part in rel.split("/"):
            if not _WILDCARD.search(part):
                matches = [posixpath.join(m, _unescape(part)) for m in matches]
                continue
            regex = _pattern_regex(part)
            found: list[str] = []
            for m in matches:
                try:
                    names = sorted(os.listdir(resolve_in_root(self.source_root, m)))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                found.extend(posixpath.join(m, n) for n in names if regex.fullmatch(n))
            matches = found
        return [_Source(resolve_in_root(self.source_root, m), posixpath.basename(m), m)
                for m in matches if os.path.lexists(resolve_in_root(self.source_root, m))]

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

    def copy_children(self, src: Path, target: Path, dest: str, rel: str) -> None:
        """Copies the entries of the directory `src` into the existing directory `target`."""
        for name in sorted(os.listdir(src)):
            child_rel = posixpath.join(rel, name) if rel not in ("", ".") else name
            child = src / name
            child_st = os.lstat(child)
            ignored = self.is_ignored(child_rel)
            # An ignored directory is still searched when a "!" pattern may bring back
            # something inside it, as BuildKit does; otherwise it is skipped whole.
            if ignored and not (self.reinclude and stat.S_ISDIR(child_st.st_mode)):
                continue
            self.copy_tree(child, child_st, target / name, posixpath.join(dest, name), child_rel,
                           keep_if_empty=not ignored)

    def copy_tree(self, src: Path, st: os.stat_result, target: Path, dest: str, rel: str,
                  keep_if_empty: bool = True) -> None:
        """Copies one entry (recursively for directories) to `target` (parents exist)."""
        if stat.S_ISDIR(st.st_mode):
            existing = _lstat(target)
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                _remove(target)
                existing = None
            mode, uid, gid = self.metadata(st)
            if existing is None:
                os.mkdir(target, 0o700)
            # An existing directory inside the destination takes the source directory's
            # mode, owner and times, as BuildKit (and the classic builder) do; only the
            # destination directory itself keeps its own (copy_into_root never passes it here).
            os.chown(target, uid, gid)
            os.chmod(target, mode)
            self.copy_children(src, target, dest, rel)
            if existing is None and not keep_if_empty and not os.listdir(target):
                os.rmdir(target)    # an ignored directory nothing was brought back from
                return
            self.record("dir", dest, mode, uid, gid, "")
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
            return
        if _lstat(target) is not None:
            if os.path.isdir(target) and not os.path.islink(target):
                raise InvalidArgument(f"cannot replace directory {dest} with a file")
            _remove(target)
        mode, uid, gid = self.metadata(st)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and not stat.S_ISLNK(st.st_mode) and key in self.links:
            os.link(self.links[key], target)
            self.record("link", dest, mode, uid, gid, str(self.links[key].relative_to(self.root)))
            return
        if stat.S_ISREG(st.st_mode):
            content = _copy_regular(src, target, st, mode, uid, gid)
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
        _copy_xattrs(src, target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        if st.st_nlink > 1 and not stat.S_ISLNK(st.st_mode):
            self.links[key] = target

    # -- ADD archives --

    def extract(self, archive: Path, compression: str, dest: str) -> None:
        """Extracts a tar archive into the directory `dest`, every entry confined to it."""
        dest_host = self.make_dir(dest)
        dirs: list[tuple[Path, int, float]] = []
        with tarfile.open(archive, f"r|{compression}") as tar:
            for member in tar:
                name = posixpath.normpath("/" + member.name).lstrip("/")
                if not name:
                    continue
                parent = make_dirs_in_root(dest_host, posixpath.dirname(name),
                                           uid=self.parent_owner()[0], gid=self.parent_owner()[1])
                target = parent / posixpath.basename(name)
                # Checked with docker: extracted entries keep the archive's owners and modes,
                # even with --chown (which only applies to the directories made on the way).
                mode, uid, gid = member.mode & 0o7777, member.uid, member.gid
                existing = _lstat(target)
                if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
                    _remove(target)
                    existing = None
                if member.isdir():
                    if existing is None:
                        os.mkdir(target, 0o700)
                    dirs.append((target, mode, member.mtime))
                elif member.isreg():
                    fin = tar.extractfile(member)
                    assert fin is not None
                    _write_file(fin, target)
                elif member.issym():
                    os.symlink(member.linkname, target)
                elif member.islnk():
                    link_name = posixpath.normpath("/" + member.linkname).lstrip("/")
                    source = resolve_in_root(dest_host, link_name, follow_last=False)
                    st = _lstat(source)
                    if st is None or stat.S_ISDIR(st.st_mode):
                        raise InvalidArgument(f"ADD: bad hard link {member.name} -> {member.linkname}")
                    os.link(source, target)
                    continue  # a hard link shares the metadata of its target
                elif member.ischr() or member.isblk() or member.isfifo():
                    kind = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
                            tarfile.FIFOTYPE: stat.S_IFIFO}[member.type]
                    os.mknod(target, kind | 0o600, os.makedev(member.devmajor, member.devminor))
                else:
                    continue
                os.chown(target, uid, gid, follow_symlinks=False)
                if not member.issym():
                    os.chmod(target, mode)
                    for key, value in member.pax_headers.items():
                        if key.startswith("SCHILY.xattr."):
                            _set_xattr(target, key[len("SCHILY.xattr."):],
                                       value.encode("utf-8", "surrogateescape"))
                if not member.isdir():
                    os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
        # Directory modes and times last: writing entries into a directory changes its mtime,
        # and a read-only mode would stop the entries from being written.
        for path, mode, mtime in reversed(dirs):
            os.chmod(path, mode)
            os.utime(path, (mtime, mtime))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _write_file(fin: BinaryIO, target: Path) -> str:
    """Streams `fin` into a new file at `target`; returns the sha256 hex of the content."""
    digest = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _open_source(path: Path) -> int:
    """Opens a file to copy without touching its access time (reading a file whose atime is not
    newer than its mtime would otherwise cost an inode write per file)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOATIME)
    except PermissionError:
        return os.open(path, os.O_RDONLY)  # O_NOATIME needs the file's owner or CAP_FOWNER


def _copy_regular(src: Path, target: Path, st: os.stat_result, mode: int, uid: int,
                  gid: int) -> str:
    """Copies the regular file `src` (lstat `st`) to a new file at `target` with its final mode,
    owner, xattrs and times; returns the sha256 hex of the content.

    Everything goes through the two open descriptors: no path is resolved again, and the new
    file gets only the metadata updates it needs (each one is an inode change).
    """
    fin = _open_source(src)
    try:
        digest = hashlib.sha256()
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o777)
        try:
            if st.st_size < _CHUNK:
                while chunk := os.read(fin, _CHUNK):
                    digest.update(chunk)
                    write_all(out, memoryview(chunk))
            else:
                _copy_large(fin, out, digest)
            made = os.fstat(out)
            if (made.st_uid, made.st_gid) != (uid, gid):
                os.fchown(out, uid, gid)
                made = os.fstat(out)  # a change of owner clears set-id bits
            if stat.S_IMODE(made.st_mode) != mode:
                os.fchmod(out, mode)
            _copy_xattrs(fin, out)
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(fin)
    return digest.hexdigest()


def _copy_large(fin: int, out: int, digest: "hashlib._Hash") -> None:
    """Copies fin to out in 1 MiB chunks, each written on a second thread while the next one is
    read and hashed (both release the GIL)."""
    with BackgroundWriter(out) as writer:
        while True:
            buffer = writer.free_buffer()
            n = os.readv(fin, [buffer])
            if not n:
                writer.give_back(buffer)
                return
            digest.update(memoryview(buffer)[:n])
            writer.write(buffer, n)


def _set_xattr(path: Path | int, name: str, value: bytes) -> None:
    try:
        if isinstance(path, int):
            os.setxattr(path, name, value)
        else:
            os.setxattr(path, name, value, follow_symlinks=False)
    except OSError as exc:
        # Filesystems without xattr support (or a name space we may not write) lose the
        # attribute rather than failing the build, as docker's BestEffortXattrs does.
        if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP, errno.EINVAL):
            raise


def _copy_xattrs(src: Path | int, target: Path | int) -> None:
    """Copies xattrs between paths (links not followed) or open descriptors."""
    nofollow = {} if isinstance(src, int) else {"follow_symlinks": False}
    try:
        names = os.listxattr(src, **nofollow)
    except OSError:
        return
    for name in names:
        if name.startswith(("trusted.overlay.", "security.selinux")):
            continue  # overlay's own bookkeeping and host labels are not the file's content
        try:
            value = os.getxattr(src, name, **nofollow)
        except OSError:
            continue
        _set_xattr(target, name, value)


def _archive_compression(path: Path) -> str | None:
    """The tarfile compression name if `path` is a tar archive (by content), else None."""
    with open(path, "rb") as f:
        head = f.read(6)
    compression = ""
    if head.startswith(b"\x1f\x8b"):
        compression = "gz"
    elif head.startswith(b"BZh"):
        compression = "bz2"
    elif head.startswith(b"\xfd7zXZ\x00"):
        compression = "xz"
    try:
        with tarfile.open(path, f"r|{compression}") as tar:
            if tar.next() is None:
                return None
    except (tarfile.TarError, OSError, EOFError):
        return None
    return compression


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
) -> str:
    """Runs one COPY (or ADD with `add=True`) into the root filesystem directory `root`.

    `source_root` is the build context, or with `from_context=False` the root filesystem of the
    `--from` stage or image (owners are then kept, `.dockerignore` does not apply, and a source
    path is absolute in that root). `ignored(relpath)` answers the context's .dockerignore for a
    context-relative path; with `ignore_has_exceptions` (DockerignoreMatcher.has_exceptions)
    ignored directories are searched for entries a `!` pattern brings back.
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
        ignored=ignored if from_context else None,
        reinclude=ignore_has_exceptions,
    )
    copier.record("dest", dest_path, 0, 0, 0, f"{dest_is_dir} {chown or ''} {chmod or ''}")

    local: list[_Source] = []
    urls: list[str] = []
    for src in sources:
        if add and fetch.is_url(src):
            urls.append(src)
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
        got = fetch.fetch_url(url, work, limit=fetch_limit, timeout=fetch_timeout)
        try:
            target, path = file_target(got.filename)
            st = os.stat(got.path)
            mode = copier.chmod.apply(0o600, False) if copier.chmod else 0o600
            uid, gid = copier.parent_owner()
            if _lstat(target) is not None:
                _remove(target)
            with open(got.path, "rb") as fin:
                _write_file(fin, target)
            os.chown(target, uid, gid)
            os.chmod(target, mode)
            mtime = got.mtime if got.mtime is not None else st.st_mtime
            os.utime(target, (mtime, mtime))
            copier.record("url", path, mode, uid, gid, f"{url} {got.sha256}")
        finally:
            got.path.unlink(missing_ok=True)

    for source in local:
        st = os.lstat(source.host)
        if stat.S_ISDIR(st.st_mode):
            # The destination directory is made like a parent (0755, the --chown owner); an
            # existing one is left as it is.  Only the source directory's contents are copied.
            copier.copy_children(source.host, copier.make_dir(dest_path), dest_path, source.rel)
            continue
        if add and stat.S_ISREG(st.st_mode):
            compression = _archive_compression(source.host)
            if compression is not None:
                with open(source.host, "rb") as fin:
                    content = hashlib.file_digest(fin, "sha256").hexdigest()
                copier.record("archive", dest_path, 0, 0, 0, content)
                copier.extract(source.host, compression, dest_path)
                continue
        target, path = file_target(source.name)
        copier.copy_tree(source.host, st, target, path, source.rel)
    return "sha256:" + copier.digest.hexdigest()

