"""How long each step of a build took, for a client watching it (issue 15).

A step lasts from its `STEP  N:` line to the next one, or to the commit after the last; the
whole build from its start to its end. Without a progress callback nothing is reported.
"""

from __future__ import annotations

import time

from isula_build.progress import Report, StepTime


class StepClock:
    def __init__(self, report: Report | None) -> None:
        self._report = report
        self._started = time.monotonic()
        self._step: int | None = None
        self._since = self._started

    def begin(self, step: int, at: float | None = None) -> None:
        """Step `step` starts (its STEP line was logged); the one before it has ended. at: when
        (time.monotonic()), for a stage whose lines were held back (builder/heldoutput.py)."""
        now = time.monotonic() if at is None else at
        self.end(now)
        self._step, self._since = step, now

    def end(self, at: float | None = None) -> None:
        """The running step, if any, has ended."""
        if self._step is not None and self._report is not None:
            now = time.monotonic() if at is None else at
            self._report(StepTime(self._step, now - self._since))
        self._step = None

    def finish(self) -> None:
        """The build has ended: reports its whole time."""
        self.end()
        if self._report is not None:
            self._report(StepTime(0, time.monotonic() - self._started))
