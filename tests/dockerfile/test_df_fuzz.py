"""Property tests: random and mutated Dockerfiles give a plan or a DockerfileError, quickly.

Bounded for the suite (ISB_DF_FUZZ_EXAMPLES, default 300 examples a property); a longer
session is the same tests with a larger count (see docs/architecture.md).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isula_build.dockerfile import DockerfileError, DockerignoreMatcher, expand_word, expand_words, parse_dockerfile

EXAMPLES = int(os.environ.get("ISB_DF_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
SEEDS = [c["dockerfile"] for c in json.loads((Path(__file__).parent / "docker_cases.json").read_text())["cases"]]
SEEDS += [
    "FROM a AS x\nRUN <<EOF\necho $A\nEOF\nCOPY <<-'X' 3<<Y /d\n\tx\n\tX\ny\nY\nFROM x\nCOPY --from=x / /\n",
    "# escape=`\nFROM a\nRUN dir `\n  c:\\\nHEALTHCHECK --interval=5s CMD [\"x\"]\nONBUILD COPY a b\n",
]
TOKENS = [
    "FROM", "from", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "AS", "NONE",
    "scratch", "img", "x", "a=b", "=", "$", "${", "}", ":-", ":+", "-", "+", "?", "#", "%", "${A}", "$A",
    "\\", "`", "'", '"', "[", "]", "[\"a\"]", ",", "<<", "<<EOF", "<<-EOF", "EOF", "\tEOF", "--from=",
    "--chown=", "--chmod=", "--platform=", "--interval=", "--retries=", "--mount=", "--link", "--",
    "0", "1", "80/tcp", "1-3", "1s", " ", "  ", "\t", "\n", "\r\n", "\\\n", "# escape=`\n",
    "# syntax=x\n", "é", "\x00", "\ufeff", "²", "١",
]


def check(text: str, build_args: dict[str, str] | None = None, target: str | None = None) -> None:
    start = time.monotonic()
    try:
        plan = parse_dockerfile(text, build_args or {}, target)
    except DockerfileError as err:
        assert str(err)  # the message is never empty
    else:
        assert plan.stages and 0 <= plan.target < len(plan.stages)
        needed = plan.needed()
        assert needed[-1] == plan.target and sum(len(level) for level in plan.levels()) == len(needed)
    assert time.monotonic() - start < 5, "parsing took too long"


token_text = st.lists(st.sampled_from(TOKENS) | st.text(max_size=3), max_size=60).map("".join)


@FUZZ
@given(token_text)
def test_random_token_soup(text: str) -> None:
    check(text)


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(text: str) -> None:
    check(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup_line"]))
        if kind == "insert":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 5)):]
        elif kind == "replace":
            text = text[:pos] + draw(st.sampled_from(TOKENS)) + text[pos + 1:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
    return text


@FUZZ
@given(mutated(), st.dictionaries(st.sampled_from(["A", "X", "G", "http_proxy", "TAG"]), st.text(max_size=5)),
       st.none() | st.sampled_from(["x", "one", "two", "build", "a"]))
def test_mutated_dockerfiles(text: str, build_args: dict[str, str], target: str | None) -> None:
    check(text, build_args, target)


@FUZZ
@given(st.lists(st.sampled_from(["$", "{", "}", ":", "-", "+", "?", "#", "%", "'", '"', "\\", "A", "B", " ", "x"]),
                max_size=40).map("".join))
def test_expander_never_crashes(word: str) -> None:
    env = {"A": "a b", "B": ""}
    for fn in (expand_word, expand_words):
        try:
            fn(word, env)
        except DockerfileError:
            pass


@FUZZ
@given(st.lists(st.sampled_from(["*", "**", "?", "/", "!", "[", "]", "-", "\\", "a", "b", ".", "..", "#", " ", "\n"]),
                max_size=40).map("".join),
       st.lists(st.sampled_from(["a", "b", "..", ".", "/", "ab", "*"]), max_size=6).map("/".join))
def test_dockerignore_never_crashes(patterns: str, path: str) -> None:
    try:
        matcher = DockerignoreMatcher.from_text(patterns)
    except DockerfileError:
        return
    assert matcher.ignored(path) in (True, False)
