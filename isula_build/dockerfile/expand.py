"""A stage's build environment and its steps: where every instruction's words are expanded.

BuildKit keeps one environment for a stage: the base image's ENV, then every ENV and every
ARG that got a value, the last one written winning (an ARG after an ENV of the same name hides
it from ``$NAME`` and from RUN, though the image config keeps the ENV value).  An instruction
sees the values from before it, also for ``ENV A=1 B=$A`` and ``ARG A=1 B=$A``.

Each word is expanded once.  The plan (plan.py) walks a stage without knowing the base image's
ENV and keeps the expansion of every instruction whose words read only names the stage itself
set before it ("settled": no base ENV can change them), checked there, before anything runs.
``expand_steps`` walks the stage again once the base image's ENV is known, keeps those, expands
the rest and checks them; iterating over the result hands the executor each step with the
environment it sees.
"""

from __future__ import annotations

import re
import signal as _signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .errors import DockerfileError
from .instructions import (
    AddInstruction, ArgInstruction, CopyInstruction, EnvInstruction, ExposeInstruction,
    Instruction, RunInstruction, StopSignalInstruction, is_ascii_number,
)
from .lex import expand_word
from .runmount import parse_mount
from .timeline import FirstWrites, Timeline, TimelineView

# Build args docker accepts without an ARG (RUN sees them; they never reach the image config).
BUILTIN_BUILD_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})
_CHMOD = re.compile(r"[0-7]{1,4}")


@dataclass(frozen=True)
class Step:
    """One instruction of a stage, expanded, with the build environment at that point.

    ``args``: the ARG values in scope once the instruction ran, and the proxy build args even
    without an ARG — RUN's extra environment, the history's ``|N K=V``; docker never writes
    them to the image config.  ``env``: the build environment the instruction sees, each name
    with the value written last (by the base image's ENV, its triggers' ENV, the stage's ENV
    and ARGs), in the config's Env order, then the names only an ARG set in the order they
    were first set.  RUN starts from it and COPY/ADD heredocs expand with it (proxy build args
    no ARG declared are not in it: BuildKit hands those to RUN only).  ``new_args``: what this
    step put in ``args`` (the first step also the proxy build args in scope from the start),
    so that a chain of step keys covers every ARG value without hashing all of them each step.
    """

    instruction: Instruction
    args: Mapping[str, str]
    env: Mapping[str, str]
    new_args: tuple[tuple[str, str], ...] = ()


class _EnvView(TimelineView):
    """The build environment as it was before a stamp (see BuildScope.env): the values of
    every write, walked in the config's Env order, then the names only an ARG set."""

    def __init__(self, values: Timeline, config_names: FirstWrites, arg_names: FirstWrites,
                 stamp: int) -> None:
        super().__init__(values, stamp)
        self._config_names = config_names
        self._arg_names = arg_names
        self._dict: dict[str, str] | None = None  # made on the first walk (RUN's environment)

    def _items(self) -> dict[str, str]:
        if self._dict is None:
            stamp, value = self._stamp, self._timeline.value_before
            env = {name: value(name, stamp) or "" for name in self._config_names.names_before(stamp)}
            for name in self._arg_names.names_before(stamp):
                if name not in env:
                    env[name] = value(name, stamp) or ""
            self._dict = env
        return self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())


class BuildScope:
    """The build environment of one stage, as its ENV and ARG instructions write it.

    ``values`` is the environment now, for expanding words. With ``record``, ``env()`` and
    ``args`` are views of it as of the current step, kept valid while later steps write:
    every write is kept once, stamped with its step (timeline.py), so no step copies the
    environment. Without (the plan, the expansion pass), only ``values`` is kept.
    """

    def __init__(self, base_env: Mapping[str, str], build_args: Mapping[str, str],
                 meta_args: Mapping[str, str], record: bool = False) -> None:
        self.values: dict[str, str] = dict(base_env)  # what $NAME reads (callers only read it)
        self._build_args = build_args
        self._meta_args = meta_args  # the global ARGs, which a bare `ARG NAME` inherits
        self._record = record
        self._stamp = 0  # the step being applied; stamp 0 holds what the stage starts with
        self._history = Timeline()  # every write to `values`
        self._config_names = FirstWrites()  # the config's Env, in order
        self._arg_names = FirstWrites()  # names an ARG wrote, in the order of the first write
        self._args = Timeline()
        if record:
            for name, value in base_env.items():
                self._history.write(0, name, value)
                self._config_names.add(0, name)
            for name, value in build_args.items():
                if name in BUILTIN_BUILD_ARGS:
                    self._args.write(0, name, value)
        self._stamp = 1
        # The views of the current state, shared by the steps until the next write.
        self._args_view: Mapping[str, str] | None = None
        self._env_view: Mapping[str, str] | None = None

    @property
    def args(self) -> Mapping[str, str]:
        """The ARG values in scope (and the proxy build args) after the last step applied."""
        assert self._record, "a BuildScope made without record has no views"
        if self._args_view is None:
            self._args_view = TimelineView(self._args, self._stamp)
        return self._args_view

    def env(self) -> Mapping[str, str]:
        """The environment the next step sees: config Env order, then ARG-only names."""
        assert self._record, "a BuildScope made without record has no views"
        if self._env_view is None:
            self._env_view = _EnvView(self._history, self._config_names, self._arg_names,
                                      self._stamp)
        return self._env_view

    def apply(self, ins: Instruction, trigger: bool = False) -> list[str]:
        """Writes what an expanded ENV or ARG sets; returns the names written. The ARG of a
        base image's trigger declares nothing."""
        stamp, record = self._stamp, self._record
        written: list[str] = []
        if isinstance(ins, EnvInstruction):
            for name, text in ins.env:
                self.values[name] = text
                if record:
                    self._history.write(stamp, name, text)
                    self._config_names.add(stamp, name)
                written.append(name)
        elif isinstance(ins, ArgInstruction) and not trigger:
            for name, default in ins.args:
                if name in self._build_args:
                    value: str | None = self._build_args[name]
                elif default is not None:
                    value = default
                else:
                    value = self._meta_args.get(name)  # inherits the global ARG's value
                # An ARG without any value changes nothing: an earlier value stays in scope.
                if value is None:
                    continue
                self.values[name] = value
                if record:
                    self._history.write(stamp, name, value)
                    self._args.write(stamp, name, value)
                    self._arg_names.add(stamp, name)
                written.append(name)
            if written:
                self._args_view = None
        if written:
            self._env_view = None
        self._stamp += 1
        return written


