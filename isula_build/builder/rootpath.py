"""Paths inside a root directory that can never lead outside it.

A stage's root filesystem (and the build context) is data the user controls: any symlink in it may
point to `/etc` or `../../..`.  Host code that writes into the root must therefore resolve every
path component itself, as the kernel would if the root were `/`, instead of letting the host kernel
follow links out of the tree.  This is what github.com/cyphar/filepath-securejoin does for Go.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from isula_build.errors import InvalidArgument

# Linux gives up after 40 links in one lookup; a little more room costs nothing and still stops a
# cycle quickly.
MAX_SYMLINKS = 255


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def resolve_in_root(root: Path, path: str, follow_last: bool = True) -> Path:
    """Joins the container path `path` to `root`, resolving symlinks as if `root` were `/`.

    Absolute link targets restart at `root`; `..` never climbs above it.  Components that do not
    exist are taken literally.  With `follow_last=False` a symlink in the last component is kept
    (the result names the link itself), which is what callers that replace or create an entry want.
    """
    resolved: list[str] = []
    pending = _components(path)
    pending.reverse()  # a stack: the next component is at the end
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        is_last = not pending
        try:
            st = os.lstat(candidate)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode) or (is_last and not follow_last):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise InvalidArgument(f"too many levels of symbolic links while resolving {path!r}")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        new_parts = _components(target)
        new_parts.reverse()
        pending.extend(new_parts)
    return root.joinpath(*resolved)


def make_dirs_in_root(root: Path, path: str, *, mode: int = 0o755, uid: int = 0,
                      gid: int = 0) -> Path:
    """Creates the directory `path` (and missing parents) inside `root`; returns its host path.

    Each component is resolved again after the one before it exists, so a symlink met on the way
    (even one pointing at `/` or `..`) leads to a directory inside the root.  Directories this call
    creates get exactly `mode` (not filtered by the umask) and the owner `uid:gid`; existing ones
    are left as they are.
    """
    current = "/"
    for part in _components(path):
        current = current.rstrip("/") + "/" + part
        host = resolve_in_root(root, current)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            os.mkdir(host, mode)
            os.chown(host, uid, gid)
            os.chmod(host, mode)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"cannot create directory {current}: a file of that name exists")
    return resolve_in_root(root, path)
