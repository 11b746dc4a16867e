"""The meeting points of builds' Build and Status RPCs, and the count of running builds.

The client sends Build and Status with the same build ID, in either order: the first of the
two RPCs to arrive creates the session, the other finds it (daemon/handlers/build.py). At most
MAX_BUILDS builds run at once; one more is refused with RESOURCE_EXHAUSTED. The daemon's state
(daemon/state.py) holds the one BuildRegistry.
"""

from __future__ import annotations

import queue
import threading

from isula_build.daemon.logstream import Job
from isula_build.errors import AlreadyExists, ResourceExhausted
from isula_build.progress import Event

MAX_BUILDS = 100
# A build whose Status never came is forgotten this long after it ended.
ORPHAN_SECONDS = 60.0


class BuildSession:
    """The meeting point of one build's Build and Status RPCs."""

    def __init__(self, build_id: str) -> None:
        self.build_id = build_id
        self.job = Job()  # its cancel event; registered with the daemon's jobs while running
        # Log lines and, when the Build asked for them, progress events; None: the build ended.
        self.lines: queue.Queue[str | Event | None] = queue.Queue()
        self.build_started = False
        self.build_ended = False
        self.status_attached = False
        self.status_ended = False

    def log(self, line: str) -> None:
        self.job.check()
        self.lines.put(line)

    def progress(self, event: Event) -> None:
        self.job.check()
        self.lines.put(event)


class BuildRegistry:
    """Build IDs → sessions, and the count of running builds."""

    def __init__(self, max_builds: int = MAX_BUILDS) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, BuildSession] = {}
        self._running = 0
        self._max = max_builds

    def running(self) -> int:
        with self._lock:
            return self._running

    def _session(self, build_id: str) -> BuildSession:
        session = self._sessions.get(build_id)
        if session is None:
            session = self._sessions[build_id] = BuildSession(build_id)
        return session

    def begin_build(self, build_id: str) -> BuildSession:
        with self._lock:
            if self._running >= self._max:
                raise ResourceExhausted(f"isula-builder is already running {self._max} builds, "
                                        "the most it runs at once; try again when one has ended")
            session = self._session(build_id)
            if session.build_started:
                raise AlreadyExists(f"a build with ID {build_id} is already running")
            session.build_started = True
            self._running += 1
            return session

    def end_build(self, session: BuildSession) -> None:
        with self._lock:
            self._running -= 1
            session.build_ended = True
            session.lines.put(None)
            self._forget_if_done(session)
        if not session.status_attached:
            timer = threading.Timer(ORPHAN_SECONDS, self._forget_orphan, (session,))
            timer.daemon = True
            timer.start()

    def attach_status(self, build_id: str) -> BuildSession:
        with self._lock:
            session = self._session(build_id)
            if session.status_attached:
                raise AlreadyExists(f"the log of build {build_id} is already being followed")
            session.status_attached = True
            return session

    def end_status(self, session: BuildSession) -> None:
        with self._lock:
            session.status_ended = True
            self._forget_if_done(session)

    def _forget_if_done(self, session: BuildSession) -> None:
        build_over = session.build_ended or not session.build_started
        if build_over and session.status_ended and \
                self._sessions.get(session.build_id) is session:
            del self._sessions[session.build_id]

    def _forget_orphan(self, session: BuildSession) -> None:
        with self._lock:
            if not session.status_attached and self._sessions.get(session.build_id) is session:
                del self._sessions[session.build_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
