"""Typed instructions: every instruction, its forms and flags, and the errors with line numbers."""

from __future__ import annotations

import pytest

from isula_build.dockerfile import DockerfileError, parse_trigger
from isula_build.dockerfile.instructions import (
    AddInstruction, ArgInstruction, CmdInstruction, CopyInstruction, EntrypointInstruction,
    EnvInstruction, ExposeInstruction, FromInstruction, HealthcheckInstruction, Instruction,
    LabelInstruction, MaintainerInstruction, OnbuildInstruction, RunInstruction, ShellInstruction,
    StopSignalInstruction, UserInstruction, VolumeInstruction, WorkdirInstruction, parse_go_duration,
    parse_instruction,
)
from isula_build.dockerfile.parser import parse
from isula_build.dockerfile.sources import GitSource, git_source


def one(line: str) -> Instruction:
    """The typed instruction for one line placed after a FROM (so it is line 2)."""
    nodes = parse("FROM base\n" + line + "\n").nodes
    return parse_instruction(nodes[1])


@pytest.mark.parametrize(("line", "expected"), [
    ("FROM --platform=linux/arm64 img:1 AS Build",
     FromInstruction(2, "", "img:1", "build", "linux/arm64")),
    ("FROM img as 1st-stage", FromInstruction(2, "", "img", "1st-stage")),
    ("RUN echo $HOME", RunInstruction(2, "", ("echo $HOME",), False)),
    ('RUN ["echo", "$HOME"]', RunInstruction(2, "", ("echo", "$HOME"), True)),
    ("RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none make",
     RunInstruction(2, "", ("make",), False, (), ("type=cache,target=/c", "type=tmpfs,target=/t"), "none")),
    ("CMD []", CmdInstruction(2, "", (), True)),
    ("CMD echo a", CmdInstruction(2, "", ("echo a",), False)),
    ("ENTRYPOINT [\"/bin/sh\", \"-c\"]", EntrypointInstruction(2, "", ("/bin/sh", "-c"), True)),
    ('SHELL ["powershell", "-command"]', ShellInstruction(2, "", ("powershell", "-command"))),
    ("MAINTAINER Jane <j@x>", MaintainerInstruction(2, "", "Jane <j@x>")),
    ('LABEL a=1 "b c"="d e"', LabelInstruction(2, "", (("a", "1"), ('"b c"', '"d e"')))),
    ("LABEL key value with  spaces", LabelInstruction(2, "", (("key", "value with  spaces"),))),
    ('ENV A=x B="y z"', EnvInstruction(2, "", (("A", "x"), ("B", '"y z"')))),
    ("ENV A value with spaces", EnvInstruction(2, "", (("A", "value with spaces"),))),
    ("ARG A B=2 C=", ArgInstruction(2, "", (("A", None), ("B", "2"), ("C", "")))),
    ("EXPOSE 80 53/udp 8000-8001", ExposeInstruction(2, "", ("80", "53/udp", "8000-8001"))),
    ("COPY --from=build --chown=app:app --chmod=0644 --link a b /dst/",
     CopyInstruction(2, "", ("a", "b"), "/dst/", False, (), "build", "app:app", "0644", True)),
    ('COPY ["a b", "/c d/"]', CopyInstruction(2, "", ("a b",), "/c d/", True)),
    ("ADD --checksum=sha256:" + "ab" * 32 + " http://x/y /y",
     AddInstruction(2, "", ("http://x/y",), "/y", False, (), None, None, False,
                    "sha256:" + "ab" * 32)),
    ("ADD --keep-git-dir=true --unpack=false --exclude=*.md --exclude=!a.md "
     "https://h/r.git#v1:docs /y",
     AddInstruction(2, "", ("https://h/r.git#v1:docs",), "/y", False, (), None, None, False,
                    None, True, ("*.md", "!a.md"), False)),
    ("ADD --unpack http://x/y.tgz /y",
     AddInstruction(2, "", ("http://x/y.tgz",), "/y", False, unpack=True)),
    ("COPY --parents --exclude=**/*.tmp --link ./x/./y/*.txt /p/",
     CopyInstruction(2, "", ("./x/./y/*.txt",), "/p/", False, link=True, parents=True,
                     excludes=("**/*.tmp",))),
    # A variable in a source: judged once expanded, by the engine.
    ("ADD --checksum=sha256:" + "ab" * 32 + " $URL /y",
     AddInstruction(2, "", ("$URL",), "/y", False, checksum="sha256:" + "ab" * 32)),
    ('VOLUME ["/a", "/b"]', VolumeInstruction(2, "", ("/a", "/b"))),
    ("VOLUME /a /b", VolumeInstruction(2, "", ("/a", "/b"))),
    ("USER app:grp", UserInstruction(2, "", "app:grp")),
    ("WORKDIR /a b", WorkdirInstruction(2, "", "/a b")),
    ("STOPSIGNAL SIGTERM", StopSignalInstruction(2, "", "SIGTERM")),
    ("HEALTHCHECK NONE", HealthcheckInstruction(2, "", ("NONE",))),
    ("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0 --start-interval=2s --retries=3 CMD true",
     HealthcheckInstruction(2, "", ("CMD-SHELL", "true"), 90 * 10**9, 5 * 10**8, 0, 2 * 10**9, 3)),
    ('HEALTHCHECK CMD ["curl", "-f", "x"]', HealthcheckInstruction(2, "", ("CMD", "curl", "-f", "x"))),
])
def test_instruction(line: str, expected: Instruction) -> None:
    assert one(line) == expected


