"""Word expansion as docker and BuildKit do it (their shell/lex.go): the one expander.

Handles ``$VAR``, ``${VAR}``, ``${VAR:-w}``, ``${VAR-w}``, ``${VAR:+w}``, ``${VAR+w}``,
``${VAR:?msg}``, ``${VAR?msg}``, ``${VAR#pat}``/``##``/``%``/``%%``, single quotes (literal),
double quotes (where only ``"``, ``$`` and the escape character can be escaped) and the escape
character outside quotes.  It is not a shell: no command substitution, no globbing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import translate

from .errors import DockerfileError

# Go's unicode.IsSpace for the characters a Dockerfile can hold (Python's isspace also counts
# \x1c-\x1f, which Go does not, so spell the set out).
GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                     "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# Shell special parameters: "$?" names a (normally unset) variable "?" rather than being literal.
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# How deep ${A:-${B:-...}} may nest. The expander recurses once a level, and Python's stack is
# finite; no real Dockerfile comes near this.
MAX_NESTING = 100


class _Words:
    """Collects the words of ProcessWords: unquoted whitespace splits, quoted text never does."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.buf: list[str] = []

    def add_rune(self, ch: str) -> None:
        if ch in GO_SPACE:
            self.finish()
        else:
            self.buf.append(ch)

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_rune(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)

    def finish(self) -> None:
        # docker never yields an empty word, not even for a quoted "" on its own.
        word = "".join(self.buf)
        if word:
            self.words.append(word)
        self.buf = []


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.env = env
        self.esc = escape
        self.depth = 0  # ${...} being read inside one another

    def process(self, stop: str | None, words: _Words | None, raw_escapes: bool = False) -> str:
        s, n, esc = self.s, self.n, self.esc
        out: list[str] = []
        while True:
            if self.i >= n:
                if stop is not None:
                    raise DockerfileError(f"unexpected end of statement while looking for matching {stop}")
                return "".join(out)
            ch = s[self.i]
            if stop is not None and ch == stop:
                self.i += 1
                return "".join(out)
            self.i += 1
            if ch == "'":
                tmp = self.single_quote()
                out.append(tmp)
                if words is not None:
                    words.add_raw(tmp)
            elif ch == '"':
                tmp = self.double_quote()
                out.append(tmp)
                if words is not None:
                    words.add_raw(tmp)
            elif ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                if words is not None:
                    words.add_string(tmp)
            elif ch == esc:
                if self.i >= n:
                    # A lone escape character at the end of a word disappears.
                    return "".join(out)
                if raw_escapes:
                    out.append(ch)
                ch = s[self.i]
                self.i += 1
                out.append(ch)
                if words is not None:
                    words.add_raw(ch)
            else:
                out.append(ch)
                if words is not None:
                    words.add_rune(ch)

    def single_quote(self) -> str:
        end = self.s.find("'", self.i)
        if end < 0:
            raise DockerfileError("unexpected end of statement while looking for matching single-quote")
        text = self.s[self.i:end]
        self.i = end + 1
        return text

    def double_quote(self) -> str:
        s, n, esc = self.s, self.n, self.esc
        out: list[str] = []
        while True:
            if self.i >= n:
                raise DockerfileError("unexpected end of statement while looking for matching double-quote")
            ch = s[self.i]
            self.i += 1
            if ch == '"':
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            if ch == esc and self.i < n and s[self.i] in ('"', "$", esc):
                # Only these can be escaped inside double quotes; other escapes stay as written.
                ch = s[self.i]
                self.i += 1
            elif ch == esc and self.i >= n:
                continue
            out.append(ch)

    def name(self) -> str:
        s, n, start = self.s, self.n, self.i
        if start >= n:
            return ""
        first = s[start]
        if first.isdecimal():
            while self.i < n and s[self.i].isdecimal():
                self.i += 1
            return s[start:self.i]
        if first in _SPECIAL_PARAMS:
            self.i += 1
            return first
        while self.i < n and (s[self.i].isalpha() or s[self.i].isdecimal() or s[self.i] == "_"):
            self.i += 1
        return s[start:self.i]

    def dollar(self) -> str:
        s, n = self.s, self.n
        if self.i >= n:
            return "$"
        if s[self.i] != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.i += 1
        if self.i >= n:
            raise DockerfileError("syntax error: missing '}'")
        if s[self.i] in "{}:":
            raise DockerfileError("syntax error: bad substitution")
        name = self.name()
        if self.i >= n:
            raise DockerfileError("syntax error: missing '}'")
        ch = s[self.i]
        self.i += 1
        if ch == "}":
            return self.env.get(name, "")
        modifier = ch
        colon = ch == ":"
        if colon:
            if self.i >= n:
                raise DockerfileError("syntax error: missing '}'")
            ch = s[self.i]
            self.i += 1
            modifier += ch
        if ch not in "+-?#%" or (colon and ch in "#%"):
            raise DockerfileError(f"unsupported modifier ({modifier}) in substitution")
        longest = False
        if ch in "#%" and self.i < n and s[self.i] == ch:
            # "##" and "%%" remove the longest match instead of the shortest.
            self.i += 1
            longest = True
        if self.depth >= MAX_NESTING:
            raise DockerfileError(f"variable substitutions nested more than {MAX_NESTING} deep")
        self.depth += 1
        try:
            word = self.process("}", None, raw_escapes=ch in "#%")
        except DockerfileError:
            if self.i >= n:
                raise DockerfileError("syntax error: missing '}'") from None
            raise
        finally:
            self.depth -= 1
        value = self.env.get(name)
        unset = value is None or (colon and value == "")
        if ch == "-":
            return word if unset else value  # type: ignore[return-value]  # value is a str whenever unset is False
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if value is None:
                raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
            if unset:
                raise DockerfileError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        return _remove_pattern(value or "", word, prefix=ch == "#", longest=longest)


def _remove_pattern(value: str, pattern: str, prefix: bool, longest: bool) -> str:
    rx = re.compile(translate(pattern), re.DOTALL)
    cuts = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for cut in cuts:
        part = value[:cut] if prefix else value[len(value) - cut:]
        if rx.match(part):
            return value[cut:] if prefix else value[:len(value) - cut]
    return value


_PLAIN = re.compile(r"[^$'\"]*")


def expand_word(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, variables substituted, whitespace kept."""
    if escape not in text and _PLAIN.fullmatch(text):
        return text  # the common case, kept fast for 20,000-line Dockerfiles
    return _Lexer(text, env, escape).process(None, None)


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Several words split on unquoted whitespace (also inside unquoted variable values)."""
    words = _Words()
    _Lexer(text, env, escape).process(None, words)
    words.finish()
    return words.words


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Heredoc content as a shell expands it: only ``$`` forms and escaped ``$``/escape."""
    out: list[str] = []
    lexer = _Lexer(text, env, escape)
    s, n = text, len(text)
    while lexer.i < n:
        ch = s[lexer.i]
        lexer.i += 1
        if ch == "$":
            out.append(lexer.dollar())
        elif ch == escape and lexer.i < n and s[lexer.i] in ("$", escape):
            out.append(s[lexer.i])
            lexer.i += 1
        else:
            out.append(ch)
    return "".join(out)
