"""--progress for pull, push, load, save, import and build: how the daemon's output is shown.

- plain: the daemon's lines exactly as they come, then the client's final line: what the
  original prints, and what scripts parse.
- quiet: only the final line(s) (`Pull success with image: …`, `Loaded image as <id>`, the
  build's image ID line); errors still go to stderr.
- tty: the same lines, and under them a live region redrawn in place: a line per blob being
  copied (bytes done of total, speed, time left) and the running build step with its clock.
  Each blob's size, time and speed is printed when it is done, each step's time when it ends,
  and a build's total time at its end.
- auto (the default): tty when stdout is a terminal (and TERM is not "dumb"), else plain.

Only tty asks the daemon for progress events (the request's own `progress` field; see
control.proto), so plain and quiet get exactly the messages the original's client gets. The
terminal code is a few ANSI sequences (erase below, cursor up) rather than a library: the live
region is one list of lines, and the client's start-up stays free of imports it does not need
(threading is loaded only for tty).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from isula_build.units import format_size

MODES = ("auto", "tty", "plain", "quiet")
HELP = ("How to show progress: auto (tty on a terminal, else plain), tty (live progress of "
        "each blob and build step), plain (the log lines only), quiet (only the final line)")
_REDRAW_SECONDS = 0.2     # how often timers and speeds move without news from the daemon
_BAR_WIDTH = 20


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", default="auto", choices=MODES, help=HELP)


def resolve_mode(mode: str, stream: TextIO) -> str:
    if mode != "auto":
        return mode
    try:
        terminal = stream.isatty()
    except ValueError:  # closed
        terminal = False
    return "tty" if terminal and os.environ.get("TERM") != "dumb" else "plain"


def seconds_text(seconds: float) -> str:
    """`0.42s`, `12.3s`, `2m05s`."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


class Output:
    """What a command writes its stream through. This base class is plain: every line as is."""

    wants_progress = False

    def __init__(self, stream: TextIO) -> None:
        self._out = stream

    def ask(self, request: Any) -> Any:
        """request with its progress field set when this output shows progress."""
        request.progress = self.wants_progress
        return request

    def follow(self, responses: Iterable[Any], field: str) -> None:
        """Shows each streamed response: its progress event, or its text field."""
        for message in responses:
            self.message(message, field)

    def message(self, message: Any, field: str) -> None:
        if self.wants_progress and message.HasField("progress"):
            self.event(message.progress)
        else:
            self.line(getattr(message, field))

    def line(self, text: str) -> None:
        """Text from the daemon, with its own newlines."""
        self._write(text)

    def event(self, progress: Any) -> None:
        """A Progress message (only a tty output asks for them)."""

    def final(self, text: str) -> None:
        """The client's own last line (it ends with a newline)."""
        self._write(text)

    def close(self) -> None:
        pass

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QuietOutput(Output):
    """Only the final line: the client's own, and daemon lines starting with one of `keep`."""

    def __init__(self, stream: TextIO, keep: tuple[str, ...]) -> None:
        super().__init__(stream)
        self._keep = keep

    def line(self, text: str) -> None:
        kept = [line for line in text.splitlines(keepends=True) if line.startswith(self._keep)]
        if kept:
            self._write("".join(kept))