def test_heredoc_counts_as_copy_source() -> None:
    ins = one("COPY <<EOF /etc/x\nhello\nEOF")
    assert isinstance(ins, CopyInstruction)
    assert ins.sources == ("<<EOF",) and ins.dest == "/etc/x"
    assert ins.heredocs[0].content == "hello\n"


def test_onbuild_trigger_is_parsed() -> None:
    ins = one("ONBUILD COPY --chown=1 a /b")
    assert isinstance(ins, OnbuildInstruction)
    assert ins.expression == "COPY --chown=1 a /b"
    assert isinstance(ins.trigger, CopyInstruction) and ins.trigger.chown == "1"


def test_parse_trigger_from_base_image() -> None:
    ins = parse_trigger("RUN echo hi", line=3)
    assert isinstance(ins, RunInstruction) and ins.command == ("echo hi",) and ins.line == 3
    with pytest.raises(DockerfileError, match="isn't allowed as an ONBUILD trigger"):
        parse_trigger("FROM x")


@pytest.mark.parametrize(("line", "message"), [
    ("FORM x", "unknown instruction: FORM (did you mean FROM?)"),
    ("FROM a b", "FROM requires either one or three arguments"),
    ("FROM a AS b/c", "invalid stage name"),
    ("FROM a AS " + "n" * 65, "at most 64 characters"),
    ("FROM a AS 123", "not only digits"),
    ("FROM --platfrm=linux a", "unknown flag: --platfrm for FROM (did you mean --platform?)"),
    ("COPY --chmod 755 a b", "missing a value on flag: --chmod"),
    ("COPY --from=a --from=b x y", "duplicate flag specified: --from"),
    ("COPY --link=maybe a b", "expecting boolean value for flag --link"),
    ("COPY --interval=1s a b", "unknown flag: --interval for COPY"),
    ("COPY --parent a b", "unknown flag: --parent for COPY (did you mean --parents?)"),
    ("ADD --parents a b", "unknown flag: --parents for ADD"),
    ("COPY --checksum=sha256:00 a b", "unknown flag: --checksum for COPY"),
    ("COPY --unpack a b", "unknown flag: --unpack for COPY"),
    ("COPY --exclude a b", "missing a value on flag: --exclude"),
    ("COPY --exclude= a b", "--exclude needs a pattern"),
    ("COPY --exclude=[z-a] a b", "invalid --exclude pattern"),
    ("ADD --unpack=sometimes a b", "expecting boolean value for flag --unpack"),
    ("ADD --checksum=md5:00 http://x/y /y", "invalid --checksum 'md5:00'"),
    ("ADD --checksum=sha256:" + "0" * 64 + " a.txt /y",
     "ADD --checksum is for an http(s) source, not a.txt"),
    ("ADD --checksum=sha256:" + "0" * 64 + " https://h/r.git /y",
     "ADD --checksum is for an http(s) source, not https://h/r.git"),
    ("ADD --checksum=sha256:" + "0" * 64 + " http://x/a http://x/b /y/",
     "ADD --checksum needs a single source"),
    ("ADD --keep-git-dir a.txt /y", "ADD --keep-git-dir is for a git repository, not a.txt"),
    ("ADD --keep-git-dir http://x/y.tar /y", "ADD --keep-git-dir is for a git repository"),
    ("COPY a", "COPY requires at least two arguments"),
    ("ADD", "ADD requires at least two arguments"),
    ("CMD --version", "unknown flag: --version for CMD"),
    ('CMD ["a", 1]', "arrays must be comprised of strings only"),
    ("RUN", "RUN requires at least one argument"),
    ("RUN --network=bridge x", "unsupported network mode"),
    ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form"),
    ("SHELL []", "SHELL requires at least one argument"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("ENV A=1 B", "can't find = in \"B\""),
    ("ENV =1", "ENV names can not be blank"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ARG", "ARG requires at least one argument"),
    ("ARG =x", "ARG names can not be blank"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
    ("VOLUME", "VOLUME requires at least one argument"),
    ('VOLUME [""]', "VOLUME specified can not be an empty string"),
    ("USER", "USER requires exactly one argument"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
    ("MAINTAINER", "MAINTAINER requires exactly one argument"),
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD maintainer x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD FOO x", "unknown instruction: FOO"),
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK --interval=5s NONE", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK --interval=1ns CMD x", 'Interval "interval" cannot be less than 1ms'),
    ("HEALTHCHECK --timeout=soon CMD x", "invalid duration for --timeout"),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
    ("HEALTHCHECK --retries=x CMD x", "invalid value for --retries"),
])
def test_instruction_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        one(line)
    assert err.value.line == 2
    assert str(err.value) == f"Dockerfile line 2: {err.value.reason}"
    assert message in err.value.reason


@pytest.mark.parametrize(("text", "ns"), [
    ("0", 0), ("1s", 10**9), ("1.5s", 15 * 10**8), ("1h2m3s", 3723 * 10**9), ("250us", 250_000),
    ("1ms", 10**6), ("-1s", -(10**9)), (".5m", 30 * 10**9),
])
def test_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1s2", ".s", "--1s"])
def test_go_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize(("ports", "specs"), [
    (("80",), ["80/tcp"]),
    (("53/UDP", "9/sctp"), ["53/udp", "9/sctp"]),
    (("8000-8002/tcp",), ["8000/tcp", "8001/tcp", "8002/tcp"]),
])
def test_expose_specs(ports: tuple[str, ...], specs: list[str]) -> None:
    assert ExposeInstruction(1, "", ports).port_specs() == specs


@pytest.mark.parametrize("port", ["abc", "80/xyz", "70000", "9-1", "1.2.3.4:80:80", "-1", "80-"])
def test_expose_invalid(port: str) -> None:
    with pytest.raises(DockerfileError):
        ExposeInstruction(1, "", (port,)).port_specs()


@pytest.mark.parametrize(("source", "expected"), [
    ("https://h/r.git#v1:docs/", GitSource("https://h/r.git", "v1", "docs")),
    ("http://h/r.git", GitSource("http://h/r.git", "", "")),
    ("git@github.com:o/r.git#main", GitSource("git@github.com:o/r.git", "main", "")),
    ("git://h/r#:sub", GitSource("git://h/r", "", "sub")),
    ("ssh://git@h/r.git", GitSource("ssh://git@h/r.git", "", "")),
    ("https://h/file.tar.gz", None),     # an http(s) URL is git only with a .git path
    ("git@-oProxyCommand=x:r", None),     # a "host" that ssh would take as an option
    ("local/dir", None),
])
def test_git_sources(source: str, expected: GitSource | None) -> None:
    assert git_source(source) == expected
