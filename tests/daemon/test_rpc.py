"""HealthCheck, Version, Info and the methods of later issues, through the generated stubs alone."""

from __future__ import annotations

import json

import platform
import re
import threading

import grpc
import pytest
from google.protobuf import empty_pb2

from isula_build.api import control_pb2 as pb
from isula_build.api import control_pb2_grpc
from isula_build.daemon.fsinfo import fs_name


def test_health_check_serving(stub):
    assert stub.HealthCheck(empty_pb2.Empty()).status == pb.HealthCheckResponse.SERVING


def test_version(stub):
    v = stub.Version(empty_pb2.Empty())
    assert v.version == "0.1.0"
    assert v.goVersion == platform.python_version()
    assert re.fullmatch(r"[0-9a-f]{12}|unknown", v.gitCommit)
    # Go's time.ANSIC layout, as the original sends it: "Mon Jan  2 15:04:05 2006"
    assert re.fullmatch(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}", v.buildTime)
    assert v.osArch.startswith("linux/")
    if platform.machine() == "x86_64":
        assert v.osArch == "linux/amd64"  # Go's GOARCH name, as the original reports


def test_info(stub, daemon):
    got = stub.Info(pb.InfoRequest())
    meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines())
    assert got.memInfo.memTotal == int(meminfo["MemTotal"].split()[0]) * 1024
    assert 0 < got.memInfo.memFree <= got.memInfo.memTotal
    assert got.storageInfo.storageDriver == "overlay"
    assert got.storageInfo.storageBackingFs == fs_name(daemon.data_root) != "<unknown>"
    assert got.dataRoot == str(daemon.data_root) and got.runRoot == str(daemon.run_root)
    assert got.OCIRuntime == "runc"
    assert got.builderNum == 0
    assert got.goRoutines >= 1
    assert got.experimental is False
    assert not got.HasField("memStat"), "memory statistics only when verbose"
    assert list(got.registryInfo.registriesSearch) == []


def test_info_verbose_has_daemon_memory(stub):
    stat = stub.Info(pb.InfoRequest(verbose=True)).memStat
    assert stat.memSys > 1 << 20  # a Python daemon with gRPC loaded uses more than 1 MB
    assert stat.heapSys >= stat.heapInUse > 0


def call_unary(method, request):
    with pytest.raises(grpc.RpcError) as info:
        method(request)
    return info.value


def call_stream(method, request):
    with pytest.raises(grpc.RpcError) as info:
        list(method(request))
    return info.value


@pytest.mark.parametrize("call, code, words", [
    (lambda s: call_stream(s.Push, pb.PushRequest(imageName="a:b")),
     grpc.StatusCode.INVALID_ARGUMENT, '"a:b"'),
    (lambda s: call_stream(s.Pull, pb.PullRequest(imageName="127.0.0.1:1/none:b")),
     None, "127.0.0.1:1"),
    (lambda s: call_unary(s.Login, pb.LoginRequest(server="r.io")),
     grpc.StatusCode.INVALID_ARGUMENT, ""),
    (lambda s: call_unary(s.Logout, pb.LogoutRequest(server="r.io")),
     grpc.StatusCode.NOT_FOUND, "r.io"),
])
def test_registry_methods_refuse_bad_requests_clearly(stub, call, code, words):
    err = call(stub)
    if code is not None:
        assert err.code() == code
    assert err.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), err.details()
    assert err.details() and words in err.details()


def test_status_of_a_build_that_never_comes_ends(stub):
    err = call_stream(stub.Status, pb.StatusRequest(buildID="never-built"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "never-built" in err.details()


def test_build_without_a_dockerfile_is_refused(stub):
    err = call_unary(stub.Build, pb.BuildRequest(buildID="b1", buildType="ctr-img"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def manifest_calls(s):
    return [
        lambda: call_unary(s.ManifestCreate, pb.ManifestCreateRequest(manifestList="l")),
        lambda: call_unary(s.ManifestAnnotate, pb.ManifestAnnotateRequest(manifestList="l")),
        lambda: call_unary(s.ManifestInspect, pb.ManifestInspectRequest(manifestList="l")),
        lambda: call_stream(s.ManifestPush, pb.ManifestPushRequest(manifestList="l")),
    ]


def test_manifest_needs_experimental(stub):
    for call in manifest_calls(stub):
        err = call()
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "experimental" in err.details()


def test_oci_format_needs_experimental(stub):
    for err in (call_unary(stub.Build, pb.BuildRequest(format="oci")),
                call_stream(stub.Push, pb.PushRequest(imageName="a:b", format="oci")),
                call_stream(stub.Save, pb.SaveRequest(images=["a"], path="/tmp/x.tar",
                                                      format="oci"))):
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "experimental" in err.details()


def test_experimental_daemon_reaches_manifest_methods(daemon_factory):
    d = daemon_factory(extra_args=["--experimental"])
    d.start()
    with grpc.insecure_channel(d.host) as channel:
        s = control_pb2_grpc.ControlStub(channel)
        # Past the experimental gate: an empty list is created and inspected.
        assert s.ManifestCreate(pb.ManifestCreateRequest(manifestList="isb-list:1")).imageID
        data = json.loads(s.ManifestInspect(pb.ManifestInspectRequest(manifestList="isb-list:1")).data)
        assert data["manifests"] == []
        # The oci format passes the experimental gate and the request fails further on.
        err = call_unary(s.Build, pb.BuildRequest(format="oci"))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "experimental" not in err.details() and "build ID" in err.details()
        err = call_unary(s.Build, pb.BuildRequest(format="squashfs"))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "squashfs" in err.details()


def test_many_concurrent_calls(stub):
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                assert stub.HealthCheck(empty_pb2.Empty()).status == pb.HealthCheckResponse.SERVING
                stub.Info(pb.InfoRequest(verbose=True))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_separated_requests_reach_their_handler(stub):
    err = call_stream(stub.Save, pb.SaveRequest(images=["a"], path="/tmp/a.tar",
                                                sep=pb.SeparatorSave(enabled=True, base="b")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "conflict flags between -o and [-b -l -r -d]" in err.details()
    err = call_stream(stub.Load, pb.LoadRequest(sep=pb.SeparatorLoad(enabled=True, dir="/tmp")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "app image name(-i) should not be empty" in err.details()
