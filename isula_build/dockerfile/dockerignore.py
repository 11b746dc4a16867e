""".dockerignore: which context paths COPY and ADD never see (docker's patternmatcher rules).

Patterns are cleaned like Go's filepath.Clean (``./a/`` → ``a``, a leading ``/`` dropped);
``*`` and ``?`` never cross ``/``; ``**`` crosses any number of directories; ``!`` re-includes;
the last matching pattern wins; a path is also ignored when one of its parent directories is.
The Dockerfile and .dockerignore themselves may be ignored: the engine still reads them, but
COPY and ADD do not copy them.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from .errors import DockerfileError
from .globmatch import LinearMatcher, compile_linear

MAX_DOCKERIGNORE_BYTES = 1 << 20
_REGEX_SPECIAL = frozenset(".+()|{}$^")


def clean_path(path: str) -> str:
    """Go's path.Clean for relative paths: no ``.``/empty parts, ``..`` resolved, no slash ends."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not path.startswith("/"):
                parts.append(part)
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if path.startswith("/"):
        return "/" + cleaned
    return cleaned or "."


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool  # a "!" pattern: a match re-includes
    regex: re.Pattern[str]
    suffix: str | None  # "**xyz" with no other wildcard: docker compares by suffix
    linear: LinearMatcher | None  # the regex matched without backtracking (globmatch.py)

    def match(self, path: str) -> bool:
        if self.suffix is not None:
            if path.endswith(self.suffix):
                return True
            return self.suffix.startswith("/") and path == self.suffix[1:]
        if self.linear is not None:
            return self.linear.match(path)
        return self.regex.match(path) is not None


def _compile(pattern: str, line: int) -> _Pattern:
    exclusion = pattern.startswith("!")
    body = pattern[1:] if exclusion else pattern
    out = ["^"]
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        i += 1
        if ch == "*":
            if i < n and body[i] == "*":
                i += 1
                if i < n and body[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\\":
            out.append("\\" + body[i] if i < n else "\\\\")
            i += 1 if i < n else 0
        elif ch in "[]":
            out.append(ch)
        else:
            out.append(ch)  # as docker: other characters, "-" and "^" in sets too, go in as written
    out.append("$")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Python warns about some sets Go accepts as written
            regex = re.compile("".join(out), re.DOTALL)
            linear = compile_linear(regex.pattern)
    except re.error as err:
        raise DockerfileError(f"syntax error in pattern {pattern!r}: {err}", line, ".dockerignore") from None
    # docker tests "**xyz" (no other wildcard) by suffix, which differs from the regex for "**xyz"
    # without a slash: it also matches "axyz".
    rest = body[2:]
    suffix = rest if body.startswith("**") and rest and not any(c in rest for c in "*?[]\\") else None
    return _Pattern(pattern, exclusion, regex, suffix, linear)


class DockerignoreMatcher:
    """Answers ``ignored(path)`` for paths relative to the build context."""

    def __init__(self, patterns: list[_Pattern]) -> None:
        self._patterns = patterns

    @classmethod
    def from_text(cls, text: str) -> DockerignoreMatcher:
        if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCKERIGNORE_BYTES:
            raise DockerfileError(f"the file is larger than the limit of {MAX_DOCKERIGNORE_BYTES} bytes (1 MiB)",
                                  None, ".dockerignore")
        patterns: list[_Pattern] = []
        for number, raw in enumerate(text.split("\n"), start=1):
            if number == 1:
                raw = raw.removeprefix("\ufeff")
            if raw.startswith("#"):
                continue  # only a "#" in the first column starts a comment
            pattern = raw.strip()
            if not pattern:
                continue
            invert = pattern.startswith("!")
            if invert:
                pattern = pattern[1:].strip()
            if pattern:
                pattern = clean_path(pattern)
                if len(pattern) > 1 and pattern.startswith("/"):
                    pattern = pattern[1:]
            patterns.append(_compile(("!" if invert else "") + pattern, number))
        return cls(patterns)

    @property
    def patterns(self) -> list[str]:
        return [p.text for p in self._patterns]

    @property
    def has_exceptions(self) -> bool:
        """True when a ``!`` pattern exists: an ignored directory may still hold included files,
        so a walker must not skip it wholesale."""
        return any(p.exclusion for p in self._patterns)

    def ignored(self, path: str, is_dir: bool | None = None) -> bool:
        """Whether COPY/ADD leave out ``path`` (relative to the context; ``./`` or ``/`` allowed).

        For a directory (``is_dir`` True, or None when the caller does not know) that matches but
        that an exception such as ``!dir/keep`` reaches into, the answer is False so that a walker
        descends into it and asks again for each entry: docker's rule for not skipping such a
        directory.  Pass ``is_dir=False`` for a file to get the plain answer.
        """
        path = clean_path(path.lstrip("/"))
        matched = self._matches(path)
        if matched and is_dir is not False and self.has_exceptions:
            prefix = path + "/"
            if any(p.text[1:].startswith(prefix) for p in self._patterns if p.exclusion):
                return False
        return matched

    def _matches(self, path: str) -> bool:
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self._patterns:
            # An exclusion only matters for a path matched so far, an inclusion only for one not.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                for i in range(1, len(parents) + 1):
                    if pattern.match("/".join(parents[:i])):
                        hit = True
                        break
            if hit:
                matched = not pattern.exclusion
        return matched
