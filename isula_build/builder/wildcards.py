"""Wildcards in COPY/ADD sources: Go's filepath.Match, one path component at a time.

`*`, `?` and `[...]` (with ranges and `^` negation) match within one component; a backslash
escapes the next character. Matching lists directories of a root with every path resolved
inside it (rootpath.resolve_in_root), so a symlink met on the way never leads out.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from isula_build.builder.rootpath import resolve_in_root
from isula_build.errors import InvalidArgument

_WILDCARD = re.compile(r"(?<!\\)[*?\[]")


def has_wildcard(path: str) -> bool:
    """Whether `path` holds an unescaped wildcard character."""
    return _WILDCARD.search(path) is not None


def unescape(component: str) -> str:
    """A literal component with its backslash escapes removed."""
    return re.sub(r"\\(.)", r"\1", component)


def _component_regex(pattern: str) -> re.Pattern[str]:
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


def glob_in_root(root: Path, pattern: str) -> list[str]:
    """The existing paths inside `root` (relative, posix) that the relative `pattern` matches,
    each component's matches in name order."""
    matches = [""]
    for part in pattern.split("/"):
        if not has_wildcard(part):
            matches = [posixpath.join(m, unescape(part)) for m in matches]
            continue
        regex = _component_regex(part)
        found: list[str] = []
        for m in matches:
            try:
                names = sorted(os.listdir(resolve_in_root(root, m)))
            except (FileNotFoundError, NotADirectoryError):
                continue
            found.extend(posixpath.join(m, n) for n in names if regex.fullmatch(n))
        matches = found
    return [m for m in matches if os.path.lexists(resolve_in_root(root, m))]
