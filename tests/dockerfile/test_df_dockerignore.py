""".dockerignore matching with docker's rules."""

from __future__ import annotations

import pytest

from isula_build.dockerfile import DockerfileError, DockerignoreMatcher
from isula_build.dockerfile.dockerignore import clean_path

CASES = [
    # (patterns, path, ignored)
    ("*.md", "a.md", True),
    ("*.md", "sub/a.md", False),  # "*" does not cross "/"
    ("*/*.md", "sub/a.md", True),
    ("**/*.md", "a.md", True),
    ("**/*.md", "x/y/a.md", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**", "a/x/y", True),
    ("a/**", "a", False),
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("?.txt", "/.txt", False),
    ("[a-c].txt", "b.txt", True),
    ("[a-c].txt", "d.txt", False),
    ("build", "build/x/y.o", True),  # a parent directory matches
    ("build/", "build/x", True),  # trailing "/" is cleaned away
    ("/build", "build", True),  # leading "/" means the context root
    ("./build", "build", True),
    ("a/../b", "b", True),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "x.md", True),
    ("!README.md\n*.md", "README.md", True),  # the last matching pattern wins
    ("docs\n!docs/keep", "docs/keep", False),
    ("docs\n!docs/keep", "docs/other", True),
    ("docs\n!docs/keep", "docs/keep/inner", False),
    ("# comment\n", "# comment", False),
    (" # not a comment", "# not a comment", True),  # "#" only starts a comment in column 1
    ("  spaced.txt  ", "spaced.txt", True),
    ("a.b", "aXb", False),  # "." is literal
    ("a+b(c)", "a+b(c)", True),
    ("\\*", "*", True),
    ("\\*", "x", False),
    ("Dockerfile\n.dockerignore", "Dockerfile", True),
    ("Dockerfile\n.dockerignore", ".dockerignore", True),
    ("\ufeffbom", "bom", True),
    ("x", "./x", True),
    ("x", "/x", True),
    ("**", "anything/at/all", True),
    ("**/foo", "foo", True),
    ("**foo", "afoo", True),
    ("dir/*", "dir", False),
    ("dir/*", "dir/f", True),
]


@pytest.mark.parametrize(("patterns", "path", "ignored"), CASES)
def test_ignored(patterns: str, path: str, ignored: bool) -> None:
    assert DockerignoreMatcher.from_text(patterns).ignored(path) is ignored


def test_directory_reached_by_an_exception_is_walked() -> None:
    m = DockerignoreMatcher.from_text("docs\n!docs/keep\nbuild\n!**/keep.txt\n")
    assert m.ignored("docs") is False  # a walker must descend: docs/keep is included
    assert m.ignored("docs", is_dir=False) is True  # a file named "docs" is still ignored
    assert m.ignored("docs/other", is_dir=False) is True
    assert m.ignored("docs/keep", is_dir=False) is False
    # Only a literal prefix counts, as in docker: a wildcard exception does not open "build".
    assert m.ignored("build", is_dir=True) is True


def test_patterns_are_cleaned() -> None:
    m = DockerignoreMatcher.from_text("./a/\n/b//c\n! d/\n\n#x\n")
    assert m.patterns == ["a", "b/c", "!d"]
    assert m.has_exceptions
    assert not DockerignoreMatcher.from_text("a").has_exceptions


@pytest.mark.parametrize(("path", "clean"), [
    ("a/./b/", "a/b"), ("a//b", "a/b"), ("a/../..", ".."), ("", "."), ("/a/../..", "/"), ("./", "."),
])
def test_clean_path(path: str, clean: str) -> None:
    assert clean_path(path) == clean


def test_bad_pattern_names_its_line() -> None:
    with pytest.raises(DockerfileError) as err:
        DockerignoreMatcher.from_text("ok\n[z-a]\n")
    assert err.value.line == 2
    assert str(err.value).startswith(".dockerignore line 2: syntax error in pattern")


def test_size_limit() -> None:
    with pytest.raises(DockerfileError, match="larger than the limit"):
        DockerignoreMatcher.from_text("a\n" * (1 << 19) + "b")
    assert DockerignoreMatcher.from_text("a\n" * ((1 << 19) - 1)).ignored("a")


@pytest.mark.parametrize("patterns, path, ignored", [
    ("**/" * 20 + "x", "a/" * 30 + "y", False),
    ("**/" * 20 + "x", "a/" * 30 + "x", True),
    ("a*a*a*a*a*a*a*a*a*b", "a" * 200, False),
    ("a*a*a*a*a*a*a*a*a*b", "a" * 200 + "b", True),
    ("*a*a*a*a*a*a*a*a*a*a*/z", "a" * 100 + "/y", False),
])
def test_hostile_patterns_match_in_linear_time(patterns: str, path: str, ignored: bool) -> None:
    import threading
    answers: list[bool] = []
    worker = threading.Thread(
        target=lambda: answers.append(DockerignoreMatcher.from_text(patterns).ignored(path)),
        daemon=True)
    worker.start()
    worker.join(10)
    assert answers == [ignored]
