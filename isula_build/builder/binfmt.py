"""Which platforms this machine can RUN: its own, and those binfmt_misc hands to qemu-user.

A RUN of another architecture executes the image's binaries through the kernel's binfmt_misc:
a handler `qemu-<arch>` registered with the F (fix-binary) flag has its interpreter opened when
it is registered, so it works inside the container, whose root has no qemu. Debian's
qemu-user-static registers such handlers (scripts/install-deps.sh mounts binfmt_misc and
enables them). A build checks every platform it will RUN for before anything runs, so a
machine without the handler gets an error naming the missing piece, not a failed RUN.

ISULA_BUILD_BINFMT_DIR names another directory to read instead of /proc/sys/fs/binfmt_misc
(binfmt_misc mounted elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from isula_build.errors import FailedPrecondition
from isula_build.image.platform import Platform, host_platform, normalized

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_DIR_ENV = "ISULA_BUILD_BINFMT_DIR"
SETUP_HINT = ("install qemu-user-static and binfmt-support and register the handlers "
              "(scripts/install-deps.sh does both)")


def binfmt_dir(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get(BINFMT_DIR_ENV) or BINFMT_DIR)


def _read(path: Path) -> list[str] | None:
    try:
        return path.read_text().splitlines()
    except OSError:
        return None


def _handler(directory: Path, platform: Platform) -> tuple[Path, list[str] | None]:
    """The binfmt_misc entry of qemu for the platform and its lines (None when missing)."""
    for name in (f"qemu-{platform.qemu_name}", f"qemu-{platform.qemu_name}-static"):
        lines = _read(directory / name)
        if lines is not None:
            return directory / name, lines
    return directory / f"qemu-{platform.qemu_name}", None


def emulation_problem(platform: Platform, directory: Path) -> str | None:
    """Why a RUN for `platform` cannot run on this machine; None when it can."""
    if (platform.os, platform.architecture) == (host_platform().os, host_platform().architecture):
        return None
    status = _read(directory / "status")
    if status is None:
        return (f"binfmt_misc is not mounted at {directory} (mount -t binfmt_misc binfmt_misc "
                f"{directory})")
    if status[:1] != ["enabled"]:
        return f"binfmt_misc is disabled ({directory}/status)"
    path, lines = _handler(directory, platform)
    if lines is None:
        return f"binfmt_misc has no qemu handler for {platform.qemu_name} ({path} is missing)"
    if lines[:1] != ["enabled"]:
        return f"the binfmt_misc handler {path} is disabled (update-binfmts --enable)"
    flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags:")), "")
    if "F" not in flags:
        return (f"the binfmt_misc handler {path} is registered without the F (fix-binary) flag, "
                "so its interpreter cannot be found inside the build container")
    return None


def check_can_run(platform: Platform, directory: Path) -> None:
    """Raises FailedPrecondition naming the missing piece when RUN for `platform` cannot run."""
    problem = emulation_problem(platform, directory)
    if problem:
        raise FailedPrecondition(f"cannot RUN for {platform} on this {host_platform()} machine: "
                                 f"{problem}; {SETUP_HINT}")


def runnable_platforms(directory: Path) -> list[str]:
    """This machine's platform, then each one a usable qemu handler runs (what `info` shows)."""
    host = host_platform()
    found = [str(host)]
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for name in names:
        if not name.startswith("qemu-"):
            continue
        platform = normalized("linux", name[len("qemu-"):].removesuffix("-static"))
        if str(platform) not in found and emulation_problem(platform, directory) is None:
            found.append(str(platform))
    return found


__all__ = ["BINFMT_DIR", "BINFMT_DIR_ENV", "binfmt_dir", "check_can_run", "emulation_problem",
           "runnable_platforms"]
