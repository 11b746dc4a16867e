"""The ssh agent socket a RUN --mount=type=ssh shows: a unix socket whose every connection is
handed to `relay` (the client's agent, through the daemon's SSHForward stream) on a thread of
its own.

The socket is bound through /proc/self/fd/N/NAME, N a descriptor of its directory: a run root
deep in the file system would make the plain path longer than the 108 bytes of sun_path.
Leaving the block stops accepting and shuts every connection down (a relay then ends), so no
thread outlives the RUN.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

_log = logging.getLogger(__name__)


class AgentSocket:
    def __init__(self, directory: Path, name: str, mode: int, uid: int, gid: int,
                 relay: Callable[[socket.socket], None]) -> None:
        self.path = directory / name
        self._directory = directory
        self._name = name
        self._mode, self._uid, self._gid = mode, uid, gid
        self._relay = relay
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def __enter__(self) -> AgentSocket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        dirfd = os.open(self._directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            listener.bind(f"/proc/self/fd/{dirfd}/{self._name}")
            os.chown(self._name, self._uid, self._gid, dir_fd=dirfd, follow_symlinks=False)
            os.chmod(self._name, self._mode, dir_fd=dirfd)
            listener.listen(16)
        except BaseException:
            listener.close()
            raise
        finally:
            os.close(dirfd)
        self._listener = listener
        accept = threading.Thread(target=self._accept, name=f"agent-{self._name}", daemon=True)
        self._threads.append(accept)
        accept.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # shut down by __exit__
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._conns.add(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                          name=f"agent-{self._name}-conn")
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._relay(conn)
        except Exception as exc:  # one connection failing must not end the others
            _log.warning("ssh agent relay: %s", exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            self._closed = True
            conns = list(self._conns)
        assert self._listener is not None
        try:
            self._listener.shutdown(socket.SHUT_RDWR)   # wakes accept()
        except OSError:
            pass
        self._listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)   # wakes the relay's recv()
            except OSError:
                pass
        self._threads[0].join()   # accept: no thread is added after it ended
        for thread in self._threads[1:]:
            thread.join()
        try:
            self.path.unlink()
        except OSError:
            pass  # the tmpfs goes anyway


__all__ = ["AgentSocket"]
