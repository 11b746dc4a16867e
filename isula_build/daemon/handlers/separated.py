"""Save and load of separated images (`ctr-img save -b BASE [-l LIB] [-r FILE] [-d DIR] APP...`
and `ctr-img load -d DIR [-b BASE] [-l LIB] -i APP [--no-check]`).

The Save and Load handlers call these when the request's `sep.enabled` is set, with the job's
log callback, its cancellation check and its progress callback (`job.log`, `job.check`,
`job.progress`). The client prints the final `Save success with image: ...` line; load ends
with `Loaded image as <64 hex>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from isula_build.api import control_pb2
from isula_build.daemon.handlers.paths import absolute_path, existing_file
from isula_build.daemon.state import DaemonState
from isula_build.errors import InvalidArgument, NotFound
from isula_build.progress import Report
from isula_build.separated.load import load_separated, plan_load
from isula_build.separated.save import plan_save, save_separated

_log = logging.getLogger(__name__)


def separated_save(state: DaemonState, request: control_pb2.SaveRequest,
                   log: Callable[[str], None], cancel: Callable[[], None],
                   progress: Report | None = None) -> None:
    sep = request.sep
    if request.path:
        raise InvalidArgument("conflict flags between -o and [-b -l -r -d]")
    dest = absolute_path(sep.dest, "destination")
    rename = existing_file(sep.rename, "rename file") if sep.rename else None
    # Every check (names, layers, rename file) runs before the destination is touched.
    plan = plan_save(state.store, sep.base, sep.lib, list(request.images), rename)
    save_separated(state.store, plan, dest, log, cancel, progress)
    _log.info("save %s: separated images %s to %s", request.saveID, list(request.images), dest)


def separated_load(state: DaemonState, request: control_pb2.LoadRequest,
                   log: Callable[[str], None], cancel: Callable[[], None],
                   progress: Report | None = None) -> None:
    sep = request.sep
    if not sep.app:
        raise InvalidArgument("app image name(-i) should not be empty")
    directory = absolute_path(sep.dir, "separated images directory")
    if not directory.is_dir():
        raise NotFound(f"separated images directory {directory} does not exist")
    base = _tarball(sep.base, "base tarball")
    lib = _tarball(sep.lib, "lib tarball")
    plan = plan_load(directory, sep.app, base, lib)
    image_id = load_separated(state.store, plan, sep.skipCheck, log, cancel, progress)
    _log.info("load %s: separated image %s as %s from %s", request.loadID, plan.app, image_id,
              directory)


def _tarball(path: str, what: str) -> Path | None:
    return existing_file(path, what) if path else None
