"""Instructions → stages: ARG scoping, build args, expansion, the dependency graph, --target.

``parse_dockerfile`` is what the build engine calls.  The plan it returns is plain data: every
stage with its instructions expanded (as far as the Dockerfile alone allows: a base image's own
ENV is only known to the engine, which re-expands with ``Stage.resolve(base_env)``), the stages
each stage needs, the images to pull, and the order in which the target's stages can run, in
levels of stages that do not depend on each other and may run in parallel.
"""

from __future__ import annotations

import platform as _platform
import re
import signal as _signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .errors import DockerfileError
from .instructions import (
    AddInstruction, ArgInstruction, CopyInstruction, EnvInstruction, ExposeInstruction,
    FromInstruction, Instruction, StopSignalInstruction, parse_instruction,
)
from .lex import expand_word
from .parser import parse

SCRATCH = "scratch"
# Build args docker accepts without an ARG (RUN sees them; they never reach the image config).
BUILTIN_BUILD_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})
_ARCHES = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
           "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i686": ("386", ""), "i386": ("386", ""),
           "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}
_PLATFORM = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}")
_CHMOD = re.compile(r"[0-7]{1,4}")


def automatic_platform_args(machine: str | None = None) -> dict[str, str]:
    """BuildKit's automatic global ARGs (TARGETPLATFORM, BUILDARCH, …) for this host."""
    arch, variant = _ARCHES.get(machine or _platform.machine(), (machine or _platform.machine(), ""))
    plat = f"linux/{arch}" + (f"/{variant}" if variant else "")
    values: dict[str, str] = {}
    for prefix in ("BUILD", "TARGET"):
        values.update({f"{prefix}PLATFORM": plat, f"{prefix}OS": "linux", f"{prefix}ARCH": arch,
                       f"{prefix}VARIANT": variant})
    return values


@dataclass(frozen=True)
class Step:
    """One instruction of a stage, expanded, with the ARG values in scope at that point.

    ``args`` is what a RUN sees as build-time environment besides the stage's ENV (docker puts
    ARG values in RUN's environment but never in the image config).
    """

    instruction: Instruction
    args: Mapping[str, str]


@dataclass
class Stage:
    index: int
    name: str | None
    from_: FromInstruction  # expanded with the global ARGs
    base_stage: int | None  # FROM names an earlier stage
    instructions: list[Instruction]  # as written, without the FROM
    steps: list[Step] = field(default_factory=list)  # expanded assuming an empty base ENV
    deps: frozenset[int] = frozenset()  # stages whose result this stage reads
    images: tuple[str, ...] = ()  # external images: the base (unless scratch/stage), COPY --from images
    _plan: BuildPlan | None = field(default=None, repr=False, compare=False)

    @property
    def base_image(self) -> str | None:
        """The external image to start from; None for scratch or an earlier stage."""
        if self.base_stage is not None or self.from_.image.lower() == SCRATCH:
            return None
        return self.from_.image

    def resolve(self, base_env: Mapping[str, str]) -> list[Step]:
        """Steps expanded knowing the ENV of the base image (``$PATH`` etc.)."""
        assert self._plan is not None
        return _expand_stage(self._plan, self, dict(base_env), set())[0]


@dataclass
class BuildPlan:
    directives: dict[str, str]
    escape: str
    build_args: dict[str, str]
    meta_args: dict[str, str]  # global ARG values (before the first FROM), build args applied
    stages: list[Stage]
    target: int  # index of the stage to build
    warnings: list[str]
    unused_build_args: list[str]

    def stage(self, ref: str) -> Stage:
        """A stage by name (case-insensitive) or index, as COPY --from names it."""
        index = _stage_index(self, ref)
        if index is None:
            raise DockerfileError(f"no stage named {ref!r}")
        return self.stages[index]

    def needed(self) -> list[int]:
        """Indexes of the stages the target needs (itself included), each after its deps."""
        order: list[int] = []
        seen: set[int] = set()

        def visit(i: int) -> None:
            if i in seen:
                return
            seen.add(i)
            for dep in sorted(self.stages[i].deps):
                visit(dep)
            order.append(i)

        visit(self.target)
        return order

    def levels(self) -> list[list[int]]:
        """The needed stages grouped so that each group depends only on earlier groups."""
        depth: dict[int, int] = {}
        for i in self.needed():
            depth[i] = 1 + max((depth[d] for d in self.stages[i].deps), default=-1)
        groups: list[list[int]] = [[] for _ in range(max(depth.values()) + 1)]
        for i in sorted(depth):
            groups[depth[i]].append(i)
        return groups

    def images(self) -> list[str]:
        """External images the target's stages need, in first-use order, without repeats."""
        out: list[str] = []
        for i in self.needed():
            out.extend(img for img in self.stages[i].images if img not in out)
        return out


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone also accepts "²", which int() refuses


