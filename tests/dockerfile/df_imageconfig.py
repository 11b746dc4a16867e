"""Test helper: the image config a Dockerfile's metadata instructions produce, from a BuildPlan.

It applies the plan's expanded steps the way docker's builder does, so that the suite can compare
the frontend's results with configs docker itself wrote (docker_cases.json).
"""

from __future__ import annotations

import posixpath
from typing import Any

from isula_build.dockerfile import BuildPlan
from isula_build.dockerfile.instructions import (
    CmdInstruction, EntrypointInstruction, EnvInstruction, ExposeInstruction, HealthcheckInstruction,
    LabelInstruction, OnbuildInstruction, ShellInstruction, StopSignalInstruction, UserInstruction,
    VolumeInstruction, WorkdirInstruction,
)

DEFAULT_SHELL = ["/bin/sh", "-c"]


def _env_dict(env: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in env)


def stage_config(plan: BuildPlan, index: int) -> dict[str, Any]:
    stage = plan.stages[index]
    if stage.base_stage is not None:
        cfg = stage_config(plan, stage.base_stage)
        cfg["OnBuild"] = []
    else:
        cfg = {"Labels": {}, "Env": [], "Cmd": None, "Entrypoint": None, "ExposedPorts": {}, "Volumes": {},
               "User": "", "WorkingDir": "", "StopSignal": None, "Healthcheck": None, "Shell": None,
               "OnBuild": []}
    cmd_set = False
    for step in stage.resolve(_env_dict(cfg["Env"])):
        ins = step.instruction
        shell = cfg["Shell"] or DEFAULT_SHELL
        if isinstance(ins, LabelInstruction):
            cfg["Labels"].update(dict(ins.labels))
        elif isinstance(ins, EnvInstruction):
            env = _env_dict(cfg["Env"])  # dicts keep the first position of a replaced key, as docker does
            env.update(dict(ins.env))
            cfg["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif isinstance(ins, CmdInstruction):
            cfg["Cmd"] = list(ins.command) if ins.json else [*shell, *ins.command]
            cmd_set = True
        elif isinstance(ins, EntrypointInstruction):
            cfg["Entrypoint"] = list(ins.command) if ins.json else [*shell, *ins.command]
            if not cmd_set:
                cfg["Cmd"] = None
        elif isinstance(ins, ExposeInstruction):
            cfg["ExposedPorts"].update({p: {} for p in ins.port_specs()})
        elif isinstance(ins, VolumeInstruction):
            cfg["Volumes"].update({v: {} for v in ins.volumes})
        elif isinstance(ins, UserInstruction):
            cfg["User"] = ins.user
        elif isinstance(ins, WorkdirInstruction):
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg["WorkingDir"] or "/", ins.path))
        elif isinstance(ins, StopSignalInstruction):
            cfg["StopSignal"] = ins.signal
        elif isinstance(ins, ShellInstruction):
            cfg["Shell"] = list(ins.shell)
        elif isinstance(ins, OnbuildInstruction):
            cfg["OnBuild"].append(ins.expression)
        elif isinstance(ins, HealthcheckInstruction):
            hc: dict[str, Any] = {"Test": list(ins.test)}
            for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout),
                               ("StartPeriod", ins.start_period), ("Retries", ins.retries)):
                if value:
                    hc[key] = value
            cfg["Healthcheck"] = hc
    return cfg


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """Drops empty fields (docker writes null, {} or "" for them) and the default PATH docker adds."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key == "Env" and value:
            value = [e for e in value if not e.startswith("PATH=")]
        if value not in (None, "", [], {}):
            out[key] = value
    return out
