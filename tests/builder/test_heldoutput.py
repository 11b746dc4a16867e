"""A stage's output held while its base image is pulled (builder/heldoutput.py): let out in
order once the pull is done, each step timed from when it really began; dropped when the pull
fails."""

from __future__ import annotations

import time

from isula_build.builder.heldoutput import HeldOutput
from isula_build.builder.steptimes import StepClock
from isula_build.progress import StepTime


def _clock() -> tuple[StepClock, list[StepTime]]:
    times: list[StepTime] = []
    return StepClock(times.append), times


def test_held_lines_and_step_times_come_out_in_order_with_their_own_times() -> None:
    lines: list[str] = []
    clock, times = _clock()
    clock.begin(1)
    held = HeldOutput(lines.append, clock)
    held.steps.begin(2)
    held.log("STEP  2: COPY src /src")
    time.sleep(0.05)   # step 2 lasts this long, however late it is let out
    held.steps.begin(3)
    held.log("STEP  3: RUN make")
    held.steps.end()
    assert lines == [] and times == []
    time.sleep(0.2)   # the pull goes on
    held.release()
    assert lines == ["STEP  2: COPY src /src", "STEP  3: RUN make"]
    assert [t.step for t in times] == [1, 2, 3]
    assert 0.05 <= times[1].seconds < 0.2   # from its begin to step 3's, not to the release
    assert times[2].seconds < 0.05
    held.log("after")   # once let out, lines go straight through
    assert lines[-1] == "after"


def test_dropped_lines_never_come_out() -> None:
    lines: list[str] = []
    clock, times = _clock()
    held = HeldOutput(lines.append, clock)
    held.steps.begin(2)
    held.log("STEP  2: COPY src /src")
    held.drop()
    held.release()
    assert lines == [] and times == []