def located_expander(scope: Mapping[str, str], escape: str, line: int) -> Callable[[str], str]:
    """The word expander for one instruction: errors get the instruction's line."""
    def ex(word: str) -> str:
        try:
            return expand_word(word, scope, escape)
        except DockerfileError as err:
            raise err.at(line) from None
    return ex


def validate(ins: Instruction) -> None:
    """The checks that need an instruction's expanded values."""
    if isinstance(ins, (CopyInstruction, AddInstruction)) and ins.chmod is not None:
        if not _CHMOD.fullmatch(ins.chmod):
            raise DockerfileError(f"invalid --chmod={ins.chmod}: use an octal mode such as 0755", ins.line)
    if isinstance(ins, ExposeInstruction):
        ins.port_specs()
    if isinstance(ins, StopSignalInstruction):
        _check_signal(ins.signal, ins.line)
    if isinstance(ins, RunInstruction):
        for mount in ins.mounts:
            parse_mount(mount, ins.line)
    if isinstance(ins, EnvInstruction) and any(not k for k, _ in ins.env):
        raise DockerfileError("ENV names can not be blank", ins.line)


def _check_signal(raw: str, line: int) -> None:
    if is_ascii_number(raw):
        if int(raw) > 0:
            return
    else:
        name = raw.upper()
        name = name[3:] if name.startswith("SIG") else name
        if name in {s.name[3:] for s in _signal.Signals if s.name.startswith("SIG")} or re.fullmatch(
                r"RTM(IN(\+\d+)?|AX(-\d+)?)", name):
            return
    raise DockerfileError(f"Invalid signal: {raw}", line)


class StageSteps:
    """The steps of one stage, every instruction expanded and checked: the base image's
    triggers first, then the stage's own.  Iterating yields each Step with the environment it
    sees, as a view of one record of the stage's writes (BuildScope): no step copies it, so a
    stage of N ENV lines costs time linear in N."""

    def __init__(self, instructions: list[Instruction], triggers: int, base_env: Mapping[str, str],
                 build_args: Mapping[str, str], meta_args: Mapping[str, str]) -> None:
        self.instructions = instructions  # expanded
        self.triggers = triggers  # how many of the first instructions are the base's triggers
        self._scope = (dict(base_env), build_args, meta_args)

    def __len__(self) -> int:
        return len(self.instructions)

    def __iter__(self) -> Iterator[Step]:
        scope = BuildScope(*self._scope, record=True)
        new_args = tuple(scope.args.items())  # the proxy build args, in scope from the start
        for i, ins in enumerate(self.instructions):
            env = scope.env()
            written = scope.apply(ins, trigger=i < self.triggers)
            args = scope.args
            if written and isinstance(ins, ArgInstruction):
                new_args += tuple((name, args[name]) for name in dict.fromkeys(written))
            yield Step(ins, args, env, new_args)
            new_args = ()


def expand_steps(instructions: Sequence[Instruction], settled: Sequence[Instruction | None],
                 triggers: Sequence[Instruction], base_env: Mapping[str, str],
                 build_args: Mapping[str, str], meta_args: Mapping[str, str], escape: str) -> StageSteps:
    """The steps of a stage in the environment of its base (`base_env`, its `triggers`): the
    plan's `settled` expansion of an instruction where it has one, else (None) the
    instruction expanded and checked here — a DockerfileError names its line."""
    scope = BuildScope(base_env, build_args, meta_args)
    expanded: list[Instruction] = []
    for ins in triggers:
        # A trigger runs first, in the stage's environment: its ENV is seen by what follows,
        # as in BuildKit. Its errors name no line (the trigger is not in this Dockerfile) and
        # its checks are the executor's.
        expand = getattr(ins, "expand", None)
        if expand is not None:
            values = scope.values
            ins = expand(lambda word: expand_word(word, values, escape))
        scope.apply(ins, trigger=True)
        expanded.append(ins)
    for ins, done in zip(instructions, settled):
        if done is None:
            done = ins.expand(located_expander(scope.values, escape, ins.line))  # type: ignore[union-attr]  # every instruction the plan leaves unsettled has expand()
            validate(done)
        scope.apply(done)
        expanded.append(done)
    return StageSteps(expanded, len(triggers), base_env, build_args, meta_args)
