"""The stage expander: each word expanded once, in the build environment of the stage's base."""

from __future__ import annotations

import pytest

from isula_build.dockerfile import DockerfileError, parse_dockerfile, parse_trigger
from isula_build.dockerfile.instructions import LabelInstruction


def labels(steps) -> dict[str, str]:  # type: ignore[no-untyped-def]
    out: dict[str, str] = {}
    for step in steps:
        if isinstance(step.instruction, LabelInstruction):
            out.update(step.instruction.labels)
    return out


def test_settled_words_are_expanded_and_checked_in_the_plan() -> None:
    plan = parse_dockerfile("FROM a\nENV A=1\nLABEL a=$A b=x\nLABEL p=$PATH\n", {})
    settled = plan.stages[0].settled
    assert settled[1] is not None and settled[1].labels == (("a", "1"), ("b", "x"))  # type: ignore[union-attr]
    assert settled[2] is None  # $PATH is the base image's business
    # A settled word keeps the stage's value whatever the base image sets.
    assert labels(plan.stages[0].resolve({"A": "base", "PATH": "/bin"})) == {"a": "1", "b": "x", "p": "/bin"}


@pytest.mark.parametrize(("text", "base_env", "line", "message"), [
    ("FROM a\nCOPY --chmod=$M a b\n", {"M": "abc"}, 2, "invalid --chmod=abc"),
    ("FROM a\nEXPOSE $P\n", {"P": "80/xyz"}, 2, "invalid protocol"),
    ("FROM a\nSTOPSIGNAL $S\n", {}, 2, "Invalid signal: "),
    ("FROM a\n\nWORKDIR ${HOME:?no home}\n", {}, 3, "HOME: no home"),
    ("FROM a\nENV ${N}=1\n", {}, 2, "ENV names can not be blank"),
])
def test_checks_that_need_the_base_env_are_made_at_the_stage(
        text: str, base_env: dict[str, str], line: int, message: str) -> None:
    stage = parse_dockerfile(text, {}).stages[0]  # the plan cannot tell: it accepts
    with pytest.raises(DockerfileError) as err:
        stage.resolve(base_env)
    assert err.value.line == line and message in str(err.value)


def test_base_env_can_make_a_word_valid() -> None:
    stage = parse_dockerfile("FROM a\nCOPY --chmod=$M a b\nWORKDIR ${HOME:?no home}\n", {}).stages[0]
    copy, workdir = stage.resolve({"M": "0755", "HOME": "/root"}).instructions
    assert copy.chmod == "0755" and workdir.path == "/root"  # type: ignore[union-attr]


def test_values_from_the_base_env_flow_through_env_and_arg() -> None:
    text = "FROM a\nENV A=$PATH\nARG B=$A:x\nLABEL a=$A b=$B\nENV A=fixed\nLABEL c=$A\n"
    plan = parse_dockerfile(text, {})
    assert plan.stages[0].settled[2] is None and plan.stages[0].settled[4] is not None
    assert labels(plan.stages[0].resolve({"PATH": "/p"})) == {"a": "/p", "b": "/p:x", "c": "fixed"}


@pytest.mark.parametrize("text", [
    "FROM a\nENV A=1\nENV ${N:-B}=2\nLABEL a=$A\n",    # the name it writes comes from the base
    "FROM a\nENV A=1\nENV A=${N:?}\nLABEL a=$A\n",     # the plan could not expand it at all
])
def test_an_unknown_write_unsettles_every_name(text: str) -> None:
    stage = parse_dockerfile(text, {}).stages[0]
    assert stage.settled[2] is None
    assert labels(stage.resolve({"N": "A"})) == {"a": "A" if "?" in text else "2"}


