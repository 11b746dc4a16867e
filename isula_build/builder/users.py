"""Resolve a Dockerfile USER value against an image's root filesystem.

Follows docker's rules (moby/sys/user GetExecUser, which docker, BuildKit and runc share):

- ``""`` means root (uid 0) and takes gid, home and extra groups from uid 0's passwd entry.
- ``name`` or ``uid``: the passwd entry gives uid, gid and home; the additional gids are the
  groups of /etc/group that list the user's name.  A numeric uid needs no entry: it then runs
  with gid 0, home ``/`` and no additional groups.
- ``user:group``: the group (name or gid) replaces the primary gid, and, as in docker, no
  additional groups are added.  A numeric gid needs no entry.

/etc/passwd and /etc/group are read from the root filesystem as the container would see them:
symbolic links are followed but never leave the root (``rootpath.resolve_in_root``), so an image
whose /etc/passwd points at the host's file cannot make the daemon read the host's.
``read_passwd`` and ``read_group`` are the one reader of both files (COPY --chown uses them too).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from isula_build.builder.rootpath import resolve_in_root
from isula_build.errors import InvalidArgument, NotFound

# The largest id docker accepts (moby/sys/user: maxID).
MAX_ID = 2**31 - 1
# passwd and group files of real images are a few KiB; the cap only stops a hostile image
# from making the daemon read gigabytes.
MAX_FILE_SIZE = 10 * 1024 * 1024


@dataclass(frozen=True)
class ResolvedUser:
    """The ids a container process runs with."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = field(default_factory=tuple)
    home: str = "/"


def read_root_file(root: Path, path: str) -> bytes | None:
    """The content of the regular file ``path`` inside ``root``, or None when there is none."""
    host_path = resolve_in_root(root, path)
    try:
        # O_NOFOLLOW: resolve_in_root resolved every link; a link here now means a race, refuse it.
        # O_NONBLOCK: a FIFO planted as /etc/passwd must not hang the build.
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InvalidArgument(f"unable to read {path} of the image: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_FILE_SIZE:
            raise InvalidArgument(f"{path} of the image is larger than {MAX_FILE_SIZE} bytes")
        return f.read(MAX_FILE_SIZE + 1)[:MAX_FILE_SIZE]


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _records(data: bytes) -> list[list[str]]:
    """Colon-separated records, skipping blank and comment lines."""
    out = []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append(line.split(":"))
    return out


def _field(fields: list[str], i: int) -> str:
    return fields[i] if i < len(fields) else ""


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def read_passwd(root: Path) -> list[PasswdEntry]:
    """The entries of the root's /etc/passwd in file order (none when it has no such file)."""
    entries = []
    for f in _records(read_root_file(root, "/etc/passwd") or b""):
        uid, gid = _int(_field(f, 2)), _int(_field(f, 3))
        # An entry with a malformed id can match nothing sensible; skip it rather than guess.
        if uid is not None and gid is not None:
            entries.append(PasswdEntry(f[0], uid, gid, _field(f, 5)))
    return entries


def read_group(root: Path) -> list[GroupEntry]:
    """The entries of the root's /etc/group in file order (none when it has no such file)."""
    entries = []
    for f in _records(read_root_file(root, "/etc/group") or b""):
        gid = _int(_field(f, 2))
        if gid is not None:
            members = tuple(m.strip() for m in _field(f, 3).split(",") if m.strip())
            entries.append(GroupEntry(f[0], gid, members))
    return entries


def _numeric_id(text: str) -> int | None:
    value = _int(text)
    if value is not None and value > MAX_ID:
        raise InvalidArgument(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def resolve_user(root: Path, user_spec: str) -> ResolvedUser:
    """Resolve a USER value (``name``, ``uid``, ``name:group``, ``uid:gid``, ``""``) in ``root``."""
    user_arg, _, group_arg = user_spec.partition(":")
    uid_arg = _numeric_id(user_arg)
    gid_arg = _numeric_id(group_arg)

    passwd = read_passwd(root)
    if user_arg == "":
        match = [e for e in passwd if e.uid == 0]
    elif uid_arg is not None:
        match = [e for e in passwd if e.uid == uid_arg]
    else:
        match = [e for e in passwd if e.name == user_arg]

    uid, gid, home, matched_name = 0, 0, "/", ""
    if match:
        uid, gid, home, matched_name = match[0].uid, match[0].gid, match[0].home, match[0].name
    elif user_arg != "":
        if uid_arg is None:
            raise NotFound(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = uid_arg

    additional: tuple[int, ...] = ()
    if group_arg != "" or matched_name != "":
        groups = read_group(root)
        if group_arg != "":
            found = [g for g in groups if (g.gid == gid_arg if gid_arg is not None else g.name == group_arg)]
            if found:
                gid = found[0].gid
            elif gid_arg is None:
                raise NotFound(f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid = gid_arg
        else:
            # Supplementary groups only in the implicit form, as docker does.
            additional = tuple(g.gid for g in groups if matched_name in g.members)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=additional, home=home or "/")
