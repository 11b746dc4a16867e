"""ctr-img build's exchange: Build and Status at once, the log as it comes, the final line and
the iidfile. A small gRPC server plays the daemon: as the original (and ours) does, streaming
the success or iidfile line itself (and writing the iidfile), or as one whose stream ended before
that line came."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from isula_build.api import control_pb2, control_pb2_grpc

from .conftest import RunClient

IMAGE_ID = "39b62a3342eed40b41a1bcd9cd455d77466550dfa0f0109af7a708c3e895f9a2"


class BuildServer(control_pb2_grpc.ControlServicer):
    """Answers Build after streaming a log through Status, as the original daemon does."""

    def __init__(self, *, says_success: bool, fail_with: str = "") -> None:
        self.says_success = says_success
        self.fail_with = fail_with
        self.requests: list[control_pb2.BuildRequest] = []
        self.status_ids: list[str] = []
        self._logs: dict[str, list[str]] = {}
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _channel(self, build_id: str) -> tuple[list[str], threading.Event]:
        with self._lock:
            return (self._logs.setdefault(build_id, []),
                    self._done.setdefault(build_id, threading.Event()))

    def HealthCheck(self, request, context):
        return control_pb2.HealthCheckResponse(status=control_pb2.HealthCheckResponse.SERVING)

    def Build(self, request, context):
        self.requests.append(request)
        log, done = self._channel(request.buildID)
        if self.fail_with:
            # The log is left open: only the client giving up on it ends the Status stream.
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, self.fail_with)
        try:
            for line in ("STEP  1: FROM busybox\n", "STEP  2: RUN echo hi\n", "hi\n"):
                log.append(line)
                time.sleep(0.05)
            if self.says_success and request.iidfile:
                Path(request.iidfile).write_text(IMAGE_ID)
                log.append(f"Write image ID [{IMAGE_ID}] to file: {request.iidfile}\n")
            elif self.says_success:
                log.append(f"Build success with image id: {IMAGE_ID}\n")
            return control_pb2.BuildResponse(imageID=IMAGE_ID)
        finally:
            done.set()

    def Status(self, request, context) -> Iterator[control_pb2.StatusResponse]:
        self.status_ids.append(request.buildID)
        log, done = self._channel(request.buildID)
        sent = 0
        while context.is_active():
            finished = done.is_set()
            while sent < len(log):
                yield control_pb2.StatusResponse(content=log[sent])
                sent += 1
            if finished:
                return
            time.sleep(0.01)


@pytest.fixture
def serve(tmp_path: Path):
    servers: list[grpc.Server] = []

    def start(servicer: BuildServer) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        control_pb2_grpc.add_ControlServicer_to_server(servicer, server)
        address = f"unix://{tmp_path}/b{len(servers)}.sock"
        server.add_insecure_port(address)
        server.start()
        servers.append(server)
        return address

    yield start
    for server in servers:
        server.stop(0)


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo hi\n")
    return ctx


def test_log_then_one_success_line_with_the_original_daemon(
        run_client: RunClient, serve, context: Path) -> None:
    server = BuildServer(says_success=True)
    r = run_client("--host", serve(server), "ctr-img", "build", "-t", "hi:v1",
                   "--build-static", "build-time=2020-06-30 15:05:05", str(context))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("STEP  1: FROM busybox\nSTEP  2: RUN echo hi\nhi\n"
                        f"Build success with image id: {IMAGE_ID}\n")
    request = server.requests[0]
    assert server.status_ids == [request.buildID]
    assert len(request.buildID) == 12
    assert request.buildType == "ctr-img"
    assert request.contextDir == str(context)
    assert request.fileContent == "FROM busybox\nRUN echo hi\n"
    assert request.additionalTag == "hi:v1"
    assert request.proxy is True
    assert request.format == "docker"
    assert request.buildStatic.buildTime.ToSeconds() == 1593529505  # 2020-06-30 15:05:05 UTC


def test_iidfile_line_of_the_daemon_is_printed_once(run_client: RunClient, serve, context: Path,
                                                    tmp_path: Path) -> None:
    server = BuildServer(says_success=True)
    r = run_client("--host", serve(server), "ctr-img", "build", "--iidfile", "id.txt",
                   str(context), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("STEP  1: FROM busybox\nSTEP  2: RUN echo hi\nhi\n"
                        f"Write image ID [{IMAGE_ID}] to file: {tmp_path}/id.txt\n")
    assert (tmp_path / "id.txt").read_text() == IMAGE_ID


def test_client_prints_the_final_line_a_cut_stream_missed(
        run_client: RunClient, serve, context: Path, tmp_path: Path) -> None:
    server = BuildServer(says_success=False)
    address = serve(server)
    r = run_client("--host", address, "ctr-img", "build", str(context))
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(f"hi\nBuild success with image id: {IMAGE_ID}\n")
    assert not server.requests[0].buildStatic.HasField("buildTime")

    r = run_client("--host", address, "ctr-img", "build", "--iidfile", "id.txt",
                   "--build-arg", "A=1", "--no-proxy", str(context), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # The daemon writes the iidfile (this one did not): the client never writes it.
    assert not (tmp_path / "id.txt").exists()
    assert r.stdout.endswith(f"Write image ID [{IMAGE_ID}] to file: {tmp_path}/id.txt\n")
    assert "Build success" not in r.stdout
    request = server.requests[1]
    assert request.iidfile == str(tmp_path / "id.txt")
    assert list(request.buildArgs) == ["A=1"] and not request.encrypted
    assert request.proxy is False


def test_a_refused_build_ends_the_log_and_fails(run_client: RunClient, serve,
                                                context: Path) -> None:
    server = BuildServer(says_success=False, fail_with="stage name too long")
    started = time.monotonic()
    r = run_client("--host", serve(server), "ctr-img", "build", str(context), timeout=30)
    assert r.returncode == 1
    assert r.stderr == "stage name too long\n"
    assert "Build success" not in r.stdout
    assert time.monotonic() - started < 20


def test_output_spec_reaches_the_daemon_with_an_absolute_path(
        run_client: RunClient, serve, context: Path, tmp_path: Path) -> None:
    server = BuildServer(says_success=True)
    r = run_client("--host", serve(server), "ctr-img", "build", "-o",
                   "docker-archive:out.tar:hi:v1", str(context), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert server.requests[0].output == f"docker-archive:{tmp_path}/out.tar:hi:v1"
