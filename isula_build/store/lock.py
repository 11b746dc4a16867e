"""The store lock: an flock on store.lock, so only one daemon owns a data root at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from isula_build.errors import FailedPrecondition


class StoreLock:
    def __init__(self, path: Path) -> None:
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise FailedPrecondition(
                f"the image store {path.parent} is in use by another process "
                "(is another isula-builder running with the same data root?)") from None
        # Who holds it, for an administrator looking at the file; the flock itself is the lock.
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None
