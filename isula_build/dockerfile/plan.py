"""Instructions → stages: ARG scoping, build args, the dependency graph, --target.

``parse_dockerfile`` is what the build engine calls.  The plan it returns is plain data: every
stage with its instructions, the stages each stage needs, the images to pull, and the order in
which the target's stages can run, in levels of stages that do not depend on each other and
may run in parallel.  The plan expands and checks the instructions no base image's ENV can
change (expand.py); ``Stage.resolve(base_env, triggers)`` gives the engine the steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from isula_build.image.platform import Platform, host_platform, platform_problem

from .errors import DockerfileError
from .expand import BUILTIN_BUILD_ARGS, BuildScope, StageSteps, expand_steps, located_expander, validate
from .instructions import (
    ArgInstruction, CopyInstruction, EnvInstruction, FromInstruction, Instruction,
    RunInstruction, is_ascii_number, parse_instruction,
)
from .parser import parse
from .runmount import mount_from

SCRATCH = "scratch"


def automatic_platform_args(machine: str | None = None,
                            target: Platform | None = None) -> dict[str, str]:
    """BuildKit's automatic global ARGs: BUILDPLATFORM, BUILDARCH, … for this host (`machine`
    as uname says it; this one by default), TARGETPLATFORM, TARGETARCH, … for `target`
    (the build platform when None)."""
    build = host_platform(machine)
    return {**build.automatic_args("BUILD"), **(target or build).automatic_args("TARGET")}


@dataclass
class Stage:
    index: int
    name: str | None
    from_: FromInstruction  # expanded with the global ARGs
    base_stage: int | None  # FROM names an earlier stage
    instructions: list[Instruction]  # as written, without the FROM
    # Each instruction expanded where no base image's ENV can change it (checked already);
    # None where its words read a name the stage did not set: expanded by resolve().
    settled: list[Instruction | None] = field(default_factory=list)
    deps: frozenset[int] = frozenset()  # stages whose result this stage reads
    images: tuple[str, ...] = ()  # external images: the base (unless scratch/stage), COPY --from images
    _plan: BuildPlan | None = field(default=None, repr=False, compare=False)

    @property
    def base_image(self) -> str | None:
        """The external image to start from; None for scratch or an earlier stage."""
        if self.base_stage is not None or self.from_.image.lower() == SCRATCH:
            return None
        return self.from_.image

    def resolve(self, base_env: Mapping[str, str], triggers: Sequence[Instruction] = ()) -> StageSteps:
        """The stage's steps in the environment of its base: the base image's ENV (``$PATH``
        etc.) and its ONBUILD triggers (parse_trigger'd), one step per trigger first. Raises
        DockerfileError, naming the line, for an instruction only the base's ENV made invalid."""
        plan = self._plan
        assert plan is not None
        return expand_steps(self.instructions, self.settled, triggers, base_env, plan.build_args,
                            plan.meta_args, plan.escape)


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
        return _depth_first(self, self.target, set())

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


def _stage_index(plan: BuildPlan, ref: str) -> int | None:
    if is_ascii_number(ref):
        index = int(ref)
        if index >= len(plan.stages):
            return None
        return index
    for stage in plan.stages:
        if stage.name == ref.lower():
            return stage.index
    return None


def _target_index(plan: BuildPlan, target: str) -> int:
    """--target: a stage by name (case-insensitive, as BuildKit) or by index (as buildah,
    whose unnamed stages are named by their index)."""
    index = _stage_index(plan, target)
    if index is None:
        stages = ", ".join(f"{s.index} ({s.name})" if s.name else str(s.index)
                           for s in plan.stages)
        raise DockerfileError(f"target stage {target!r} could not be found; the Dockerfile's "
                              f"stages are {stages}")
    return index


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


class _PlanView(Mapping[str, str]):
    """What ``$NAME`` reads in the plan: the stage's own values over an empty base ENV.

    Reading a name the stage did not set, or one whose value came from an unsettled
    instruction, sets ``depends``: the word's value is the base image's ENV's business.
    """

    def __init__(self, values: dict[str, str]) -> None:
        self._own = values
        self.unsettled: set[str] = set()  # names an unsettled instruction wrote last
        # unsettle_all() counts instead of marking every name (a mark per name would make a
        # stage of many such writes quadratic): a name is unsettled when its last settled
        # write came before the last unsettle_all().
        self._resets = 0
        self._settled_in: dict[str, int] = {}  # name -> _resets at its last settled write
        self.depends = False

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]  # a Mapping view with a narrower get() on purpose
        value = self._own.get(name)
        if value is None or name in self.unsettled or self._settled_in.get(name, -1) < self._resets:
            self.depends = True
        return default if value is None else value

    def wrote(self, names: list[str], settled: bool) -> None:
        if settled:
            self.unsettled.difference_update(names)
            for name in names:
                self._settled_in[name] = self._resets
        else:
            self.unsettled.update(names)

    def unsettle_all(self) -> None:
        """After a write whose names only the base's ENV tells: any value may have changed
        (names the stage did not set yet depend on the base anyway)."""
        self._resets += 1

    def __getitem__(self, name: str) -> str:
        return self._own[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._own)

    def __len__(self) -> int:
        return len(self._own)


