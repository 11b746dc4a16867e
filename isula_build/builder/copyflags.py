"""The --chmod and --chown flags of COPY and ADD."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from isula_build.builder.users import MAX_ID, read_group, read_passwd
from isula_build.errors import InvalidArgument


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


def resolve_chown(root: Path, spec: str) -> tuple[int, int]:
    """--chown=user[:group] with names looked up in the destination root, numbers taken as is.

    Without a group the gid is the user's numeric uid, as the Dockerfile reference says (unlike
    USER, which takes the passwd entry's gid).
    """
    user, _, group = spec.partition(":")
    if not user:
        raise InvalidArgument(f"invalid --chown value {spec!r}")
    uid = _owner_id(spec, user, "uid", "user",
                    lambda: next((e.uid for e in read_passwd(root) if e.name == user), None))
    if not group:
        return uid, uid
    gid = _owner_id(spec, group, "gid", "group",
                    lambda: next((e.gid for e in read_group(root) if e.name == group), None))
    return uid, gid


def _owner_id(spec: str, name: str, kind: str, entry: str,
              look_up: Callable[[], int | None]) -> int:
    """A number as it is, or the id look_up finds for the name (kind "uid", entry "user")."""
    number = int(name) if name.isdigit() else look_up()
    if number is None:
        raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: "
                              f"can't find {kind} for {entry} {name}: no such {entry}")
    if number > MAX_ID:
        raise InvalidArgument(f"invalid --chown value {spec!r}: ids must be in range 0-{MAX_ID}")
    return number
