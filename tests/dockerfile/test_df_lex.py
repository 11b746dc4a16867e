"""Word expansion table tests (docker's shell/lex.go rules)."""

from __future__ import annotations

import pytest

from isula_build.dockerfile import DockerfileError, expand_word, expand_words
from isula_build.dockerfile.lex import expand_heredoc

ENV = {"A": "a", "B": "b c", "E": "", "PATH": "/bin", "é": "acc", "X_1": "x1"}

WORDS = [
    ("plain", "plain"),
    ("$A", "a"),
    ("${A}", "a"),
    ("${A}x", "ax"),
    ("$Ax", ""),  # the name is "Ax"
    ("$A.x", "a.x"),
    ("$X_1", "x1"),
    ("$é", "acc"),
    ("$UNSET", ""),
    ("${UNSET:-d}", "d"),
    ("${E:-d}", "d"),
    ("${A:-d}", "a"),
    ("${UNSET-d}", "d"),
    ("${E-d}", ""),
    ("${A:+w}", "w"),
    ("${E:+w}", ""),
    ("${UNSET:+w}", ""),
    ("${A+w}", "w"),
    ("${E+w}", "w"),
    ("${UNSET+w}", ""),
    ("${UNSET:-$A}", "a"),
    ("${UNSET:-${A}x}", "ax"),
    ("${UNSET:-'q w'}", "q w"),
    ("${UNSET:-a\\}b}", "a}b"),
    ("${A?}", "a"),
    ("${PATH#/}", "bin"),
    ("${B% *}", "b"),
    ("${B##* }", "c"),
    ("'$A'", "$A"),
    ("'a\\b'", "a\\b"),
    ('"$A"', "a"),
    ('"${A}"', "a"),
    ('"\\$A"', "$A"),
    ('"a\\"b"', 'a"b'),
    ('"a\\b"', "a\\b"),
    ('"a\\\\b"', "a\\b"),
    ("\\$A", "$A"),
    ("a\\ b", "a b"),
    ("x\\y", "xy"),
    ("trailing\\", "trailing"),
    ("$", "$"),
    ("cost$", "cost$"),
    ("$/", "$/"),
    ("$1x", "x"),
    ("$-x", "x"),
    ('"$B"', "b c"),
    ("$B", "b c"),
    ("a   b", "a   b"),
    ("${A}${A}", "aa"),
]


@pytest.mark.parametrize(("word", "expected"), WORDS)
def test_expand_word(word: str, expected: str) -> None:
    assert expand_word(word, ENV) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("a b", ["a", "b"]),
    ("$B", ["b", "c"]),  # unquoted values split
    ('"$B"', ["b c"]),  # quoted ones do not
    ("'x y' z", ["x y", "z"]),
    ('""', []),  # docker drops empty words
    ("a\\ b c", ["a b", "c"]),
    ("  lead  trail  ", ["lead", "trail"]),
])
def test_expand_words(text: str, expected: list[str]) -> None:
    assert expand_words(text, ENV) == expected


def test_backtick_escape() -> None:
    assert expand_word("`$A", ENV, "`") == "$A"
    assert expand_word("c:\\path", ENV, "`") == "c:\\path"
    assert expand_word('"a`"b"', ENV, "`") == 'a"b'


@pytest.mark.parametrize(("word", "message"), [
    ("'open", "matching single-quote"),
    ('"open', "matching double-quote"),
    ("${A", "missing '}'"),
    ("${}", "bad substitution"),
    ("${:a}", "bad substitution"),
    ("${A:=x}", "unsupported modifier (:=)"),
    ("${A:#x}", "unsupported modifier (:#)"),
    ("${UNSET:-x", "missing '}'"),
    ("${UNSET?must be set}", "UNSET: must be set"),
    ("${E:?}", "E: is not allowed to be empty"),
])
def test_expand_errors(word: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        expand_word(word, ENV)
    assert message in str(err.value)


def test_heredoc_expansion_keeps_quotes() -> None:
    assert expand_heredoc("echo \"$A\" '$B' \\$A\n", ENV) == "echo \"a\" 'b c' $A\n"


def test_deep_nesting_is_a_dockerfile_error_with_the_line() -> None:
    # 500 nested ${A:-...} ran Python's stack out ("internal error" from the daemon).
    from isula_build.dockerfile import parse_dockerfile
    from isula_build.dockerfile.lex import MAX_NESTING
    nested = "${A:-" * MAX_NESTING + "x" + "}" * MAX_NESTING
    assert expand_word(nested, {}) == "x"
    for depth in (MAX_NESTING + 1, 500, 20_000):
        word = "${A:-" * depth + "x" + "}" * depth
        with pytest.raises(DockerfileError, match=f"nested more than {MAX_NESTING} deep"):
            expand_word(word, {})
        with pytest.raises(DockerfileError) as err:
            parse_dockerfile(f'FROM a\nENV B=1\nLABEL l="{word}"\n', {}).stages[0].resolve({})
        assert err.value.line == 3 and str(err.value).startswith("Dockerfile line 3: variable")
        with pytest.raises(DockerfileError) as err:
            parse_dockerfile(f"ARG V={word}\nFROM a\n", {})
        assert err.value.line == 1
