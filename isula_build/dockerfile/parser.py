"""Dockerfile text → nodes.  Knows syntax only (BuildKit's frontend/dockerfile/parser).

It handles the parser directives at the top (``# syntax=``, ``# escape=``, ``# check=``),
comments (also between continuation lines), line continuations (empty lines inside them are
skipped with a warning, as docker does), flags (``--name=value`` words after the keyword) and
heredocs for RUN, COPY and ADD.  What an instruction means is instructions.py's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import DockerfileError
from .lex import GO_SPACE, expand_word

MAX_DOCKERFILE_BYTES = 1 << 20

_GO_SPACE_STR = "".join(GO_SPACE)
_DIRECTIVE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_KEYWORD_SPLIT = re.compile(r"[\t\v\f\r ]+")
_GO_SPACES = re.compile("[" + re.escape(_GO_SPACE_STR) + "]+")
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)")
HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})


@dataclass(frozen=True)
class Heredoc:
    """One ``<<NAME`` document: its body, whether ``$`` forms in it expand, and its fd."""

    name: str
    content: str
    expand: bool
    chomp: bool  # <<- : leading tabs were removed from every line of the body
    fd: int | None  # the digits before << (e.g. 3<<EOF), None when absent


@dataclass(frozen=True)
class Node:
    """One instruction as written: keyword (lower case), its flags, and the rest of the line."""

    keyword: str
    flags: tuple[str, ...]
    rest: str
    start_line: int
    end_line: int
    original: str
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class ParsedDockerfile:
    directives: dict[str, str]
    escape: str
    nodes: list[Node]
    warnings: list[str]


def _lstrip(text: str) -> str:
    return text.lstrip(_GO_SPACE_STR)


class _Directives:
    """Reads parser directives until the first line that is not one (docker's rule)."""

    def __init__(self) -> None:
        self.done = False
        self.values: dict[str, str] = {}
        self.escape = "\\"
        self.continuation = re.compile(r"\\[ \t]*$")

    def feed(self, line: str, lineno: int) -> None:
        if self.done:
            return
        match = _DIRECTIVE.fullmatch(line)
        key = match.group(1).lower() if match else ""
        if key not in _KNOWN_DIRECTIVES:
            # An unknown directive is a comment, and ends directive processing like any comment.
            self.done = True
            return
        if key in self.values:
            raise DockerfileError(f"only one {key} parser directive can be used", lineno)
        value = match.group(2)  # type: ignore[union-attr]  # the directive pattern always has group 2
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\", lineno)
            self.escape = value
            self.continuation = re.compile(re.escape(value) + r"[ \t]*$")
        self.values[key] = value


def split_raw_words(rest: str, escape: str) -> list[str]:
    """Splits on unquoted whitespace, keeping quotes and escapes in the words (parseWords)."""
    if escape not in rest and "'" not in rest and '"' not in rest:
        return [word for word in _GO_SPACES.split(rest) if word]  # the common case, kept fast
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    in_word = False
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        i += 1
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i == n:
                    continue
                word.append(ch)
                ch = rest[i]
                i += 1
            word.append(ch)
            continue
        if ch in GO_SPACE:
            if in_word and (blank_ok or word):
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            continue
        in_word = True
        if ch in ("'", '"'):
            quote, blank_ok = ch, True
        elif ch == escape:
            if i == n:
                continue
            word.append(ch)
            ch = rest[i]
            i += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def extract_flags(rest: str) -> tuple[tuple[str, ...], str]:
    """Takes the leading ``--flag[=value]`` words off an instruction's arguments.

    Quotes and backslashes inside a flag word are resolved here, as docker does; a bare ``--``
    ends the flags.
    """
    flags: list[str] = []
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] in GO_SPACE:
            i += 1
        if i >= n or not rest.startswith("--", i):
            return tuple(flags), rest[i:]
        word: list[str] = []
        blank_ok = False
        quote = ""
        while i < n:
            ch = rest[i]
            if not quote and ch in GO_SPACE:
                break
            i += 1
            if not quote and ch in ("'", '"'):
                quote, blank_ok = ch, True
                continue
            if quote and ch == quote:
                quote = ""
                continue
            if ch == "\\":
                if i == n:
                    continue
                ch = rest[i]
                i += 1
            word.append(ch)
        text = "".join(word)
        if text == "--":
            return tuple(flags), rest[i:]
        if blank_ok or text:
            flags.append(text)


