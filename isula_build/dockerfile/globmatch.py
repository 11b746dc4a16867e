"""Linear-time matching of the regexes dockerignore.py builds from .dockerignore patterns.

Python's re backtracks: `**/**/…/x` or `a*a*a*…b` against a long name takes exponential time
(docker's Go regexp is linear). The regexes .dockerignore patterns become are simple: a `^`, a
sequence of one-character atoms (a literal, an escape, a set, `.`), each maybe starred, the
group `(.*/)?`, and a `$`. compile_linear parses that back into tokens and matches them by
simulating the automaton (all positions at once, Thompson's way): time O(len(path) × tokens).

A regex with fewer than two repeats cannot backtrack exponentially and gives None, as does one
with anything else (a zero-width escape like `\\b`, a back reference, `\\x41`) gives None:
its pattern keeps the re module's matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_GROUP = "(.*/)?"
# Escapes that stand for exactly one character of the two characters written.
_ONE_CHAR_ESCAPES = frozenset("dDwWsSafnrtv")


@dataclass(frozen=True)
class _Token:
    test: Callable[[str], bool] | None   # None: the start of an optional group
    star: bool = False
    skip_to: int = 0                     # the group's end (for a group start)


class LinearMatcher:
    """fullmatch-like test of a `^…$` regex (with Python's `$`: a final newline may follow)."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens

    def match(self, text: str) -> bool:
        end = len(self._tokens)
        current = self._closure({0})
        for i, ch in enumerate(text):
            if end in current and text[i:] == "\n":
                return True
            step = set()
            for pos in current:
                token = self._tokens[pos] if pos < end else None
                if token is not None and token.test is not None and token.test(ch):
                    step.add(pos if token.star else pos + 1)
            if not step:
                return False
            current = self._closure(step)
        return end in current

    def _closure(self, positions: set[int]) -> set[int]:
        found, todo = set(positions), list(positions)
        while todo:
            pos = todo.pop()
            if pos >= len(self._tokens):
                continue
            token = self._tokens[pos]
            nexts = []
            if token.test is None:
                nexts = [pos + 1, token.skip_to]
            elif token.star:
                nexts = [pos + 1]
            for nxt in nexts:
                if nxt not in found:
                    found.add(nxt)
                    todo.append(nxt)
        return found


def compile_linear(regex: str) -> LinearMatcher | None:
    """The matcher of `regex` (as dockerignore.py writes them), or None when it has more."""
    if not (regex.startswith("^") and regex.endswith("$")):
        return None
    body, i = regex[1:-1], 0
    tokens: list[_Token] = []
    while i < len(body):
        if body.startswith(_GROUP, i):
            # (.*/)?  ==  [optional: any* then "/"]
            tokens.append(_Token(None, skip_to=len(tokens) + 3))
            tokens.append(_Token(_any, star=True))
            tokens.append(_Token("/".__eq__))
            i += len(_GROUP)
            continue
        atom_end = _atom_end(body, i)
        if atom_end is None:
            return None
        atom = body[i:atom_end]
        star = body.startswith("*", atom_end)
        if body.startswith(("*", "?", "+", "{", "(", ")", "|", "^", "$"), i) or \
                body.startswith(("?", "+", "{"), atom_end):
            return None  # never written by dockerignore.py outside the forms above
        tokens.append(_Token(_one_char_test(atom), star=star))
        i = atom_end + (1 if star else 0)
    if sum(1 for token in tokens if token.star or token.test is None) < 2:
        return None  # one unbounded repeat cannot backtrack badly: the re module is faster
    return LinearMatcher(tokens)


def _atom_end(body: str, i: int) -> int | None:
    ch = body[i]
    if ch == "\\":
        if i + 1 >= len(body):
            return None
        escaped = body[i + 1]
        if escaped.isascii() and escaped.isalnum() and escaped not in _ONE_CHAR_ESCAPES:
            return None
        return i + 2
    if ch == "[":
        # Python's set syntax: an optional "^", a "]" first is literal, "\" escapes one.
        j = i + 1
        if j < len(body) and body[j] == "^":
            j += 1
        if j < len(body) and body[j] == "]":
            j += 1
        while j < len(body) and body[j] != "]":
            j += 2 if body[j] == "\\" else 1
        return j + 1 if j < len(body) else None
    return i + 1


def _any(ch: str) -> bool:
    return True


def _one_char_test(atom: str) -> Callable[[str], bool]:
    if len(atom) == 1 and atom != ".":
        return atom.__eq__
    regex = re.compile(atom, re.DOTALL)
    return lambda ch: regex.fullmatch(ch) is not None
