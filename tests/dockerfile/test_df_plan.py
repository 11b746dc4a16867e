"""Stage plan: ARG scoping, build args, the dependency graph, --target, limits."""

from __future__ import annotations

import pytest

from isula_build.builder.result import unused_args_warning
from isula_build.dockerfile import DockerfileError, parse_dockerfile
from isula_build.dockerfile.instructions import CopyInstruction, LabelInstruction, RunInstruction
from isula_build.dockerfile.plan import automatic_platform_args

MULTI = """\
ARG BASE=alpine:3
FROM $BASE AS deps
RUN make deps
FROM ${BASE} AS 2nd-tools
RUN make tools
FROM scratch AS Unused
COPY --from=golang:1.22 /usr/local/go /go
FROM deps AS build
COPY --from=2ND-TOOLS /t /t
COPY --from=0 /d /d
FROM scratch
COPY --from=build /out /out
"""


def labels(plan, index: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    out: dict[str, str] = {}
    for step in plan.stages[index].resolve({}):  # as if the base image had no ENV
        if isinstance(step.instruction, LabelInstruction):
            out.update(step.instruction.labels)
    return out


def test_stages_and_graph() -> None:
    plan = parse_dockerfile(MULTI, {})
    assert [(s.index, s.name) for s in plan.stages] == [
        (0, "deps"), (1, "2nd-tools"), (2, "unused"), (3, "build"), (4, None)]
    assert plan.stages[0].from_.image == "alpine:3" and plan.stages[0].base_image == "alpine:3"
    assert plan.stages[3].base_stage == 0 and plan.stages[3].base_image is None
    assert plan.stages[3].deps == {0, 1}
    assert plan.stages[2].images == ("golang:1.22",) and plan.stages[2].base_image is None
    assert plan.target == 4
    assert plan.needed() == [0, 1, 3, 4]  # the unused stage is skipped
    assert plan.levels() == [[0, 1], [3], [4]]  # deps and 2nd-tools can run in parallel
    assert plan.images() == ["alpine:3"]
    assert plan.stage("BUILD").index == 3 and plan.stage("1").name == "2nd-tools"


def test_target() -> None:
    plan = parse_dockerfile(MULTI, {"BASE": "debian"}, target="Unused")
    assert plan.target == 2
    assert plan.needed() == [2]
    assert plan.images() == ["golang:1.22"]
    assert plan.stages[0].from_.image == "debian"
    with pytest.raises(DockerfileError, match="target stage 'nope' could not be found"):
        parse_dockerfile(MULTI, {}, target="nope")


def test_copy_from_later_stage_and_cycles() -> None:
    plan = parse_dockerfile("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n", {}, target="one")
    assert plan.stages[0].deps == {1} and plan.needed() == [1, 0]
    with pytest.raises(DockerfileError, match="circular dependency detected on stage: one"):
        parse_dockerfile("FROM a AS one\nCOPY --from=one /x /x\n", {})
    with pytest.raises(DockerfileError, match="circular dependency"):
        parse_dockerfile("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nCOPY --from=one /y /y\n", {})


def test_from_names_only_earlier_stages() -> None:
    plan = parse_dockerfile("FROM later\nFROM x AS later\n", {})
    assert plan.stages[0].base_image == "later" and plan.stages[0].deps == frozenset()


@pytest.mark.parametrize(("text", "line", "message"), [
    ("FROM a\nCOPY --from=5 /x /y\n", 2, "invalid stage index 5"),
    ("FROM a\nARG S=x\nCOPY --from=$S /x /y\n", 3, "variable expansion is not supported for --from"),
    ("FROM a AS x\nFROM b AS X\n", 2, "duplicate stage name 'x'"),
    ("RUN x\nFROM a\n", 1, "RUN before the first FROM"),
    ("FROM a\nCOPY --chmod=u+x a b\n", 2, "invalid --chmod=u+x"),
    ("FROM a\nENV M=999\nCOPY --chmod=$M a b\n", 3, "invalid --chmod=999"),
    ("FROM a\nSTOPSIGNAL SIGNOPE\n", 2, "Invalid signal: SIGNOPE"),
    ("FROM a\nEXPOSE 80/xyz\n", 2, "invalid protocol"),
    ("FROM a\n\nLABEL a=${A\n", 3, "missing '}'"),
    ("ARG X='\nFROM a\n", 1, "matching single-quote"),
    ("ARG E\nFROM $E\n", 2, "base name"),
    ("FROM --platform=linux//x a\n", 1, "invalid --platform"),
])
def test_plan_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse_dockerfile(text, {})
    assert err.value.line == line
    assert message in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("", "the Dockerfile is empty"),
    ("\n  \n# only comments\n", "the Dockerfile is empty"),
    ("ARG A=1\n", "no FROM instruction"),
])
def test_empty_or_no_from(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse_dockerfile(text, {})


def test_too_large() -> None:
    text = "FROM a\n" + "RUN true\n" * 120_000
    with pytest.raises(DockerfileError, match="larger than the limit"):
        parse_dockerfile(text, {})


def test_stage_names_may_start_with_digit_and_have_64_chars() -> None:
    name = "1" + "a" * 63
    plan = parse_dockerfile(f"FROM a AS {name}\nFROM b\nCOPY --from={name.upper()} /x /x\n", {})
    assert plan.stages[0].name == name and plan.stages[1].deps == {0}


def test_arg_scoping_and_build_args() -> None:
    text = ("ARG V=global\nARG ONLY_GLOBAL=g\nFROM img:$V\n"
            "LABEL before=\"$V\"\n"
            "ARG V\nARG W=w1 X=$W\n"
            "LABEL v=$V w=$W x=$X\n"
            "RUN echo\n")
    plan = parse_dockerfile(text, {"W": "cli", "UNUSED": "1", "HTTP_PROXY": "p"})
    assert plan.stages[0].from_.image == "img:global"
    # X=$W sees W as it was before the line (as ENV does), so X is empty.
    assert labels(plan, 0) == {"before": "", "v": "global", "w": "cli", "x": ""}
    steps = list(plan.stages[0].resolve({}))
    run = steps[-1]
    assert isinstance(run.instruction, RunInstruction)
    # A proxy build arg is in scope without an ARG, as docker has it.
    assert dict(run.args) == {"V": "global", "W": "cli", "X": "", "HTTP_PROXY": "p"}
    assert steps[0].args == {"HTTP_PROXY": "p"}  # the ARG scope grows step by step
    assert plan.unused_build_args == ["UNUSED"]
    # The builder prints the warning when the build ends (builder/result.py).
    assert unused_args_warning(plan.unused_build_args) == \
        "[Warning] One or more build-args [UNUSED] were not consumed"
    assert not any("build-args" in w for w in plan.warnings)


def test_automatic_platform_args() -> None:
    auto = automatic_platform_args("aarch64")
    assert auto["TARGETPLATFORM"] == "linux/arm64" and auto["BUILDARCH"] == "arm64"
    assert automatic_platform_args("armv7l")["TARGETVARIANT"] == "v7"
    host = automatic_platform_args()
    plan = parse_dockerfile("FROM img:$TARGETARCH\nLABEL a=$TARGETARCH\nARG TARGETARCH\nLABEL b=$TARGETARCH\n", {})
    assert plan.stages[0].from_.image == f"img:{host['TARGETARCH']}"
    assert labels(plan, 0) == {"a": "", "b": host["TARGETARCH"]}


def test_resolve_with_base_image_env() -> None:
    plan = parse_dockerfile("FROM img\nENV PATH=/opt/bin:$PATH\nLABEL p=$PATH\n", {})
    assert labels(plan, 0) == {"p": "/opt/bin:"}
    steps = list(plan.stages[0].resolve({"PATH": "/usr/bin"}))
    assert steps[1].instruction.labels == (("p", "/opt/bin:/usr/bin"),)  # type: ignore[union-attr]


def test_copy_flags_expanded_but_run_and_exec_forms_not() -> None:
    text = ('FROM a\nARG U=app M=0640 D=/dst\nCOPY --chown=$U:$U --chmod=$M src $D/\n'
            'RUN echo $U\nRUN ["echo", "$U"]\nCOPY ["$D", "/x"]\n')
    steps = list(parse_dockerfile(text, {}).stages[0].resolve({}))
    copy, run_shell, run_exec, copy_json = (s.instruction for s in steps[1:])
    assert isinstance(copy, CopyInstruction)
    assert (copy.chown, copy.chmod, copy.dest) == ("app:app", "0640", "/dst/")
    assert run_shell.command == ("echo $U",) and run_exec.command == ("echo", "$U")  # type: ignore[union-attr]
    assert copy_json.sources == ("/dst",)  # type: ignore[union-attr]  # JSON COPY still expands


def test_escape_directive_applies_to_expansion() -> None:
    plan = parse_dockerfile("# escape=`\nFROM a\nENV P=C:\\dir\nLABEL p=$P q=`$P\n", {})
    assert labels(plan, 0) == {"p": "C:\\dir", "q": "$P"}
    assert plan.directives == {"escape": "`"}


def test_heredoc_copy_step() -> None:
    plan = parse_dockerfile("FROM a\nARG N=you\nCOPY <<EOF /greet\nhello $N\nEOF\n", {})
    copy = list(plan.stages[0].resolve({}))[1].instruction
    assert isinstance(copy, CopyInstruction)
    assert copy.heredocs[0].content == "hello $N\n" and copy.heredocs[0].expand


def test_a_long_chain_of_stages_is_planned() -> None:
    # Walking stage dependencies recursively ran Python's stack out past ~1,000 stages.
    count = 20_000
    text = "FROM scratch AS s0\n" + "".join(f"FROM s{i} AS s{i + 1}\n" for i in range(count))
    plan = parse_dockerfile(text, {})
    assert plan.needed() == list(range(count + 1))
    assert plan.levels() == [[i] for i in range(count + 1)]
    cycle = "FROM scratch AS s0\nCOPY --from=s3 /a /a\n" + "".join(
        f"FROM s{i} AS s{i + 1}\n" for i in range(3))
    with pytest.raises(DockerfileError, match="circular dependency detected on stage: s0"):
        parse_dockerfile(cycle, {})


def test_automatic_platform_args_of_a_target_platform() -> None:
    from isula_build.image.platform import Platform

    text = ("FROM --platform=$BUILDPLATFORM img AS b\nFROM img:$TARGETARCH\n"
            "ARG TARGETPLATFORM\nARG BUILDARCH\nLABEL t=$TARGETPLATFORM b=$BUILDARCH\n")
    plan = parse_dockerfile(text, {}, platform=Platform.parse("linux/arm/v7"))
    host = automatic_platform_args()
    assert plan.meta_args["TARGETPLATFORM"] == "linux/arm/v7"
    assert plan.meta_args["TARGETVARIANT"] == "v7"
    assert plan.stages[0].from_.platform == host["BUILDPLATFORM"]
    assert plan.stages[1].from_.image == "img:arm"
    assert labels(plan, 1) == {"t": "linux/arm/v7", "b": host["BUILDARCH"]}