def test_step_env_is_the_one_build_environment() -> None:
    text = ("FROM a\nENV Y=from-env\nARG Y=from-arg\nARG W=from-arg\nENV W=from-env\n"
            "ARG ONLY=arg\nENV Z=z\nRUN true\n")
    steps = list(parse_dockerfile(text, {"http_proxy": "p"}).stages[0].resolve({"PATH": "/bin"}))
    run = steps[-1]
    # The config's order (base, then ENV), ARG values written last over it, then ARG-only names.
    assert list(run.env.items()) == [("PATH", "/bin"), ("Y", "from-arg"), ("W", "from-env"),
                                     ("Z", "z"), ("ONLY", "arg")]
    assert dict(run.args) == {"http_proxy": "p", "Y": "from-arg", "W": "from-arg", "ONLY": "arg"}
    assert steps[0].env == {"PATH": "/bin"}  # what a step sees: the values from before it
    assert steps[1].env == {"PATH": "/bin", "Y": "from-env"}


def test_base_image_triggers_run_first_and_their_env_is_seen() -> None:
    stage = parse_dockerfile("FROM a\nLABEL t=$T u=$U\nARG T\nRUN true\n", {"T": "cli"}).stages[0]
    triggers = [parse_trigger("ENV T=trig"), parse_trigger("LABEL from=$T"), parse_trigger("ARG U=nope")]
    steps = list(stage.resolve({"PATH": "/bin"}, triggers))
    assert [s.instruction for s in steps[:3]] == [triggers[0], steps[1].instruction, triggers[2]]
    assert steps[1].instruction.labels == (("from", "trig"),)  # type: ignore[union-attr]
    # A trigger's ARG declares nothing; the stage's own ARG then hides the trigger's ENV.
    assert labels(steps[3:4]) == {"t": "trig", "u": ""}
    assert steps[-1].env == {"PATH": "/bin", "T": "cli"} and dict(steps[-1].args) == {"T": "cli"}
    with pytest.raises(DockerfileError, match=r"^Dockerfile: syntax error: missing '}'"):
        stage.resolve({}, [parse_trigger("LABEL a=${A")])  # the trigger is not on a line of ours


def test_step_envs_stay_right_after_later_writes() -> None:
    text = "FROM a\nENV A=1 A=2 B=$A\nARG A=arg\nRUN x\nENV A=3\nARG C\nRUN y\n"
    steps = list(parse_dockerfile(text, {"C": "c"}).stages[0].resolve({"P": "/p"}))
    assert [dict(s.env) for s in steps] == [
        {"P": "/p"},
        {"P": "/p", "A": "2", "B": ""},  # B=$A read A as it was before the line
        {"P": "/p", "A": "arg", "B": ""},
        {"P": "/p", "A": "arg", "B": ""},
        {"P": "/p", "A": "3", "B": ""},
        {"P": "/p", "A": "3", "B": "", "C": "c"},
    ]
    assert "A" in steps[1].env and "A" not in steps[0].env and steps[1].env.get("Z") is None
    assert [dict(s.args) for s in steps] == [{}, {"A": "arg"}, {"A": "arg"}, {"A": "arg"},
                                             {"A": "arg", "C": "c"}, {"A": "arg", "C": "c"}]
    # What each step put in scope: the chain of step keys is made of these.
    assert [s.new_args for s in steps] == [(), (("A", "arg"),), (), (), (("C", "c"),), ()]


def _memory_held_by_steps(lines: int) -> int:
    import tracemalloc
    text = "FROM a\n" + "".join(f"ENV V{i}={i}\nARG W{i}={i}\n" for i in range(lines))
    stage = parse_dockerfile(text, {}).stages[0]
    tracemalloc.start()
    try:
        steps = list(stage.resolve({"PATH": "/bin"}))
        assert dict(steps[-1].env)[f"V{lines - 1}"] == str(lines - 1)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_steps_share_one_record_of_the_environment() -> None:
    # Every Step keeps the environment and ARG values it saw; copying them for each step made
    # a stage of N ENV (or ARG) lines quadratic in time and in the memory the steps hold.
    small, large = _memory_held_by_steps(1000), _memory_held_by_steps(2000)
    assert large < 2.6 * small, (small, large)
