"""The log-stream helper over a real in-process gRPC server: lines in order, errors after the
lines, and cancellation reaching the work when the client goes away or the daemon stops."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from isula_build.api import control_pb2 as pb
from isula_build.api import control_pb2_grpc
from isula_build.daemon.logstream import Job, JobRegistry, stream
from isula_build.daemon.status import status_code
from isula_build.errors import Cancelled, NotFound


class _Servicer(control_pb2_grpc.ControlServicer):
    """Serves Load with whatever work a test sets."""

    def __init__(self, jobs: JobRegistry) -> None:
        self.jobs = jobs
        self.work: Callable[[Job], None] = lambda job: None

    def Load(self, request: pb.LoadRequest, context: grpc.ServicerContext) -> Iterator[pb.LoadResponse]:
        try:
            yield from stream(context, self.jobs, "test", self.work,
                              lambda line: pb.LoadResponse(log=line))
        except NotFound as exc:
            context.abort(status_code(exc), str(exc))


@pytest.fixture
def served(tmp_path: Path):
    jobs = JobRegistry()
    servicer = _Servicer(jobs)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    control_pb2_grpc.add_ControlServicer_to_server(servicer, server)
    sock = tmp_path / "s.sock"
    server.add_insecure_port(f"unix:{sock}")
    server.start()
    channel = grpc.insecure_channel(f"unix://{sock}")
    yield servicer, control_pb2_grpc.ControlStub(channel)
    channel.close()
    server.stop(None)


def test_lines_arrive_in_order_with_newlines(served):
    servicer, stub = served
    servicer.work = lambda job: [job.log(f"line {i}") for i in range(3000)]
    got = [m.log for m in stub.Load(pb.LoadRequest())]
    assert got == [f"line {i}\n" for i in range(3000)]
    assert servicer.jobs.running() == 0


def test_error_comes_after_the_lines(served):
    servicer, stub = served

    def work(job: Job) -> None:
        job.log("first")
        raise NotFound("image x not found")

    servicer.work = work
    got: list[str] = []
    with pytest.raises(grpc.RpcError) as err:
        for m in stub.Load(pb.LoadRequest()):
            got.append(m.log)
    assert got == ["first\n"]
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == "image x not found"


def test_client_going_away_cancels_the_work(served):
    servicer, stub = served
    started, ended = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def work(job: Job) -> None:
        started.set()
        try:
            while True:
                job.log("tick")
        except Cancelled as exc:
            outcome.append(exc)
            raise
        finally:
            ended.set()

    servicer.work = work
    call = stub.Load(pb.LoadRequest())
    next(call)
    assert started.wait(5)
    call.cancel()
    assert ended.wait(10), "the work must stop once the client is gone"
    assert isinstance(outcome[0], Cancelled)


def test_cancel_all_stops_running_jobs(served):
    servicer, stub = served
    started = threading.Event()

    def work(job: Job) -> None:
        started.set()
        while True:
            job.check()  # work that prints nothing still notices cancellation here
            job.cancelled.wait(0.05)

    servicer.work = work
    call = stub.Load(pb.LoadRequest())
    assert started.wait(5)
    assert servicer.jobs.running() == 1
    servicer.jobs.cancel_all()
    assert servicer.jobs.join(10)
    assert servicer.jobs.running() == 0
    with pytest.raises(grpc.RpcError) as err:
        list(call)
    assert err.value.code() == grpc.StatusCode.UNKNOWN  # Cancelled is not mapped by this servicer
