"""The Control service: routes each request to its handler and maps errors to gRPC statuses.

IsulaBuildError becomes a status with its class's code (status.py) and its message (the client
shows it to the user), cut to what the wire carries when it is very long; any other exception is a bug: it is logged with its traceback and
answered INTERNAL. Streaming methods run their work through logstream.stream.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2

from isula_build import buildinfo
from isula_build.api import control_pb2 as pb
from isula_build.api import control_pb2_grpc
from isula_build.daemon import logstream
from isula_build.daemon.handlers import (
    build,
    cache,
    health,
    images,
    import_,
    info,
    load,
    login,
    logout,
    manifest,
    pull,
    push,
    remove,
    save,
    separated,
    tag,
)
from isula_build.daemon.state import DaemonState
from isula_build.daemon.status import status_code, wire_message
from isula_build.errors import IsulaBuildError

_log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")
INTERNAL_MESSAGE = "internal error in isula-builder; the daemon log has the details"


def _report(context: grpc.ServicerContext, name: str, exc: Exception) -> None:
    """Ends the RPC with the status an exception stands for (context.abort raises). The
    daemon log has the whole message; the client gets it cut to what the wire carries."""
    if isinstance(exc, IsulaBuildError):
        _log.info("%s failed: %s", name, exc)
        context.abort(status_code(exc), wire_message(str(exc)))
    _log.error("%s failed with an unexpected error", name, exc_info=exc)
    context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)


def _unary(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: ControlServicer, request: Any, context: grpc.ServicerContext) -> Any:
        _log.debug("%s request received", method.__name__)
        try:
            return method(self, request, context)
        except Exception as exc:
            _report(context, method.__name__, exc)
    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the handler's signature


def _streaming(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: ControlServicer, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        _log.debug("%s request received", method.__name__)
        try:
            yield from method(self, request, context)
        except Exception as exc:
            _report(context, method.__name__, exc)
    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the handler's signature


def _asked(request: Any, message: Callable[[pb.Progress], M]) -> Callable[[pb.Progress], M] | None:
    """message when the request asked for progress (our client on a terminal), else None:
    the original's client never sets the field and gets only the log lines."""
    return message if request.progress else None


