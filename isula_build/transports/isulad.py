"""isulad: images handed to iSulad with its CLI.

As the original: the image is written as a docker-archive under `<data_root>/tmp`, loaded
with `isula load -i FILE`, and the file removed whether or not the load worked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from isula_build.errors import FailedPrecondition
from isula_build.transports.docker_daemon import ArchiveHandoff

ISULA = "isula"
LOAD_TIMEOUT = 600.0


class IsuladWriter(ArchiveHandoff):
    def __init__(self, tmp_dir: Path, isula: str = ISULA) -> None:
        super().__init__(tmp_dir, "isulad-")
        self._isula = isula

    def deliver(self) -> None:
        binary = shutil.which(self._isula)
        if binary is None:
            raise FailedPrecondition(f"cannot export to isulad: the {self._isula!r} command "
                                     "was not found on the daemon's PATH")
        try:
            done = subprocess.run([binary, "load", "-i", str(self.path)], capture_output=True,
                                  text=True, timeout=LOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise FailedPrecondition(f"isula load did not finish within {LOAD_TIMEOUT:.0f} s") from None
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
            raise FailedPrecondition(f"isula load failed: {reason}")