def _plan_stage(plan: BuildPlan, stage: Stage,
                consumed: set[str]) -> tuple[list[Instruction | None], set[int], list[str]]:
    """Walks a stage once, without the base image's ENV: ARG scope, what the stage reads, and
    the expansion (checked) of each instruction whose words read only what the stage set."""
    scope = BuildScope({}, plan.build_args, plan.meta_args)
    view = _PlanView(scope.values)
    settled: list[Instruction | None] = []
    deps: set[int] = set()
    images: list[str] = []
    for ins in stage.instructions:
        done: Instruction | None = ins
        known = True
        expand = getattr(ins, "expand", None)
        if expand is not None:
            view.depends = False
            try:
                done = expand(located_expander(view, plan.escape, ins.line))
            except DockerfileError:
                if not view.depends:
                    raise
                done = None  # ${PATH:?}, say: the base's ENV decides, the step reports it
            known = not view.depends
            if done is not None and known:
                validate(done)
        if isinstance(ins, ArgInstruction):
            consumed.update(name for name, _ in (done if isinstance(done, ArgInstruction) else ins).args)
        if isinstance(ins, (ArgInstruction, EnvInstruction)):
            pairs = ins.args if isinstance(ins, ArgInstruction) else ins.env
            if done is None or (not known and any("$" in name for name, _ in pairs)):
                view.unsettle_all()
            else:
                view.wrote(scope.apply(done), known)
        elif isinstance(ins, CopyInstruction) and ins.from_ is not None:
            if not ins.from_:
                raise DockerfileError("COPY --from must not be empty", ins.line)
            if located_expander({}, plan.escape, ins.line)(ins.from_) != ins.from_:
                raise DockerfileError("variable expansion is not supported for --from, define a new stage "
                                      "with FROM using ARG from global scope as a workaround", ins.line)
            _read_from(plan, ins.from_, "COPY --from", ins.line, deps, images)
        elif isinstance(ins, RunInstruction):
            for mount in ins.mounts:
                source = mount_from(mount)
                if source is not None and is_ascii_number(source):
                    raise DockerfileError(f"RUN --mount from={source}: BuildKit reads a number "
                                          "here as an image name, not a stage index; name the "
                                          "stage (FROM … AS NAME) and use that", ins.line)
                if source is not None:
                    _read_from(plan, source, "RUN --mount from", ins.line, deps, images)
        settled.append(done if known else None)
    return settled, deps, images


def _read_from(plan: BuildPlan, ref: str, what: str, line: int, deps: set[int],
               images: list[str]) -> None:
    """Notes what a `--from` names: an earlier stage (by name or index) or an image."""
    index = _stage_index(plan, ref)
    if is_ascii_number(ref) and index is None:
        raise DockerfileError(f"invalid stage index {ref} in {what} "
                              f"(there are {len(plan.stages)} stages)", line)
    if index is None:
        images.append(ref)
    else:
        deps.add(index)


def _depth_first(plan: BuildPlan, start: int, done: set[int]) -> list[int]:
    """The stages `start` needs that are not in `done`, itself last, each after its deps, in
    the order a recursive walk of the sorted deps gives. Iterative: a Dockerfile can chain
    thousands of stages, more than Python's stack holds. Adds them to `done`; a dependency
    on a stage still on the path is a cycle."""
    order: list[int] = []
    on_path = {start}
    path = [(start, iter(sorted(plan.stages[start].deps)))]
    while path:
        index, deps = path[-1]
        dep = next(deps, None)
        if dep is None:
            path.pop()
            on_path.discard(index)
            done.add(index)
            order.append(index)
        elif dep in on_path:
            stage = plan.stages[dep]
            raise DockerfileError(f"circular dependency detected on stage: {stage.name or stage.index}",
                                  stage.from_.line)
        elif dep not in done:
            on_path.add(dep)
            path.append((dep, iter(sorted(plan.stages[dep].deps))))
    return order


def _check_cycles(plan: BuildPlan) -> None:
    done: set[int] = set()
    for stage in plan.stages:
        if stage.index not in done:
            _depth_first(plan, stage.index, done)


def parse_dockerfile(text: str, build_args: dict[str, str], target: str | None = None,
                     platform: Platform | None = None) -> BuildPlan:
    """Dockerfile text → BuildPlan for the target `platform` (this machine's when None: the
    automatic TARGET* ARGs).  Raises DockerfileError (an InvalidArgument) naming the line."""
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
    meta: dict[str, str] = automatic_platform_args(target=platform)
    for ins in meta_instructions:
        ins = ins.expand(located_expander(meta, escape, ins.line))
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
        stage.from_ = stage.from_.expand(located_expander(meta, escape, stage.from_.line))
        if not stage.from_.image:
            raise DockerfileError("base name (the image after FROM) should not be blank", stage.from_.line)
        problem = platform_problem(stage.from_.platform) if stage.from_.platform else None
        if problem:
            raise DockerfileError(f"invalid --platform={stage.from_.platform}: {problem}",
                                  stage.from_.line)
        # BuildKit looks the base name up as written among the (lower-cased) names of earlier
        # stages: "FROM Build" is not stage "build" but an image, and an invalid one.
        earlier = names.get(stage.from_.image)
        if earlier is not None and earlier < stage.index:
            stage.base_stage = earlier
        elif stage.from_.image != SCRATCH:
            _check_base_image(stage.from_.image, stage.from_.line)
        settled, deps, images = _plan_stage(plan, stage, consumed)
        if stage.base_stage is not None:
            deps.add(stage.base_stage)
        elif stage.from_.image.lower() != SCRATCH:
            images.insert(0, stage.from_.image)
        stage.settled, stage.deps, stage.images = settled, frozenset(deps), tuple(dict.fromkeys(images))
    _check_cycles(plan)

    if target:
        plan.target = _target_index(plan, target)
    # The builder warns about these when the build ends, as the original does.
    plan.unused_build_args = sorted(k for k in build_args if k not in consumed and k not in BUILTIN_BUILD_ARGS)
    return plan