def _find_heredocs(rest: str, escape: str) -> list[tuple[str, bool, bool, int | None]]:
    found: list[tuple[str, bool, bool, int | None]] = []
    for word in split_raw_words(rest, escape):
        match = _HEREDOC.fullmatch(word)
        if not match or not match.group(3):
            continue
        raw_name = match.group(3)
        try:
            name = expand_word(raw_name, {}, escape)
        except DockerfileError:
            continue  # e.g. an unbalanced quote: not a heredoc, the shell will see it
        if not name:
            continue
        fd = int(match.group(1)) if match.group(1) else None
        # A quoted delimiter ('EOF' or "EOF") means the body is taken literally.
        found.append((name, name == raw_name, match.group(2) == "-", fd))
    return found


def _chomp(content: str) -> str:
    return "".join(line.lstrip("\t") for line in content.splitlines(keepends=True))


def parse(text: str) -> ParsedDockerfile:
    """Parses a whole Dockerfile into nodes; raises DockerfileError with the line number."""
    if len(text) > MAX_DOCKERFILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCKERFILE_BYTES:
        raise DockerfileError(f"the Dockerfile is larger than the limit of {MAX_DOCKERFILE_BYTES} bytes (1 MiB)")
    lines = text.split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    directives = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    i, n = 0, len(lines)
    while i < n:
        stripped = _lstrip(lines[i].rstrip("\r\n"))
        i += 1
        directives.feed(stripped, i)
        if stripped.startswith("#"):
            continue
        start = i
        line, done = _trim_continuation(stripped, directives)
        if done and not line:
            continue
        original = [lines[i - 1]]
        empty_continuation = False
        while not done and i < n:
            raw = lines[i].rstrip("\r\n")
            i += 1
            original.append(raw)
            head = _lstrip(raw)
            if head.startswith("#"):
                continue  # a comment between continuation lines is dropped
            if not head:
                empty_continuation = True
                continue
            part, done = _trim_continuation(raw, directives)
            line += part
        if empty_continuation:
            warnings.append(f"[WARNING]: Empty continuation line found in: {line.strip()} "
                            f"(line {start}); empty continuation lines will become errors in a future release")
        node, i = _make_node(line, start, i, lines, directives.escape, "\n".join(original))
        nodes.append(node)
    return ParsedDockerfile(dict(directives.values), directives.escape, nodes, warnings)


def _trim_continuation(line: str, directives: _Directives) -> tuple[str, bool]:
    if directives.escape not in line:
        return line, True
    match = directives.continuation.search(line)
    if match is None:
        return line, True
    return line[:match.start()], False


def _make_node(line: str, start: int, i: int, lines: list[str], escape: str,
               original: str) -> tuple[Node, int]:
    parts = _KEYWORD_SPLIT.split(line.strip(_GO_SPACE_STR), maxsplit=1)
    keyword = parts[0].lower()
    flags, rest = extract_flags(parts[1]) if len(parts) == 2 else ((), "")
    rest = rest.strip(_GO_SPACE_STR)
    heredocs: list[Heredoc] = []
    if keyword in HEREDOC_INSTRUCTIONS and "<<" in rest:
        for name, expand, chomp, fd in _find_heredocs(rest, escape):
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise DockerfileError(f"unterminated heredoc {name!r} (no line '{name}' ends it)", start)
                raw = lines[i]
                i += 1
                candidate = raw.rstrip("\r\n")
                if (candidate.lstrip("\t") if chomp else candidate) == name:
                    break
                body.append(raw + "\n")
            content = "".join(body)
            heredocs.append(Heredoc(name, _chomp(content) if chomp else content, expand, chomp, fd))
    return Node(keyword, flags, rest, start, max(i, start), original, tuple(heredocs)), i
