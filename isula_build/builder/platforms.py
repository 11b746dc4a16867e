"""`--platform`: what a build does differently for the platforms it builds for.

A build names its target platforms (`--platform linux/arm64,linux/amd64`); each is planned on
its own (the frontend's automatic TARGET* ARGs) and built one after another. Sequential on
purpose: RUN of a foreign architecture runs under qemu-user and takes every core it gets, and
this daemon runs next to others; the log says which platform each line belongs to instead.

- A stage's platform is its `FROM --platform=…` (expanded with the automatic ARGs, so
  `$BUILDPLATFORM` means this machine), else the target's. Its base image is the store's image
  of that platform — the name's image when its config says the platform, the matching entry of
  a list the name holds — else pulled by platform (unnamed, so the name keeps meaning this
  machine's image).
- A stage that comes out the same for every target (a `$BUILDPLATFORM` builder not reading
  TARGET* ARGs) runs once: StageMemo hands its result to the later targets' builds.
- Before anything runs, every stage with RUN whose platform is not this machine's is checked
  against binfmt_misc (binfmt.py), so a missing qemu handler is a clear error, not a failed RUN.
- The image config gets the stage's platform (os, architecture, variant).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from isula_build.builder.binfmt import check_can_run
from isula_build.builder.config import StageConfig
from isula_build.builder.stage import StageResult
from isula_build.distribution.lists import load_list
from isula_build.distribution.pull import PullUnderWay, pull_image, start_pull
from isula_build.dockerfile import BuildPlan, Stage
from isula_build.dockerfile.instructions import ArgInstruction, RunInstruction
from isula_build.errors import (Cancelled, FailedPrecondition, IsulaBuildError, NotFound,
                                at_line, reworded)
from isula_build.image import config as image_config
from isula_build.image.manifest import choose_platform
from isula_build.image.platform import Platform, matches, of_fields
from isula_build.progress import Report
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store, local_image_of
from isula_build.transports.reference import DockerArchiveRef, EngineRef, TransportRef


def stage_platform(plan: BuildPlan, stage: Stage, target: Platform | None) -> Platform | None:
    """The platform a stage is built for: its FROM --platform, else that of the earlier stage
    it is built FROM, else the target's (None: this machine's, without asking for a platform,
    as before --platform existed)."""
    while not stage.from_.platform and stage.base_stage is not None:
        stage = plan.stages[stage.base_stage]
    if stage.from_.platform:
        return Platform.parse(stage.from_.platform)
    return target


def check_emulation(plans: list[tuple[Platform | None, BuildPlan]], binfmt: Path) -> None:
    """Refuses, before anything runs, a RUN for a platform this machine cannot run."""
    for target, plan in plans:
        for index in plan.needed():
            stage = plan.stages[index]
            platform = stage_platform(plan, stage, target)
            run = next((ins for ins in stage.instructions if isinstance(ins, RunInstruction)), None)
            if platform is not None and run is not None:
                try:
                    check_can_run(platform, binfmt)
                except FailedPrecondition as exc:
                    raise at_line(exc, run.line) from None


def check_output(output: TransportRef | None, targets: list[Platform]) -> None:
    """A list has no place in a docker-archive or a daemon's store: refused before building."""
    if len(targets) > 1 and isinstance(output, (DockerArchiveRef, EngineRef)):
        raise FailedPrecondition(
            f"output {output.transport}: holds one image, and {len(targets)} platforms make a "
            "manifest list: build one platform (--platform linux/arm64), or use -o "
            "oci-archive:… or -o docker://…")


def set_platform(config: StageConfig, platform: Platform) -> None:
    config.top.pop("variant", None)
    config.top.update(platform.config_fields())


def find_base(store: Store, registry: RegistrySettings | None, ref: str, what: str,
              log: Callable[[str], None], platform: Platform | None = None,
              progress: Report | None = None) -> ImageRecord:
    """The stored image `ref` (of `platform` when one is asked for), pulled when the store
    lacks it and there are registry settings to pull with (the bytes told to `progress`)."""
    found = _base(store, registry, ref, what, log, platform, progress, pull_image)
    assert isinstance(found, ImageRecord)
    return found


def start_base(store: Store, registry: RegistrySettings | None, ref: str, what: str,
               log: Callable[[str], None], platform: Platform | None = None,
               progress: Report | None = None) -> ImageRecord | PullUnderWay:
    """find_base, except that a pull returns once the image is known, its layers still being
    copied (PullUnderWay.wait; its errors go through pull_failed)."""
    return _base(store, registry, ref, what, log, platform, progress, start_pull)


