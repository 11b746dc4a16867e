"""Runs a build's stages: each once the stages it reads are done, independent ones at once.

A stage may start when every stage it depends on (FROM an earlier stage, COPY --from a stage:
`Stage.deps`) has finished; at most `jobs` stages run at a time, by default one per core
(os.cpu_count(): a RUN can keep a core busy), ready stages starting in the Dockerfile's order.

Output. When the plan lets two stages run at once (some level of plan.levels() holds two stages
and jobs > 1), every line a stage logs — its STEP lines, its RUN output, its pull and cache
lines — is prefixed with `[NAME] `: the stage's AS name, or `stage-N` for an unnamed stage, the
names BuildKit's progress output gives stages (`[builder 2/3] RUN make`, `[stage-1 1/2] FROM
…`). Each stage logs from one thread, so its own lines keep their order. A build whose stages
can only run one after another (one stage, or a chain) logs exactly what it logged before:
nothing is prefixed, whatever the timing, so the decision depends on the plan alone.

Cancel. The first stage to fail sets the other stages' cancel event (their RUN containers are
killed, as when a build is cancelled); once every running stage has stopped, that first error
is the build's (a stage's Cancelled only wins when no stage failed otherwise). The build's own
cancel event reaches the stages within POLL_SECONDS.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from isula_build.builder.executor import BuildRun
from isula_build.dockerfile import BuildPlan
from isula_build.errors import Cancelled

T = TypeVar("T")

POLL_SECONDS = 0.05


def default_jobs() -> int:
    return os.cpu_count() or 1


def runs_in_parallel(plan: BuildPlan, jobs: int) -> bool:
    """Whether two of the needed stages may run at once (their lines are then prefixed)."""
    return jobs > 1 and any(len(level) > 1 for level in plan.levels())


def stage_prefix(plan: BuildPlan, index: int) -> str:
    stage = plan.stages[index]
    return f"[{stage.name or f'stage-{index}'}] "


def _prefixed(log: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: log(prefix + line)


def run_stages(plan: BuildPlan, ctx: BuildRun, run: Callable[[int, BuildRun], T],
               results: dict[int, T], jobs: int | None = None) -> None:
    """Runs `run(index, stage_ctx)` for every stage plan.needed() lists, each after its deps,
    filling `results` (only from this thread: a stage reads the results of its deps, which
    are in before it starts). Raises the first stage error."""
    jobs = max(1, jobs or default_jobs())
    parallel = runs_in_parallel(plan, jobs)
    pending = plan.needed()
    stop = threading.Event()        # the stages' cancel: the build's, or a stage failed
    running: dict[Future[T], int] = {}
    errors: list[BaseException] = []

    def start(pool: ThreadPoolExecutor, index: int) -> None:
        log = _prefixed(ctx.log, stage_prefix(plan, index)) if parallel else ctx.log
        running[pool.submit(run, index, ctx.for_stage(log, stop))] = index

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="stage") as pool:
        while pending or running:
            if not stop.is_set():
                for index in [i for i in pending
                              if all(d in results for d in plan.stages[i].deps)]:
                    if len(running) >= jobs:
                        break
                    pending.remove(index)
                    start(pool, index)
            if not running:
                break       # stopped: nothing more starts
            done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            if ctx.cancel.is_set():
                stop.set()
            for future in done:
                index = running.pop(future)
                error = future.exception()
                if error is None:
                    results[index] = future.result()
                else:
                    errors.append(error)
                    stop.set()
    if errors:
        raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
    ctx.check()


__all__ = ["POLL_SECONDS", "default_jobs", "run_stages", "runs_in_parallel", "stage_prefix"]
