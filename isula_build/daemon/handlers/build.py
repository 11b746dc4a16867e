"""Build and Status (SPEC §6): one build, its log streamed through a second RPC.

The client sends Build and Status with the same build ID, in either order. A BuildRegistry
(daemon/builds.py) maps build IDs to sessions: the first of the two RPCs to arrive creates the
session, the other finds it. The build runs as a daemon job (so a stopping daemon cancels it)
and logs into the session's queue; Status yields those lines as they come and ends after the
last one; Build answers with the image ID. When the client goes away — Status cancelled before
the end, or Build cancelled — the build is cancelled: its container killed, its mounts and work
dir removed. At most MAX_BUILDS builds run at once; one more is refused with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path

import grpc

from isula_build.api import control_pb2 as pb
from isula_build.builder.builder import BuildEnvironment, BuildInput, build_image
from isula_build.builder.session import ClientSession
from isula_build.daemon.builds import BuildRegistry, BuildSession
from isula_build.daemon.experimental import check_format
from isula_build.daemon.handlers.cache import daemon_cache
from isula_build.daemon.progress import wire_progress
from isula_build.daemon.secrets import open_secrets
from isula_build.daemon.state import DaemonState
from isula_build.errors import Cancelled, InvalidArgument, NotFound
from isula_build.progress import Event

_POLL_SECONDS = 0.5
# The client sends Build and Status together; a Status whose Build has not come by then never
# will, and ends rather than hold a thread forever.
BUILD_WAIT_SECONDS = 10.0
# Lines already queued are sent together in one Status message of up to this many characters.
STATUS_CHUNK_BYTES = 64 << 10


def build(state: DaemonState, registry: BuildRegistry, request: pb.BuildRequest,
          context: grpc.ServicerContext) -> pb.BuildResponse:
    """The Build RPC: runs the build and answers with the image ID."""
    image_format = check_format(state.options.experimental, request.format)
    if request.buildType not in ("", "ctr-img"):
        raise InvalidArgument(f'unknown build type "{request.buildType}" (only ctr-img)')
    session = registry.begin_build(request.buildID)
    state.builds_running = registry.running()
    relay = None
    try:
        relay = state.ssh_relays.open(request.buildID, request.ssh, session.job.cancelled)
        lent = ClientSession(open_secrets(state.keys, request.buildID, request.secrets), relay)
        build_input = _decode(state, request, image_format, lent)
        options = state.options
        environment = BuildEnvironment(store=state.store, data_root=options.data_root,
                                       run_root=options.run_root, runtime=options.runtime,
                                       mountopt=options.mount_options,
                                       daemon_env=dict(os.environ), registry=state.registry,
                                       cache=daemon_cache(options))
        image_id = _run(state, session, build_input, environment, context, request.progress)
        return pb.BuildResponse(imageID=image_id)
    finally:
        if relay is not None:
            state.ssh_relays.close(relay)
        registry.end_build(session)
        state.builds_running = registry.running()


def _run(state: DaemonState, session: BuildSession, build_input: BuildInput,
         environment: BuildEnvironment, context: grpc.ServicerContext, progress: bool) -> str:
    cancel = session.job.cancelled
    context.add_callback(cancel.set)  # the Build RPC ended early: the client is gone
    outcome: dict[str, object] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["id"] = build_image(build_input, environment, session.log, cancel,
                                        session.progress if progress else None)
        except BaseException as exc:  # handed to the RPC thread, which reports it
            outcome["error"] = exc
        finally:
            finished.set()

    state.jobs.start(session.job, work, f"build {build_input.build_id}")
    while not finished.wait(_POLL_SECONDS):
        if not context.is_active():
            cancel.set()
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    if cancel.is_set():
        raise Cancelled("the build was cancelled")
    return str(outcome["id"])


def _decode(state: DaemonState, request: pb.BuildRequest, image_format: str,
            lent: ClientSession) -> BuildInput:
    args: dict[str, str] = {}
    for raw in request.buildArgs:
        text = state.keys.decrypt_hex(raw) if request.encrypted else raw
        key, sep, value = text.partition("=")
        if not key or not sep:
            raise InvalidArgument("build args must be KEY=VALUE, got "
                                  f"{'an encrypted value' if request.encrypted else repr(text)}")
        args[key] = value
    build_time = None
    if request.HasField("buildStatic") and request.buildStatic.HasField("buildTime"):
        build_time = request.buildStatic.buildTime.ToDatetime(tzinfo=timezone.utc)
    return BuildInput(
        build_id=request.buildID, dockerfile=request.fileContent,
        context_dir=Path(request.contextDir), build_args=args, output=request.output,
        proxy=request.proxy, build_time=build_time, tag=request.additionalTag,
        cap_add=list(request.capAddList), image_format=image_format, iidfile=request.iidfile,
        no_cache=request.noCache, compression=request.compression, target=request.target,
        build_contexts=list(request.buildContexts), platform=request.platform,
        cache_to=request.cacheTo, cache_from=list(request.cacheFrom), session=lent)


def _drain(lines: queue.Queue[str | Event | None],
           first: str) -> tuple[str, bool, Event | None]:
    """`first` and the lines queued behind it, up to STATUS_CHUNK_BYTES, as one message's
    content (clients print the content as it comes, so the text is the same, while a build
    logging 60,000 steps costs far fewer messages); True when the end marker was among them;
    the progress event that stopped the gathering, if one did (it goes after the lines)."""
    parts, size = [first, "\n"], len(first) + 1
    while size < STATUS_CHUNK_BYTES:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            break
        if line is None:
            return "".join(parts), True, None
        if not isinstance(line, str):
            return "".join(parts), False, line
        parts += (line, "\n")
        size += len(line) + 1
    return "".join(parts), False, None


def status(registry: BuildRegistry, request: pb.StatusRequest,
           context: grpc.ServicerContext) -> Iterator[pb.StatusResponse]:
    """The Status RPC: the build's log, line by line, until the build ends."""
    session = registry.attach_status(request.buildID)
    complete = False
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    try:
        while True:
            try:
                line = session.lines.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not context.is_active():
                    return
                if not session.build_started and time.monotonic() > deadline:
                    complete = True
                    raise NotFound(f"build {request.buildID} not found: no Build request came "
                                   f"with this build ID")
                continue
            if line is None:
                complete = True
                return
            if not isinstance(line, str):
                yield pb.StatusResponse(progress=wire_progress(line))
                continue
            chunk, ended, event = _drain(session.lines, line)
            yield pb.StatusResponse(content=chunk)
            if event is not None:
                yield pb.StatusResponse(progress=wire_progress(event))
            if ended:
                complete = True
                return
    finally:
        if not complete:
            # The client stopped following the log: it is gone, so the build stops too.
            session.job.cancelled.set()
        registry.end_status(session)
