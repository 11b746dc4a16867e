"""What a build says and leaves when it ends, in the original daemon's words.

The original daemon, not its client, writes these into the Status stream (its client prints the
stream and nothing of its own), and writes the --iidfile itself:

- `Committed stage <name> with ID: <id>` after a stage's commit (the AS name as written, else
  the stage's index);
- `Write image ID [<id>] to file: <path>` with --iidfile, else `Build success with image id: <id>`,
  after the outputs;
- `[Warning] One or more build-args [A B] were not consumed` last, also after a failure (the
  original prints it when it cleans the build up).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from isula_build.dockerfile import Stage
from isula_build.errors import IsulaBuildError, InvalidArgument, NotFound

# The original writes the file with constant.DefaultRootFileMode.
IIDFILE_MODE = 0o600


def check_iidfile(path: str) -> None:
    """Refuses, before anything is built, an iidfile the daemon could not write: the client
    sends it absolute (relative to what would the daemon take it?) in an existing directory."""
    if not path:
        return
    if not os.path.isabs(path):
        raise InvalidArgument(f"invalid iidfile {path!r}: it must be an absolute path")
    if not Path(path).parent.is_dir():
        raise NotFound(f"invalid iidfile {path!r}: directory {Path(path).parent} does not exist")


def committed_line(stage: Stage, image_id: str) -> str:
    return f"Committed stage {stage_label(stage)} with ID: {image_id}"


def stage_label(stage: Stage) -> str:
    """The stage's name as the original prints it: the AS name as written (the plan keeps it
    lower case, stage names being case-insensitive), else the stage's index."""
    if stage.name is None:
        return str(stage.index)
    written = stage.from_.original.split()[-1]
    return written if written.lower() == stage.name else stage.name


def report_image_id(image_id: str, iidfile: str, log: Callable[[str], None]) -> None:
    """Writes the image ID to the iidfile (no newline) and says so, or prints the success line."""
    if not iidfile:
        log(f"Build success with image id: {image_id}")
        return
    try:
        fd = os.open(iidfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, IIDFILE_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(image_id)
    except OSError as exc:
        raise IsulaBuildError(f"write image ID to file {iidfile} failed: "
                              f"{exc.strerror or exc}") from None
    log(f"Write image ID [{image_id}] to file: {iidfile}")


def unused_args_warning(names: list[str]) -> str | None:
    """The warning for build args no instruction read (Go's %v of the sorted names)."""
    if not names:
        return None
    return f"[Warning] One or more build-args [{' '.join(sorted(names))}] were not consumed"
