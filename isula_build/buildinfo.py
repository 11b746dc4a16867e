"""What `isula-build version` shows of an installation: the daemon answers the Version RPC with
it and the client prints its own, so both read the same facts here."""

from __future__ import annotations

import functools
import platform
import subprocess
import time
from pathlib import Path

import isula_build
from isula_build.api import control_pb2 as pb

_PACKAGE_DIR = Path(isula_build.__file__).resolve().parent
# Go's runtime.GOARCH names, which the original reports and users compare against.
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_ANSIC = "%a %b %e %H:%M:%S %Y"  # Go's time.ANSIC, the original's buildTime layout


def version_response() -> pb.VersionResponse:
    return pb.VersionResponse(
        version=isula_build.__version__,
        goVersion=platform.python_version(),
        gitCommit=git_commit(),
        buildTime=build_time(),
        osArch=os_arch(),
    )


def os_arch() -> str:
    machine = platform.machine()
    return f"{platform.system().lower()}/{_GO_ARCH.get(machine, machine)}"


@functools.cache
def git_commit() -> str:
    """The commit of the source tree the package runs from; "unknown" outside a checkout."""
    try:
        result = subprocess.run(["git", "-C", str(_PACKAGE_DIR), "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else "unknown"


@functools.cache
def build_time() -> str:
    """When the installed package was built: the modification time of its files.

    An installed wheel keeps the times of its build; an editable checkout shows its last edit.
    """
    mtime = (_PACKAGE_DIR / "__init__.py").stat().st_mtime
    return time.strftime(_ANSIC, time.gmtime(mtime))
