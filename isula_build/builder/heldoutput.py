"""A stage's output held back while its base image is still being pulled.

A build served from a cache needs its base image's config at FROM (the cache keys are made of
it) but its layers only at the first step that reads the root, or at the commit. So FROM
starts the pull and the stage goes on looking its steps up, fetching what a shared cache
holds, while the layers arrive (distribution/pull.PullUnderWay). The client must still see
what the original prints: every line of the pull, then the stage's STEP lines. The stage's
lines and step times are held here, each with the time it came, and let out in order once
the pull is done; a pull that fails drops them, so the output ends with the pull's error as
it would have.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from isula_build.builder.steptimes import StepClock


class HeldOutput:
    """What the stage logs, held (the pull logs to the build's log itself). The lock keeps a
    line that comes from another of the stage's threads in order with a release."""

    def __init__(self, log: Callable[[str], None], steps: StepClock) -> None:
        self._out_log = log
        self._lock = threading.Lock()
        self._held: list[Callable[[], None]] | None = []   # None once let out or dropped
        self.steps: StepClock = _HeldClock(self, steps)

    def emit(self, event: Callable[[], None]) -> None:
        """Holds the event (a line logged, a step begun or ended), or does it once let out."""
        with self._lock:
            if self._held is not None:
                self._held.append(event)
                return
        event()

    def log(self, line: str) -> None:
        self.emit(lambda: self._out_log(line))

    def release(self) -> None:
        """Lets the held lines out in order; later ones go straight out."""
        with self._lock:
            held, self._held = self._held or [], None
        for event in held:
            event()

    def drop(self) -> None:
        """Forgets the held lines (the pull failed: the build ends with its error)."""
        with self._lock:
            self._held = None


class _HeldClock(StepClock):
    """The stage's step clock: begin and end go through the held output, each with the time
    it happened."""

    def __init__(self, held: HeldOutput, clock: StepClock) -> None:
        super().__init__(None)
        self._held_output = held
        self._clock = clock

    def begin(self, step: int, at: float | None = None) -> None:
        when = time.monotonic() if at is None else at
        self._held_output.emit(lambda: self._clock.begin(step, when))

    def end(self, at: float | None = None) -> None:
        when = time.monotonic() if at is None else at
        self._held_output.emit(lambda: self._clock.end(when))
