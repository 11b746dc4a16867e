"""One daemon per run root: an exclusive flock on `<run root>/isula-builder.lock`."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from isula_build.errors import FailedPrecondition

LOCK_FILE = "isula-builder.lock"


class RunRootLock:
    def __init__(self, run_root: Path) -> None:
        self.path = run_root / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FailedPrecondition(f"another isula-builder is running on run root {run_root} "
                                     f"(lock {self.path} is held)") from None
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # The file stays: unlinking it would let a daemon that opened it just before hold a
        # lock on an orphaned inode while a third daemon locks a new file.
        os.close(self._fd)
        self._fd = None
