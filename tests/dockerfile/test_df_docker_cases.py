"""The frontend against results recorded from docker's BuildKit (docker_cases.json).

The data was made by regen_docker_cases.py with `DOCKER_BUILDKIT=1 /usr/bin/docker build`;
docker is not needed to run these tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from df_imageconfig import normalize, stage_config
from isula_build.builder.result import unused_args_warning
from isula_build.dockerfile import DockerfileError, parse_dockerfile
from isula_build.dockerfile.instructions import CopyInstruction, HealthcheckInstruction, RunInstruction
from isula_build.dockerfile.lex import expand_heredoc

DATA = json.loads((Path(__file__).parent / "docker_cases.json").read_text())
CASES = {case["name"]: case for case in DATA["cases"]}

# The BuildKit inside dockerd 20.10 refuses syntax that today's BuildKit (and the Dockerfile
# reference) accepts: for these the expected config is written out instead.
BUILDKIT_NEWER: dict[str, dict[str, Any]] = {
    # ${VAR-word} and ${VAR+word} (no colon) came with a later BuildKit lexer.
    "modifiers_no_colon": {"Labels": {"a": "set", "b": "", "c": "d", "d": "alt", "e": "alt", "f": ""},
                           "Env": ["S=set", "E="]},
    "arg_without_value_unset": {"Labels": {"a": "unset", "b": "empty"}},
    # Heredocs came with Dockerfile syntax 1.4; their contents are checked by test_heredocs below.
    "heredoc_run_script": {"Env": ["A=v"], "Labels": {"ok": "1"}},
    "heredoc_run_quoted_delimiter": {"Env": ["A=v"], "Labels": {"ok": "1"}},
    "heredoc_copy_expand_vs_quoted": {"Labels": {"a": "v"}},
    # HEALTHCHECK --start-interval came with Dockerfile syntax 1.6 (not part of this config dict).
    "healthcheck_start_interval": {"Healthcheck": {"Test": ["CMD-SHELL", "true"]}},
}

# BuildKit accepts these; isula-build refuses them on purpose (docs/architecture.md, "Known
# differences"): a stage name used twice makes FROM and COPY --from ambiguous, and a RUN without
# a command is a mistake BuildKit silently runs as `sh -c ""`.
STRICTER = {"duplicate_stage_names", "duplicate_stage_names_target", "run_without_command"}

# BuildKit prints nothing about unused build args; isula-build keeps the classic builder's warning.
CLASSIC_WARNINGS = {"unused_build_args": ["[Warning] One or more build-args [NOPE] were not consumed"]}


def test_data_says_where_it_came_from() -> None:
    assert DATA["builder"] == "buildkit" and "DOCKER_BUILDKIT=1" in DATA["about"]
    assert DATA["docker_version"] and DATA["docker_client_version"]
    assert len(CASES) >= 110
    assert set(BUILDKIT_NEWER) | STRICTER | set(CLASSIC_WARNINGS) <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_docker(name: str) -> None:
    case = CASES[name]
    text, args, target = case["dockerfile"], case["build_args"], case["target"]
    if name in BUILDKIT_NEWER:
        assert not case["ok"], "docker learned this: move the case out of BUILDKIT_NEWER"
        plan = parse_dockerfile(text, args, target)
        assert normalize(stage_config(plan, plan.target)) == BUILDKIT_NEWER[name]
        return
    if not case["ok"] or name in STRICTER:
        assert name not in STRICTER or case["ok"], "BuildKit refuses this too: drop it from STRICTER"
        with pytest.raises(DockerfileError):
            parse_dockerfile(text, args, target)
        return
    plan = parse_dockerfile(text, args, target)
    assert normalize(stage_config(plan, plan.target)) == normalize(case["config"])
    assert case["warnings"] == []
    unused = unused_args_warning(plan.unused_build_args)
    assert ([unused] if unused else []) == CLASSIC_WARNINGS.get(name, [])


def _steps(name: str) -> list[Any]:
    case = CASES[name]
    plan = parse_dockerfile(case["dockerfile"], case["build_args"], case["target"])
    return [step.instruction for step in plan.stages[plan.target].resolve({})]


def test_heredocs() -> None:
    # RUN <<EOF: the body is the script; the frontend leaves "$A" to the shell.
    run = next(i for i in _steps("heredoc_run_script") if isinstance(i, RunInstruction))
    assert run.command == ("<<EOF",)
    assert [(h.name, h.content) for h in run.heredocs] == [("EOF", "echo $A > /out\n")]
    # A command reading heredocs: the shell expands the unquoted one only.
    run = next(i for i in _steps("heredoc_run_quoted_delimiter") if isinstance(i, RunInstruction))
    assert [(h.name, h.content, h.expand) for h in run.heredocs] == [("EOF", "$A\n", True),
                                                                      ("EOT", "$A\n", False)]
    # COPY <<EOF: BuildKit expands the body with the build's variables unless the delimiter is quoted.
    copies = [i for i in _steps("heredoc_copy_expand_vs_quoted") if isinstance(i, CopyInstruction)]
    docs = [(c.dest, c.heredocs[0]) for c in copies]
    assert [(dest, doc.expand) for dest, doc in docs] == [("/a", True), ("/b", False)]
    contents = [expand_heredoc(doc.content, {"A": "v"}) if doc.expand else doc.content for _, doc in docs]
    assert contents == ["v\n", "$A\n"]


def test_healthcheck_start_interval() -> None:
    check = next(i for i in _steps("healthcheck_start_interval") if isinstance(i, HealthcheckInstruction))
    assert check.start_interval == 2_000_000_000
