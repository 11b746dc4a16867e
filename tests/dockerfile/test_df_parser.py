"""Parser table tests: directives, comments, continuations, heredocs, flags, line numbers."""

from __future__ import annotations

import pytest

from isula_build.dockerfile import DockerfileError
from isula_build.dockerfile.parser import extract_flags, parse, split_raw_words


def test_nodes_carry_line_numbers_and_lower_keywords() -> None:
    parsed = parse("# comment\n\nFROM x\nRun echo a \\\n  b\n\nCOPY a b\n")
    assert [(n.keyword, n.start_line, n.end_line) for n in parsed.nodes] == [
        ("from", 3, 3), ("run", 4, 5), ("copy", 7, 7)]
    assert parsed.nodes[1].rest == "echo a   b"


@pytest.mark.parametrize(("text", "escape", "directives"), [
    ("# escape=`\nFROM x\n", "`", {"escape": "`"}),
    ("#escape=\\\nFROM x\n", "\\", {"escape": "\\"}),
    ("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n", "`", {"syntax": "docker/dockerfile:1", "escape": "`"}),
    ("#  ESCAPE =  `  \nFROM x\n", "`", {"escape": "`"}),
    # Only at the top: after a comment, a blank line, an unknown directive or an instruction
    # a directive is an ordinary comment.
    ("# hello\n# escape=`\nFROM x\n", "\\", {}),
    ("\n# escape=`\nFROM x\n", "\\", {}),
    ("# unknown=1\n# escape=`\nFROM x\n", "\\", {}),
    ("FROM x\n# escape=`\n", "\\", {}),
])
def test_directives(text: str, escape: str, directives: dict[str, str]) -> None:
    parsed = parse(text)
    assert parsed.escape == escape
    assert parsed.directives == directives


@pytest.mark.parametrize(("text", "line", "message"), [
    ("# escape=x\nFROM a\n", 1, "invalid escape token 'x'"),
    ("# escape=`\n# escape=\\\nFROM a\n", 2, "only one escape parser directive"),
    ("FROM a\nRUN <<EOF\nno end\n", 2, "unterminated heredoc"),
])
def test_parse_errors(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse(text)
    assert err.value.line == line
    assert message in str(err.value)
    assert str(err.value).startswith(f"Dockerfile line {line}: ")


def test_backtick_continuation() -> None:
    parsed = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n")
    assert parsed.nodes[1].rest == "dir c:\\   && echo"


def test_comments_and_empty_lines_inside_continuation() -> None:
    parsed = parse("FROM x\nRUN a \\\n# comment\n\n   # indented comment\n  b\n")
    assert parsed.nodes[1].rest == "a   b"
    assert parsed.nodes[1].end_line == 6
    assert any("Empty continuation line" in w for w in parsed.warnings)


def test_crlf_and_bom() -> None:
    parsed = parse("\ufeffFROM x\r\nRUN a \\\r\n b\r\n")
    assert [n.keyword for n in parsed.nodes] == ["from", "run"]
    assert parsed.nodes[1].rest == "a  b"


def test_heredocs() -> None:
    text = ("FROM x\n"
            "RUN <<EOF\necho $A\nEOF\n"
            "COPY <<-\"ONE\" 3<<'TWO' /dst/\n\tfirst\n\tONE\nsecond $X\nTWO\n"
            "RUN cat <<EOF | sh\nif\nEOF\n"
            "LABEL a=1\n")
    nodes = parse(text).nodes
    run, copy, pipe, label = nodes[1:]
    assert (run.start_line, run.end_line) == (2, 4)
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo $A\n" and run.heredocs[0].expand
    one, two = copy.heredocs
    assert (one.name, one.content, one.chomp, one.expand, one.fd) == ("ONE", "first\n", True, False, None)
    assert (two.name, two.content, two.expand, two.fd) == ("TWO", "second $X\n", False, 3)
    assert pipe.heredocs[0].content == "if\n"
    assert label.start_line == 13


def test_heredocs_only_for_run_copy_add_and_not_quoted() -> None:
    nodes = parse("FROM x\nLABEL a=<<EOF\nRUN echo '<<EOF' \"<<X\"\n").nodes
    assert all(not n.heredocs for n in nodes)


@pytest.mark.parametrize(("rest", "flags", "remaining"), [
    ("--from=a b c", ("--from=a",), "b c"),
    ("--chown=1:1  --chmod=755 a b", ("--chown=1:1", "--chmod=755"), "a b"),
    ("--from=\"a b\" x y", ("--from=a b",), "x y"),
    ("-- --not-a-flag x", (), " --not-a-flag x"),
    ("a --from=x", (), "a --from=x"),
    ("--link", ("--link",), ""),
])
def test_extract_flags(rest: str, flags: tuple[str, ...], remaining: str) -> None:
    assert extract_flags(rest) == (flags, remaining)


@pytest.mark.parametrize(("rest", "words"), [
    ('a=1 b="x y"', ["a=1", 'b="x y"']),
    ("a='x y' c", ["a='x y'", "c"]),
    ('k=\\" v', ['k=\\"', "v"]),
    ('"" x', ['""', "x"]),
])
def test_split_raw_words(rest: str, words: list[str]) -> None:
    assert split_raw_words(rest, "\\") == words


def test_size_limit() -> None:
    with pytest.raises(DockerfileError, match="larger than the limit"):
        parse("FROM x\n" + "#" * (1 << 20))
    parse("FROM x\n" + "#" * ((1 << 20) - 8))