def _stage_index(plan: BuildPlan, ref: str) -> int | None:
    if _is_number(ref):
        index = int(ref)
        if index >= len(plan.stages):
            return None
        return index
    for stage in plan.stages:
        if stage.name == ref.lower():
            return stage.index
    return None


def _expander(scope: Mapping[str, str], escape: str, line: int) -> Callable[[str], str]:
    """The word expander for one instruction: errors get the instruction's line."""
    def ex(word: str) -> str:
        try:
            return expand_word(word, scope, escape)
        except DockerfileError as err:
            raise err.at(line) from None
    return ex


def _validate(ins: Instruction) -> None:
    if isinstance(ins, (CopyInstruction, AddInstruction)) and ins.chmod is not None:
        if not _CHMOD.fullmatch(ins.chmod):
            raise DockerfileError(f"invalid --chmod={ins.chmod}: use an octal mode such as 0755", ins.line)
    if isinstance(ins, ExposeInstruction):
        ins.port_specs()
    if isinstance(ins, StopSignalInstruction):
        _check_signal(ins.signal, ins.line)
    if isinstance(ins, EnvInstruction) and any(not k for k, _ in ins.env):
        raise DockerfileError("ENV names can not be blank", ins.line)


def _check_signal(raw: str, line: int) -> None:
    if _is_number(raw):
        if int(raw) > 0:
            return
    else:
        name = raw.upper()
        name = name[3:] if name.startswith("SIG") else name
        if name in {s.name[3:] for s in _signal.Signals if s.name.startswith("SIG")} or re.fullmatch(
                r"RTM(IN(\+\d+)?|AX(-\d+)?)", name):
            return
    raise DockerfileError(f"Invalid signal: {raw}", line)