class ControlServicer(control_pb2_grpc.ControlServicer):
    def __init__(self, state: DaemonState) -> None:
        self.state = state

    def _stream(self, context: grpc.ServicerContext, name: str, work: Callable[[logstream.Job], None],
                message: Callable[[str], Any], newline: bool = True,
                progress: Callable[[pb.Progress], Any] | None = None) -> Iterator[Any]:
        return logstream.stream(context, self.state.jobs, name, work, message, newline, progress)

    @_unary
    def HealthCheck(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> pb.HealthCheckResponse:
        return health.health_check()

    @_unary
    def Version(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> pb.VersionResponse:
        return buildinfo.version_response()

    @_unary
    def Info(self, request: pb.InfoRequest, context: grpc.ServicerContext) -> pb.InfoResponse:
        return info.info(self.state, request)

    @_unary
    def List(self, request: pb.ListRequest, context: grpc.ServicerContext) -> pb.ListResponse:
        return images.list_images(self.state, request)

    @_unary
    def Tag(self, request: pb.TagRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        tag.tag(self.state, request)
        return empty_pb2.Empty()

    @_streaming
    def Remove(self, request: pb.RemoveRequest, context: grpc.ServicerContext) -> Iterator[pb.RemoveResponse]:
        return self._stream(context, "remove", lambda job: remove.remove(self.state, request, job),
                            lambda line: pb.RemoveResponse(layerMessage=line), newline=False)

    @_streaming
    def Import(self, request: pb.ImportRequest, context: grpc.ServicerContext) -> Iterator[pb.ImportResponse]:
        return self._stream(context, f"import {request.importID}",
                            lambda job: import_.import_image(self.state, request, job),
                            lambda line: pb.ImportResponse(log=line),
                            progress=_asked(request, lambda p: pb.ImportResponse(progress=p)))

    @_streaming
    def Load(self, request: pb.LoadRequest, context: grpc.ServicerContext) -> Iterator[pb.LoadResponse]:
        def work(job: logstream.Job) -> None:
            if request.sep.enabled:
                separated.separated_load(self.state, request, job.log, job.check, job.progress)
            else:
                load.load(self.state, request, job)
        return self._stream(context, f"load {request.loadID}", work,
                            lambda line: pb.LoadResponse(log=line),
                            progress=_asked(request, lambda p: pb.LoadResponse(progress=p)))

    @_streaming
    def Save(self, request: pb.SaveRequest, context: grpc.ServicerContext) -> Iterator[pb.SaveResponse]:
        def work(job: logstream.Job) -> None:
            if request.sep.enabled:
                separated.separated_save(self.state, request, job.log, job.check, job.progress)
            else:
                save.save(self.state, request, job)
        return self._stream(context, f"save {request.saveID}", work,
                            lambda line: pb.SaveResponse(log=line),
                            progress=_asked(request, lambda p: pb.SaveResponse(progress=p)))

    # Methods of later issues.

    @_unary
    def Build(self, request: pb.BuildRequest, context: grpc.ServicerContext) -> pb.BuildResponse:
        return build.build(self.state, self.state.builds, request, context)

    @_streaming
    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> Iterator[pb.StatusResponse]:
        return build.status(self.state.builds, request, context)

    @_streaming
    def Push(self, request: pb.PushRequest, context: grpc.ServicerContext) -> Iterator[pb.PushResponse]:
        return self._stream(context, f"push {request.pushID}",
                            lambda job: push.push(self.state, request, job),
                            lambda line: pb.PushResponse(response=line),
                            progress=_asked(request, lambda p: pb.PushResponse(progress=p)))

    @_streaming
    def Pull(self, request: pb.PullRequest, context: grpc.ServicerContext) -> Iterator[pb.PullResponse]:
        return self._stream(context, f"pull {request.pullID}",
                            lambda job: pull.pull(self.state, request, job),
                            lambda line: pb.PullResponse(response=line),
                            progress=_asked(request, lambda p: pb.PullResponse(progress=p)))

    @_unary
    def Login(self, request: pb.LoginRequest, context: grpc.ServicerContext) -> pb.LoginResponse:
        return login.login(self.state, request)

    @_unary
    def Logout(self, request: pb.LogoutRequest, context: grpc.ServicerContext) -> pb.LogoutResponse:
        return logout.logout(self.state, request)

    @_unary
    def ManifestCreate(self, request: pb.ManifestCreateRequest,
                       context: grpc.ServicerContext) -> pb.ManifestCreateResponse:
        return manifest.manifest_create(self.state, request)

    @_unary
    def ManifestAnnotate(self, request: pb.ManifestAnnotateRequest,
                         context: grpc.ServicerContext) -> empty_pb2.Empty:
        manifest.manifest_annotate(self.state, request)
        return empty_pb2.Empty()

    @_unary
    def ManifestInspect(self, request: pb.ManifestInspectRequest,
                        context: grpc.ServicerContext) -> pb.ManifestInspectResponse:
        return manifest.manifest_inspect(self.state, request)

    @_streaming
    def ManifestPush(self, request: pb.ManifestPushRequest,
                     context: grpc.ServicerContext) -> Iterator[pb.ManifestPushResponse]:
        return self._stream(context, f"manifest push {request.manifestList}",
                            lambda job: manifest.manifest_push(self.state, request, job),
                            lambda line: pb.ManifestPushResponse(result=line))

    # This project's own methods (the build cache).

    @_unary
    def CacheList(self, request: pb.CacheListRequest,
                  context: grpc.ServicerContext) -> pb.CacheListResponse:
        return cache.cache_list(self.state, request)

    @_unary
    def CachePrune(self, request: pb.CachePruneRequest,
                   context: grpc.ServicerContext) -> pb.CachePruneResponse:
        return cache.cache_prune(self.state, request)

    @_streaming
    def SSHForward(self, request_iterator: Iterator[pb.SSHFrame],
                   context: grpc.ServicerContext) -> Iterator[pb.SSHFrame]:
        return self.state.ssh_relays.forward(request_iterator, context)
