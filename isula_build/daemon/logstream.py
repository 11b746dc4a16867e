"""The one log-streaming helper every streaming handler uses.

A streaming request (import, load, save, rm, ...) is some work that prints lines as it goes. The
work runs in a thread of its own with a `Job` whose `log(line)` queues a line; `stream()` yields
each line to the client as the method's response message. When the client goes away (or the
daemon shuts down), the job's cancel event is set: `job.log` and `job.check` then raise
Cancelled, so the work stops at its next line without every handler polling for it.

Line endings follow the original Go client, which prints `msg.Log` with `fmt.Print` for import,
load, save, pull, push and build status, but prints rm's `layerMessage` with `fmt.Println`:
`stream(..., newline=True)` appends "\n" to each line, `newline=False` sends it bare.

Progress (issue 15): when the client asked for it, `stream(..., progress=...)` gives the job a
`job.progress` callable (None otherwise) that the handler passes down to the copy; its events
travel in the same queue as the lines, so the client gets both in the order they were made.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from isula_build.api import control_pb2 as pb
from isula_build.daemon.progress import wire_progress
from isula_build.errors import Cancelled
from isula_build.progress import Event, Report

M = TypeVar("M")

_log = logging.getLogger(__name__)
_POLL_SECONDS = 0.5  # how often a waiting side checks whether the other side is gone
_QUEUE_LINES = 1024  # bounds memory when a client reads slower than the work prints


class _Done:
    """Queued after the work's last line."""


_DONE = _Done()


class Job:
    """What a handler's work gets: a log callback, a cancel event and, when the client asked
    for progress, a progress callback (else None: nothing is counted or sent)."""

    def __init__(self, progress: bool = False) -> None:
        self.cancelled = threading.Event()
        self._ended = threading.Event()
        self._lines: queue.Queue[str | Event | _Done] = queue.Queue(maxsize=_QUEUE_LINES)
        self.progress: Report | None = self._put if progress else None

    def log(self, line: str) -> None:
        """Sends one line to the client; raises Cancelled once the request is cancelled."""
        self._put(line)

    def check(self) -> None:
        """Raises Cancelled if the client went away or the daemon is stopping."""
        if self.cancelled.is_set():
            raise Cancelled("the request was cancelled")

    def _put(self, item: str | Event | _Done) -> None:
        while True:
            self.check()
            try:
                self._lines.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _finish(self) -> None:
        self._ended.set()
        # The marker wakes a waiting reader at once; if the queue is full, the reader sees
        # _ended when it has drained the queue.
        try:
            self._lines.put_nowait(_DONE)
        except queue.Full:
            pass


class JobRegistry:
    """The running jobs, so a stopping daemon can cancel them and wait for them to end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: dict[threading.Thread, Job] = {}

    def start(self, job: Job, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self._run, args=(target,), name=name, daemon=True)
        with self._lock:
            self._threads[thread] = job
        thread.start()

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)

    def running(self) -> int:
        with self._lock:
            return len(self._threads)

    def cancel_all(self) -> None:
        with self._lock:
            for job in self._threads.values():
                job.cancelled.set()

    def join(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds in all; True when every job has ended."""
        with self._lock:
            threads = list(self._threads)
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            for thread in threads:
                while thread.is_alive() and not deadline.is_set():
                    thread.join(_POLL_SECONDS)
        finally:
            timer.cancel()
        return self.running() == 0


def stream(context: grpc.ServicerContext, jobs: JobRegistry, name: str,
           work: Callable[[Job], None], message: Callable[[str], M],
           newline: bool = True,
           progress: Callable[[pb.Progress], M] | None = None) -> Iterator[M]:
    """Runs `work(job)` in a thread and yields `message(line)` for each line it logs, and
    `progress(event)` for each progress event when given (the client asked for them).

    An exception raised by the work is re-raised here after its lines were sent, so the caller
    (the servicer) turns it into the RPC's status.
    """
    job = Job(progress=progress is not None)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work(job)
        except BaseException as exc:  # handed to the RPC thread, which reports it
            failure.append(exc)
        finally:
            job._finish()

    # Called by gRPC when the RPC ends for any reason, including the client cancelling.
    context.add_callback(job.cancelled.set)
    jobs.start(job, run, name)
    done = False
    try:
        while True:
            try:
                item = job._lines.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if job._ended.is_set():
                    done = True
                    break
                if not context.is_active():
                    _log.info("%s: client went away, cancelling", name)
                    return
                continue
            if isinstance(item, _Done):
                done = True
                break
            if isinstance(item, str):
                yield message(item + "\n" if newline else item)
            elif progress is not None:
                yield progress(wire_progress(item))
    finally:
        # Reached too when the client is gone or gRPC closes this generator early.
        if not done:
            job.cancelled.set()
    if failure:
        raise failure[0]
