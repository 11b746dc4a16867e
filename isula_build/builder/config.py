"""The image config of a stage: what metadata instructions write, and the history.

Values are written as docker (BuildKit) writes them into the image config: `Env` as "K=V" in
first-set order, `ExposedPorts`/`Volumes` as objects of empty objects, `Healthcheck` durations
in nanoseconds, `Cmd` dropped by an ENTRYPOINT unless the same stage sets CMD afterwards,
`author` for MAINTAINER. History entries take BuildKit's form: `created_by` is the instruction
("RUN /bin/sh -c make # buildkit"), `comment` "buildkit.dockerfile.v0", and `empty_layer` on
every entry that adds no layer.
"""

from __future__ import annotations

import copy
import json
import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from isula_build.dockerfile.instructions import (
    AddInstruction,
    ArgInstruction,
    CmdInstruction,
    CopyInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    HealthcheckInstruction,
    Instruction,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    StopSignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
)
from isula_build.image.config import format_rfc3339, host_architecture, parse_config

DEFAULT_SHELL = ("/bin/sh", "-c")
# BuildKit gives FROM scratch, and any base image without PATH, this PATH in the config.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HISTORY_COMMENT = "buildkit.dockerfile.v0"
# Fields of a base config that describe the base's own build, not the new image.
_DROPPED_TOP_LEVEL = ("container", "container_config", "docker_version", "id", "parent",
                      "created", "history", "rootfs")