def _base(store: Store, registry: RegistrySettings | None, ref: str, what: str,
          log: Callable[[str], None], platform: Platform | None, progress: Report | None,
          pull: Callable[..., ImageRecord | PullUnderWay]) -> ImageRecord | PullUnderWay:
    found = _stored_base(store, registry, ref, what, platform)
    if found is not None:
        return found
    assert registry is not None
    try:
        # The copy lines go to the build log; a short name is stored under its full name,
        # so the returned record (not a second lookup of `ref`) is the image. An image of a
        # platform asked for stays unnamed: the name keeps meaning this machine's image.
        return pull(store, registry, ref, log, progress, platform, named=platform is None)
    except Cancelled:
        raise
    except IsulaBuildError as exc:
        raise pull_failed(exc, what, ref) from None


def pull_failed(exc: IsulaBuildError, what: str, ref: str) -> IsulaBuildError:
    return reworded(exc, f'{what} "{ref}" not found in the local store, and pulling it '
                         f"failed: {exc}")


def _stored_base(store: Store, registry: RegistrySettings | None, ref: str, what: str,
                 platform: Platform | None) -> ImageRecord | None:
    """The stored image find_base looks for; None when it is to be pulled. NotFound when it
    is not stored and there is nothing to pull with."""
    try:
        record = store.lookup(ref)
    except NotFound:
        record = None
    if record is not None:
        if platform is None and not record.is_manifest_list:
            return record
        local = _of_platform(store, record, platform)
        if local is not None:
            return local
    if registry is None:
        have = "" if record is None else \
            f" ({ref} is {_platform_of(store, record) or 'a manifest list without it'})"
        raise NotFound(f'{what} "{ref}"{" for " + str(platform) if platform else ""} not found '
                       f"in the local store{have} (pull it first, or load or import it)")
    return None


def _platform_of(store: Store, record: ImageRecord) -> Platform | None:
    if record.is_manifest_list:
        return None
    return of_fields(image_config.parse_config(store.config_bytes(record.id)))


def _of_platform(store: Store, record: ImageRecord, platform: Platform | None) -> ImageRecord | None:
    """The image of `platform` (this machine's when None) the record is or lists, if stored."""
    if not record.is_manifest_list:
        assert platform is not None
        return record if matches(platform, _platform_of(store, record)) else None
    manifest_list = load_list(store, record.id)
    try:
        entry = choose_platform({"manifests": manifest_list.manifests}, f"manifest list {record.id}",
                                platform)
    except NotFound:
        return None
    image_id = local_image_of(manifest_list.sources.get(entry.digest, ""))
    try:
        return store.lookup(image_id) if image_id is not None else None
    except NotFound:
        return None


class StageMemo:
    """Stage results shared by the builds of one request's platforms. A stage's identity is
    what its result depends on within one build request: its platform, its FROM, the
    identities of the stages it reads, and the values of the global ARGs it declares (the
    automatic TARGET* ones differ between targets); the instructions and build args are the
    same for every target."""

    def __init__(self) -> None:
        self._identities: dict[tuple[int, int], str] = {}
        self._results: dict[str, tuple[StageResult, Platform | None]] = {}

    def _identity(self, plan: BuildPlan, stage: Stage, target: Platform | None) -> str:
        declared = sorted({name for ins in stage.instructions if isinstance(ins, ArgInstruction)
                           for name, _ in ins.args})
        parts = (str(stage_platform(plan, stage, target)), repr(stage.from_),
                 sorted(self._identities[(id(plan), dep)] for dep in stage.deps),
                 [(name, plan.meta_args.get(name)) for name in declared], stage.index)
        identity = hashlib.sha256(repr(parts).encode()).hexdigest()
        self._identities[(id(plan), stage.index)] = identity
        return identity

    def find(self, plan: BuildPlan, stage: Stage,
             target: Platform | None) -> tuple[StageResult, Platform | None] | None:
        """The result of the same stage an earlier target's build made (and its target)."""
        return self._results.get(self._identity(plan, stage, target))

    def keep(self, plan: BuildPlan, stage: Stage, target: Platform | None,
             result: StageResult) -> None:
        self._results.setdefault(self._identities[(id(plan), stage.index)], (result, target))


def prefixed(log: Callable[[str], None], platform: Platform) -> Callable[[str], None]:
    """The log of one platform's build among several: each line says its platform."""
    return lambda line: log(f"[{platform}] {line}")


__all__ = ["StageMemo", "check_emulation", "check_output", "find_base", "prefixed", "pull_failed",
           "set_platform", "stage_platform", "start_base"]