class _Blob:
    """A blob being copied, as its last event told (times are the daemon's)."""

    def __init__(self, blob_id: str) -> None:
        self.id = blob_id
        self.done = 0
        self.total = -1
        self.seconds = 0.0

    @property
    def label(self) -> str:
        return self.id[:19] if self.id else "blob"   # "sha256:" and 12 hex, as docker shortens

    @property
    def speed(self) -> float | None:
        return self.done / self.seconds if self.seconds > 0 and self.done else None

    def render(self) -> str:
        parts = [self.label]
        speed = self.speed
        if self.total > 0:
            filled = min(_BAR_WIDTH, self.done * _BAR_WIDTH // self.total)
            bar = "=" * filled + (">" if filled < _BAR_WIDTH else "")
            parts.append(f"[{bar:<{_BAR_WIDTH}}]")
            parts.append(f"{format_size(self.done)} / {format_size(self.total)}")
        else:
            parts.append(format_size(self.done))
        parts.append(f"{format_size(speed)}/s" if speed else "--/s")
        if self.total > 0 and speed:
            parts.append(f"ETA {seconds_text(max(0.0, (self.total - self.done) / speed))}")
        return "  ".join(parts)

    def summary(self) -> str:
        speed = f" ({format_size(self.speed)}/s)" if self.speed else ""
        return (f"Copied blob {self.label}: {format_size(self.done)} in "
                f"{seconds_text(self.seconds)}{speed}\n")


class TtyOutput(Output):
    """The lines as they come, with a live region under them redrawn in place."""

    wants_progress = True

    def __init__(self, stream: TextIO) -> None:
        import threading

        super().__init__(stream)
        self._lock = threading.Lock()
        self._blobs: dict[str, _Blob] = {}     # being copied, in the order they started
        self._finished: set[str] = set()       # blobs whose summary line is printed
        self._step: tuple[int, str, float] | None = None   # number, STEP line, start
        self._drawn = 0                        # lines of the live region on the screen
        self._partial = ""                     # text after the last newline, not shown yet
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._ticker.start()

    def line(self, text: str) -> None:
        with self._lock:
            # Only whole lines go above the live region (which starts on a line of its own).
            text, newline, self._partial = (self._partial + text).rpartition("\n")
            if not newline:
                return
            for line in text.split("\n"):
                self._note_step(line)
            self._print(text + "\n")

    def _note_step(self, line: str) -> None:
        head, sep, _ = line.partition(":")
        words = head.split()
        if sep and len(words) == 2 and words[0] == "STEP" and words[1].isdigit():
            self._step = (int(words[1]), line, time.monotonic())

    def event(self, progress: Any) -> None:
        kind = progress.WhichOneof("event")
        with self._lock:
            if kind == "blob":
                self._blob_event(progress.blob)
            elif kind == "step":
                self._step_event(progress.step)

    def _blob_event(self, event: Any) -> None:
        # An imported tarball's digest is known only at its end: its events until then have
        # an empty ID, and the last one the digest.
        if event.id and event.id in self._finished:
            return   # a late event of a blob already summed up
        key = event.id if event.id in self._blobs or "" not in self._blobs else ""
        blob = self._blobs.get(key)
        if blob is None:
            blob = self._blobs[key] = _Blob(event.id)
        blob.done, blob.total, blob.seconds = event.done, event.total, event.seconds
        if event.total >= 0 and event.done >= event.total:
            del self._blobs[key]
            blob.id = event.id
            self._finished.add(event.id)
            self._print(blob.summary())
        else:
            self._draw()

    def _step_event(self, event: Any) -> None:
        if event.step == 0:
            self._print(f"Total time: {seconds_text(event.seconds)}\n")
            return
        if self._step is not None and self._step[0] == event.step:
            self._step = None
        self._print(f" ---> Done in {seconds_text(event.seconds)}\n")

    def _print(self, text: str) -> None:
        """Writes text above the live region, then draws the region again."""
        self._clear()
        self._out.write(text)
        self._draw()

    def _clear(self) -> None:
        if self._drawn:
            # Up to the region's first line, then erase everything below the cursor.
            self._out.write(f"\x1b[{self._drawn}A\r\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        self._clear()
        now = time.monotonic()
        lines = [blob.render() for blob in self._blobs.values()]
        if self._step is not None:
            _, text, started = self._step
            lines.append(f"{text}  {seconds_text(now - started)}")
        # A line wider than the terminal would wrap and break the count of lines to erase.
        width = max(20, _columns(self._out) - 1)
        for line in lines:
            self._out.write(line[:width] + "\n")
        self._drawn = len(lines)
        self._out.flush()

    def _tick(self) -> None:
        while not self._stop.wait(_REDRAW_SECONDS):
            with self._lock:
                if self._drawn:
                    self._draw()

    def final(self, text: str) -> None:
        with self._lock:
            self._print(text)

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()
        with self._lock:
            self._blobs.clear()
            self._step = None
            self._clear()
            if self._partial:
                self._out.write(self._partial)
                self._partial = ""
            self._out.flush()


def _columns(stream: TextIO) -> int:
    """The terminal's width; 80 when it tells none (a pseudo-terminal without a size)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError):
        return 80


def open_output(mode: str, keep: tuple[str, ...] = ()) -> Output:
    """The output for --progress `mode`; `keep`: the prefixes of the daemon lines that are
    final lines (quiet shows them)."""
    resolved = resolve_mode(mode, sys.stdout)
    if resolved == "tty":
        return TtyOutput(sys.stdout)
    if resolved == "quiet":
        return QuietOutput(sys.stdout, keep)
    return Output(sys.stdout)