@dataclass
class StageConfig:
    """The config being built for one stage, starting from its base."""

    top: dict[str, Any]              # top-level fields (architecture, os, author, …)
    config: dict[str, Any]           # the "config" object (Env, Cmd, Labels, …)
    history: list[dict[str, Any]]    # the base image's history, then ours
    diff_ids: list[str]              # the base image's layers, bottom first
    cmd_set: bool = False            # a CMD of this stage (ENTRYPOINT then keeps it)
    new_history: list[dict[str, Any]] = field(default_factory=list)
    # set_env's index: the Env list it was made for (a list put in its place is indexed
    # anew) and the position of each name's first entry.
    _env_index: tuple[list[Any], dict[str, int]] | None = field(
        default=None, init=False, repr=False, compare=False)

    @classmethod
    def scratch(cls) -> StageConfig:
        return cls({"architecture": host_architecture(), "os": "linux"},
                   {"Env": [DEFAULT_PATH], "WorkingDir": "/"}, [], [])

    @classmethod
    def from_bytes(cls, data: bytes) -> StageConfig:
        parsed = parse_config(data)
        top = {k: v for k, v in parsed.items() if k not in _DROPPED_TOP_LEVEL and k != "config"}
        inner = parsed.get("config")
        config = json.loads(json.dumps(inner)) if isinstance(inner, dict) else {}
        history = parsed.get("history")
        rootfs = parsed.get("rootfs")
        ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        made = cls(top, config, list(history) if isinstance(history, list) else [],
                   list(ids) if isinstance(ids, list) else [])
        if "PATH" not in made.env:
            # BuildKit gives a base image without PATH the default one, in the config too.
            made.set_env("PATH", DEFAULT_PATH.partition("=")[2])
        return made

    def child(self, diff_ids: list[str]) -> StageConfig:
        """The starting config of a stage built FROM this one, whose layers are `diff_ids`."""
        return StageConfig(copy.deepcopy(self.top), copy.deepcopy(self.config),
                           copy.deepcopy(self.history + self.new_history), list(diff_ids))

    def state(self) -> dict[str, Any]:
        """Everything steps change, as JSON values (the build cache keeps it per step)."""
        return {"top": self.top, "config": self.config, "history": self.history,
                "diff_ids": self.diff_ids, "cmd_set": self.cmd_set,
                "new_history": self.new_history}

    def load_state(self, state: dict[str, Any]) -> None:
        """Puts this config in the state `state()` gave (a deep copy of it)."""
        state = copy.deepcopy(state)
        self.top, self.config, self.history = state["top"], state["config"], state["history"]
        self.diff_ids, self.cmd_set = state["diff_ids"], state["cmd_set"]
        self.new_history = state["new_history"]
        self._env_index = None

    # --- reading ---------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            key, _, value = str(item).partition("=")
            values[key] = value
        return values

    @property
    def shell(self) -> list[str]:
        shell = self.config.get("Shell")
        return list(shell) if shell else list(DEFAULT_SHELL)

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "")

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    @property
    def onbuild(self) -> list[str]:
        return [str(t) for t in self.config.get("OnBuild") or []]

    # --- writing ---------------------------------------------------------------------------

    def set_env(self, key: str, value: str) -> None:
        """Replaces the first `key=` entry of Env, or appends one: in place, through an index
        of the entries by name, so that N ENV lines cost time linear in N."""
        env = self.config.get("Env")
        if not isinstance(env, list):
            env = self.config["Env"] = list(env or [])
        if self._env_index is None or self._env_index[0] is not env:
            index: dict[str, int] = {}
            for i, item in enumerate(env):
                index.setdefault(str(item).partition("=")[0], i)
            self._env_index = (env, index)
        positions = self._env_index[1]
        position = positions.get(key)
        if position is None:
            positions[key] = len(env)
            env.append(f"{key}={value}")
        else:
            env[position] = f"{key}={value}"

    def clear_onbuild(self) -> None:
        """Triggers run once, in the stage built FROM the image; they are not inherited."""
        self.config.pop("OnBuild", None)

    def apply(self, ins: Instruction) -> bool:
        """Applies a metadata instruction; False when `ins` is not one (RUN, COPY, …)."""
        if isinstance(ins, EnvInstruction):
            for key, value in ins.env:
                self.set_env(key, value)
        elif isinstance(ins, LabelInstruction):
            labels = dict(self.config.get("Labels") or {})
            labels.update(ins.labels)
            self.config["Labels"] = labels
        elif isinstance(ins, CmdInstruction):
            self._set_command("Cmd", self._command(ins.command, ins.json))
            self.cmd_set = True
        elif isinstance(ins, EntrypointInstruction):
            self._set_command("Entrypoint", self._command(ins.command, ins.json))
            if not self.cmd_set:
                # docker: an ENTRYPOINT drops the CMD inherited from the base image.
                self.config.pop("Cmd", None)
        elif isinstance(ins, ExposeInstruction):
            ports = dict(self.config.get("ExposedPorts") or {})
            ports.update({spec: {} for spec in ins.port_specs()})
            self.config["ExposedPorts"] = ports
        elif isinstance(ins, VolumeInstruction):
            volumes = dict(self.config.get("Volumes") or {})
            volumes.update({v: {} for v in ins.volumes if v})
            self.config["Volumes"] = volumes
        elif isinstance(ins, UserInstruction):
            self.config["User"] = ins.user
        elif isinstance(ins, WorkdirInstruction):
            self.config["WorkingDir"] = join_workdir(self.workdir, ins.path)
        elif isinstance(ins, StopSignalInstruction):
            self.config["StopSignal"] = ins.signal
        elif isinstance(ins, HealthcheckInstruction):
            self.config["Healthcheck"] = _healthcheck(ins)
        elif isinstance(ins, ShellInstruction):
            self.config["Shell"] = list(ins.shell)
        elif isinstance(ins, OnbuildInstruction):
            self.config["OnBuild"] = [*self.onbuild, ins.expression]
        elif isinstance(ins, MaintainerInstruction):
            self.top["author"] = ins.maintainer
        elif isinstance(ins, ArgInstruction):
            pass  # ARG values reach RUN's environment only, never the config
        else:
            return False
        return True

    def _set_command(self, key: str, command: list[str]) -> None:
        if command:
            self.config[key] = command
        else:
            self.config.pop(key, None)  # `CMD []` leaves no Cmd at all (null), as docker

    def _command(self, command: tuple[str, ...], exec_form: bool) -> list[str]:
        return list(command) if exec_form else [*self.shell, *command]

    def add_history(self, created_by: str, created: datetime, empty_layer: bool) -> None:
        entry: dict[str, Any] = {"created": format_rfc3339(created), "created_by": created_by,
                                 "comment": HISTORY_COMMENT}
        if empty_layer:
            entry["empty_layer"] = True
        self.new_history.append(entry)

    def mark_layer(self, index: int) -> None:
        """The history entry `index` (of this stage's) is the one that carries the new layer."""
        self.new_history[index].pop("empty_layer", None)

    def serialize(self, created: datetime, diff_ids: list[str]) -> bytes:
        """The finished config's canonical bytes (sorted keys: the ID depends on content only)."""
        document = dict(self.top)
        document.update({
            "created": format_rfc3339(created),
            "config": self.config,
            "history": self.history + self.new_history,
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        })
        return json.dumps(document, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def join_workdir(current: str, path: str) -> str:
    """WORKDIR: a relative path continues the current one; the result is clean and absolute."""
    joined = path if path.startswith("/") else posixpath.join(current or "/", path)
    return posixpath.normpath("/" + joined.lstrip("/"))


def _healthcheck(ins: HealthcheckInstruction) -> dict[str, Any]:
    check: dict[str, Any] = {"Test": list(ins.test)}
    for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout),
                       ("StartPeriod", ins.start_period), ("StartInterval", ins.start_interval),
                       ("Retries", ins.retries)):
        if value is not None:
            check[key] = value
    return check


