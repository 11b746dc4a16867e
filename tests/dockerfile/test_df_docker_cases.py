"""The frontend against results recorded from the real docker (docker_cases.json).

The data was made by regen_docker_cases.py; docker is not needed to run these tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from df_imageconfig import normalize, stage_config
from isula_build.dockerfile import DockerfileError, parse_dockerfile

DATA = json.loads((Path(__file__).parent / "docker_cases.json").read_text())
CASES = {case["name"]: case for case in DATA["cases"]}

# The docker here is 20.10's classic builder, older than BuildKit in a few documented ways; the
# issue asks for BuildKit's meaning.  For these the expected result is written out instead.
BUILDKIT_NEWER: dict[str, dict[str, Any]] = {
    # ${VAR-word} and ${VAR+word} (no colon) arrived with BuildKit's lexer after 20.10.
    "modifiers_no_colon": {"Labels": {"a": "set", "b": "", "c": "d", "d": "alt", "e": "alt", "f": ""},
                           "Env": ["S=set", "E="]},
    "arg_without_value_unset": {"Labels": {"a": "unset", "b": "empty"}},
    # COPY --chmod needs BuildKit ("the --chmod option requires BuildKit" from the classic builder).
    "copy_chown_chmod": {},
}


def test_data_says_where_it_came_from() -> None:
    assert "docker build" in DATA["about"] and DATA["docker_version"]
    assert len(CASES) >= 80


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_docker(name: str) -> None:
    case = CASES[name]
    text, args, target = case["dockerfile"], case["build_args"], case["target"]
    if name in BUILDKIT_NEWER:
        assert not case["ok"], "docker learned this: move the case out of BUILDKIT_NEWER"
        plan = parse_dockerfile(text, args, target)
        assert normalize(stage_config(plan, plan.target)) == BUILDKIT_NEWER[name]
        return
    if not case["ok"]:
        with pytest.raises(DockerfileError):
            parse_dockerfile(text, args, target)
        return
    plan = parse_dockerfile(text, args, target)
    assert normalize(stage_config(plan, plan.target)) == normalize(case["config"])
    assert [w for w in plan.warnings if "build-args" in w] == case["warnings"]
