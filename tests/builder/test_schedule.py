"""schedule.run_stages on real plans with stand-in stage functions (the e2e tests run real
stages): dependency order, the job limit, prefixes, the first error and cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from isula_build.builder.executor import BuildRun
from isula_build.builder.schedule import run_stages, runs_in_parallel
from isula_build.dockerfile import parse_dockerfile
from isula_build.errors import Cancelled, InvalidArgument

FAN_IN = """\
FROM busybox AS a
FROM busybox AS b
FROM busybox
FROM scratch AS final
COPY --from=a /x /a
COPY --from=b /x /b
COPY --from=2 /x /c
"""


def build_run(tmp_path: Path, log: list[str]) -> BuildRun:
    lock = threading.Lock()

    def append(line: str) -> None:
        with lock:
            log.append(line)

    return BuildRun(runtime="runc", state_root=tmp_path, mountopt="", work_dir=tmp_path,
                    context_dir=tmp_path, ignore=None, proxy_env={}, cap_add=[],
                    build_time=None, log=append, cancel=threading.Event())


def test_each_stage_after_its_deps_with_at_most_jobs_at_once(tmp_path: Path) -> None:
    plan = parse_dockerfile(FAN_IN, {})
    log: list[str] = []
    ctx = build_run(tmp_path, log)
    lock = threading.Lock()
    now, most = [0], [0]
    all_three = threading.Barrier(3, timeout=30)
    results: dict[int, int] = {}

    def run(index: int, sctx: BuildRun) -> int:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        if index < 3:
            all_three.wait()   # breaks (and fails the stage) unless the three run at once
        sctx.log(f"ran {index}")
        sctx.new_dir("x")
        with lock:
            now[0] -= 1
        return index * 10

    run_stages(plan, ctx, run, results, jobs=3)
    assert results == {0: 0, 1: 10, 2: 20, 3: 30}
    assert most[0] == 3
    assert sorted(log[:3]) == ["[a] ran 0", "[b] ran 1", "[stage-2] ran 2"]
    assert log[3] == "[final] ran 3"
    assert ctx.new_dir("x").name == "x-5"   # one counter for all stages


def test_one_job_runs_one_stage_at_a_time_unprefixed(tmp_path: Path) -> None:
    plan = parse_dockerfile(FAN_IN, {})
    assert runs_in_parallel(plan, 2) and not runs_in_parallel(plan, 1)
    log: list[str] = []
    running = threading.Semaphore(1)

    def run(index: int, sctx: BuildRun) -> None:
        assert running.acquire(blocking=False), "two stages at once"
        sctx.log(f"ran {index}")
        running.release()

    run_stages(plan, build_run(tmp_path, log), run, {}, jobs=1)
    assert log == ["ran 0", "ran 1", "ran 2", "ran 3"]


def test_a_chain_is_never_prefixed(tmp_path: Path) -> None:
    plan = parse_dockerfile("FROM busybox AS a\nFROM a AS b\nFROM b\n", {})
    log: list[str] = []
    run_stages(plan, build_run(tmp_path, log), lambda i, sctx: sctx.log(f"ran {i}"), {},
               jobs=8)
    assert log == ["ran 0", "ran 1", "ran 2"]


def test_the_first_error_cancels_the_others_and_is_raised(tmp_path: Path) -> None:
    plan = parse_dockerfile(FAN_IN, {})
    started = threading.Barrier(2, timeout=30)
    ran: list[int] = []

    def run(index: int, sctx: BuildRun) -> None:
        ran.append(index)
        if index == 0:
            started.wait()
            raise InvalidArgument("stage a failed")
        if index == 1:
            started.wait()
            if not sctx.cancel.wait(30):
                raise AssertionError("not cancelled")
            raise Cancelled("the build was cancelled")

    with pytest.raises(InvalidArgument, match="stage a failed"):
        run_stages(plan, build_run(tmp_path, []), run, {}, jobs=2)
    assert sorted(ran) == [0, 1]    # nothing started after the failure


def test_the_builds_cancel_reaches_running_stages(tmp_path: Path) -> None:
    plan = parse_dockerfile(FAN_IN, {})
    ctx = build_run(tmp_path, [])

    def run(index: int, sctx: BuildRun) -> None:
        ctx.cancel.set()     # as the daemon does when the client goes away
        if not sctx.cancel.wait(30):
            raise AssertionError("not cancelled")
        raise Cancelled("the build was cancelled")

    with pytest.raises(Cancelled):
        run_stages(plan, ctx, run, {}, jobs=2)