def _check_base_image(image: str, line: int) -> None:
    """BuildKit reads an image's repository path as a reference, which must be lower case."""
    name = image.split("@", 1)[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name = name[:colon]
    first, _, rest = name.partition("/")
    # As docker's reference parser: a first component with ".", ":" or upper case, or
    # "localhost", names a registry host (where upper case is allowed).
    if rest and (any(c in first for c in ".:") or first == "localhost" or first != first.lower()):
        name = rest
    if name != name.lower():
        raise DockerfileError(f'failed to parse stage name "{image}": invalid reference format: '
                              "repository name must be lowercase", line)


def _expand_stage(plan: BuildPlan, stage: Stage, env: dict[str, str],
                  consumed: set[str]) -> tuple[list[Step], set[int], list[str]]:
    """Walks a stage once: ARG scope, ENV state, expansion, and what the stage reads."""
    # What $NAME sees is BuildKit's one environment of the build state: the base image's ENV,
    # then every ENV and every ARG that got a value, the last one written winning (so an ARG
    # after an ENV of the same name hides it, though the image config keeps the ENV value).
    scope: dict[str, str] = dict(env)
    # RUN's extra environment: the ARG values, and proxy build args even without an ARG (BuildKit
    # hands those to RUN only: they are not expanded anywhere unless an ARG declares them).
    args: dict[str, str] = {k: v for k, v in plan.build_args.items() if k in BUILTIN_BUILD_ARGS}
    frozen: Mapping[str, str] = MappingProxyType(args)
    steps: list[Step] = []
    deps: set[int] = set()
    images: list[str] = []
    for ins in stage.instructions:
        expand = getattr(ins, "expand", None)
        if expand is not None:
            ins = expand(_expander(scope, plan.escape, ins.line))
            _validate(ins)
        if isinstance(ins, ArgInstruction):
            args = dict(args)  # copy on write: earlier steps keep their own view
            for name, default in ins.args:
                consumed.add(name)
                if name in plan.build_args:
                    value: str | None = plan.build_args[name]
                elif default is not None:
                    value = default
                else:
                    value = plan.meta_args.get(name)  # inherits the global ARG's value
                # An ARG without any value changes nothing: an earlier value stays in scope.
                if value is not None:
                    args[name] = scope[name] = value
            frozen = MappingProxyType(args)
        elif isinstance(ins, EnvInstruction):
            scope.update(ins.env)
        elif isinstance(ins, CopyInstruction) and ins.from_ is not None:
            if not ins.from_:
                raise DockerfileError("COPY --from must not be empty", ins.line)
            if _expander({}, plan.escape, ins.line)(ins.from_) != ins.from_:
                raise DockerfileError("variable expansion is not supported for --from, define a new stage "
                                      "with FROM using ARG from global scope as a workaround", ins.line)
            index = _stage_index(plan, ins.from_)
            if _is_number(ins.from_) and index is None:
                raise DockerfileError(f"invalid stage index {ins.from_} in COPY --from "
                                      f"(there are {len(plan.stages)} stages)", ins.line)
            if index is None:
                images.append(ins.from_)
            else:
                deps.add(index)
        steps.append(Step(ins, frozen))
    return steps, deps, images


def _check_cycles(plan: BuildPlan) -> None:
    state: dict[int, int] = {}  # 1 = on the path, 2 = done

    def visit(i: int) -> None:
        state[i] = 1
        for dep in sorted(plan.stages[i].deps):
            if state.get(dep) == 1:
                stage = plan.stages[dep]
                raise DockerfileError(f"circular dependency detected on stage: {stage.name or stage.index}",
                                      stage.from_.line)
            if dep not in state:
                visit(dep)
        state[i] = 2

    for stage in plan.stages:
        if stage.index not in state:
            visit(stage.index)


def parse_dockerfile(text: str, build_args: dict[str, str], target: str | None = None) -> BuildPlan:
    """Dockerfile text → BuildPlan.  Raises DockerfileError (an InvalidArgument) naming the line."""
    parsed = parse(text)
    if not parsed.nodes:
        raise DockerfileError("the Dockerfile is empty: it has no instructions")
    escape = parsed.escape
    meta_instructions: list[ArgInstruction] = []
    stages: list[Stage] = []
    for node in parsed.nodes:
        ins = parse_instruction(node, escape)
        if isinstance(ins, FromInstruction):
            stages.append(Stage(len(stages), ins.name, ins, None, []))
        elif stages:
            stages[-1].instructions.append(ins)
        elif isinstance(ins, ArgInstruction):
            meta_instructions.append(ins)
        else:
            raise DockerfileError(f"{node.keyword.upper()} before the first FROM: only ARG may come "
                                  "before FROM", node.start_line)
    if not stages:
        raise DockerfileError("no build stage: the Dockerfile has no FROM instruction")
    names: dict[str, int] = {}
    for stage in stages:
        if stage.name is not None:
            if stage.name in names:
                raise DockerfileError(f"duplicate stage name {stage.name!r} (first used by stage "
                                      f"{names[stage.name]})", stage.from_.line)
            names[stage.name] = stage.index

    consumed: set[str] = set()
    meta: dict[str, str] = automatic_platform_args()
    for ins in meta_instructions:
        ins = ins.expand(_expander(meta, escape, ins.line))
        for name, default in ins.args:
            consumed.add(name)
            if name in build_args:
                meta[name] = build_args[name]
            elif default is not None:
                meta[name] = default
            else:
                meta.pop(name, None)

    plan = BuildPlan(dict(parsed.directives), escape, dict(build_args), meta, stages, len(stages) - 1,
                     list(parsed.warnings), [])
    for stage in stages:
        stage._plan = plan
        stage.from_ = stage.from_.expand(_expander(meta, escape, stage.from_.line))
        if not stage.from_.image:
            raise DockerfileError("base name (the image after FROM) should not be blank", stage.from_.line)
        if stage.from_.platform is not None and not _PLATFORM.fullmatch(stage.from_.platform):
            raise DockerfileError(f"invalid --platform={stage.from_.platform}: use os/arch[/variant]",
                                  stage.from_.line)
        # BuildKit looks the base name up as written among the (lower-cased) names of earlier
        # stages: "FROM Build" is not stage "build" but an image, and an invalid one.
        earlier = names.get(stage.from_.image)
        if earlier is not None and earlier < stage.index:
            stage.base_stage = earlier
        elif stage.from_.image != SCRATCH:
            _check_base_image(stage.from_.image, stage.from_.line)
        steps, deps, images = _expand_stage(plan, stage, {}, consumed)
        if stage.base_stage is not None:
            deps.add(stage.base_stage)
        elif stage.from_.image.lower() != SCRATCH:
            images.insert(0, stage.from_.image)
        stage.steps, stage.deps, stage.images = steps, frozenset(deps), tuple(dict.fromkeys(images))
    _check_cycles(plan)

    if target is not None:
        index = names.get(target.lower())
        if index is None:
            raise DockerfileError(f"target stage {target!r} could not be found")
        plan.target = index
    plan.unused_build_args = sorted(k for k in build_args if k not in consumed and k not in BUILTIN_BUILD_ARGS)
    if plan.unused_build_args:
        plan.warnings.append(f"[Warning] One or more build-args [{' '.join(plan.unused_build_args)}] "
                             "were not consumed")
    return plan