def _go_strings(values: list[str] | tuple[str, ...]) -> str:
    """A []string as Go's %q prints it: ["a" "b"] (BuildKit's history text for CMD etc.)."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def history_text(ins: Instruction, shell: list[str], run_args: dict[str, str]) -> str:
    """`created_by` for one instruction, as BuildKit writes it."""
    if isinstance(ins, RunInstruction):
        argv = list(ins.command) if ins.json else [*shell, *ins.command]
        prefix = ""
        if run_args:
            prefix = f"|{len(run_args)} " + " ".join(f"{k}={v}" for k, v in sorted(run_args.items())) + " "
        return f"RUN {prefix}{' '.join(argv)} # buildkit"
    if isinstance(ins, (CopyInstruction, AddInstruction)):
        keyword = "COPY" if isinstance(ins, CopyInstruction) else "ADD"
        flags = []
        if isinstance(ins, CopyInstruction) and ins.from_:
            flags.append(f"--from={ins.from_}")
        if ins.chown:
            flags.append(f"--chown={ins.chown}")
        if ins.chmod:
            flags.append(f"--chmod={ins.chmod}")
        return " ".join([keyword, *flags, *ins.sources, ins.dest]) + " # buildkit"
    if isinstance(ins, CmdInstruction):
        return "CMD " + _go_strings(list(ins.command) if ins.json else [*shell, *ins.command])
    if isinstance(ins, EntrypointInstruction):
        return "ENTRYPOINT " + _go_strings(list(ins.command) if ins.json else [*shell, *ins.command])
    if isinstance(ins, EnvInstruction):
        return "ENV " + " ".join(f"{k}={v}" for k, v in ins.env)
    if isinstance(ins, LabelInstruction):
        return "LABEL " + " ".join(f"{k}={v}" for k, v in ins.labels)
    if isinstance(ins, ArgInstruction):
        return "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in ins.args)
    if isinstance(ins, ExposeInstruction):
        return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(set(ins.port_specs()))) + "]"
    if isinstance(ins, VolumeInstruction):
        return "VOLUME [" + " ".join(ins.volumes) + "]"
    if isinstance(ins, UserInstruction):
        return f"USER {ins.user}"
    if isinstance(ins, WorkdirInstruction):
        return f"WORKDIR {ins.path}"
    if isinstance(ins, StopSignalInstruction):
        return f"STOPSIGNAL {ins.signal}"
    if isinstance(ins, ShellInstruction):
        return "SHELL [" + " ".join(ins.shell) + "]"
    if isinstance(ins, OnbuildInstruction):
        return f"ONBUILD {ins.expression}"
    if isinstance(ins, MaintainerInstruction):
        return f"MAINTAINER {ins.maintainer}"
    # HEALTHCHECK and anything newer: the text as written.
    return " ".join(ins.original.split())
