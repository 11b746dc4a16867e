"""What the daemon streams through Status for a build, read with the generated stubs alone: the
original Go client prints exactly these lines and nothing of its own, so the success line, the
iidfile line, `Committed stage` and the unused build-args warning must all come from here."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import grpc
import pytest

from isula_build.api import control_pb2 as pb


def build(stub, tmp_path: Path, build_id: str, dockerfile: str,
          **fields: object) -> tuple[list[str], pb.BuildResponse | grpc.RpcError]:
    """Sends Build and Status as the Go client does; returns every line Status carried (read
    to its end) and the Build answer or error."""
    ctx = tmp_path / build_id
    ctx.mkdir()
    request = pb.BuildRequest(buildID=build_id, buildType="ctr-img", contextDir=str(ctx),
                              fileContent=dockerfile, format="docker", **fields)
    answer: dict[str, pb.BuildResponse | grpc.RpcError] = {}

    def send() -> None:
        try:
            answer["r"] = stub.Build(request)
        except grpc.RpcError as exc:
            answer["r"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    contents = [m.content for m in stub.Status(pb.StatusRequest(buildID=build_id))]
    sender.join()
    # A message may carry several lines (the daemon sends what is queued in one), always whole.
    assert all(c.endswith("\n") for c in contents)
    text = "".join(contents)
    return text[:-1].split("\n") if text else [], answer["r"]


def test_success_line_comes_once_in_the_stream(stub, busybox_image: str, tmp_path: Path) -> None:
    lines, answer = build(stub, tmp_path, "streamok1", "FROM busybox\nRUN echo hi\n",
                          buildArgs=["ZED=1", "ALPHA=2"])
    assert isinstance(answer, pb.BuildResponse)
    image_id = answer.imageID
    assert lines.count(f"Build success with image id: {image_id}") == 1
    assert lines.count(f"Committed stage 0 with ID: {image_id}") == 1
    assert lines.index(f"Committed stage 0 with ID: {image_id}") < \
        lines.index(f"Build success with image id: {image_id}")
    # Go's %v of the sorted names, printed at the end as the original's cleanup does.
    assert lines[-1] == "[Warning] One or more build-args [ALPHA ZED] were not consumed"
    assert lines.count(lines[-1]) == 1


def test_iidfile_line_and_file_come_from_the_daemon(stub, busybox_image: str,
                                                    tmp_path: Path) -> None:
    iid = tmp_path / "iid"
    lines, answer = build(stub, tmp_path, "streamiid1", "FROM busybox\nRUN true\n",
                          iidfile=str(iid))
    assert isinstance(answer, pb.BuildResponse)
    assert iid.read_text() == answer.imageID
    assert stat.S_IMODE(iid.stat().st_mode) == 0o600
    assert lines.count(f"Write image ID [{answer.imageID}] to file: {iid}") == 1
    assert not any(line.startswith("Build success") for line in lines)


def test_failed_build_still_warns_about_unused_args(stub, busybox_image: str,
                                                    tmp_path: Path) -> None:
    lines, answer = build(stub, tmp_path, "streamfail1", "FROM busybox\nRUN exit 4\n",
                          buildArgs=["NOPE=1"])
    assert isinstance(answer, grpc.RpcError)
    assert "returned a non-zero code: 4" in answer.details()
    assert lines[-1] == "[Warning] One or more build-args [NOPE] were not consumed"
    assert not any(line.startswith(("Build success", "Committed stage")) for line in lines)


@pytest.mark.parametrize("iidfile, code, words", [
    ("iid", grpc.StatusCode.INVALID_ARGUMENT, "must be an absolute path"),
    ("/nonexistent-dir-isb/iid", grpc.StatusCode.NOT_FOUND, "does not exist"),
], ids=["relative", "no-directory"])
def test_bad_iidfile_is_refused_before_building(stub, busybox_image: str, tmp_path: Path,
                                                iidfile: str, code: grpc.StatusCode,
                                                words: str) -> None:
    lines, answer = build(stub, tmp_path, "streambad1", "FROM busybox\nRUN echo never\n",
                          iidfile=iidfile)
    assert isinstance(answer, grpc.RpcError)
    assert answer.code() == code
    assert "iidfile" in answer.details() and words in answer.details()
    assert "never" not in lines


def test_only_the_target_stage_is_committed(stub, busybox_image: str, tmp_path: Path) -> None:
    # Earlier stages leave no image here (the original commits a stage a later one is built
    # FROM): no ID to report for them, so no line either.
    lines, answer = build(stub, tmp_path, "streamstages1",
                          "FROM busybox AS Base\nRUN touch /a\nFROM base AS App\nRUN touch /b\n")
    assert isinstance(answer, pb.BuildResponse)
    assert [line for line in lines if line.startswith("Committed stage")] == \
        [f"Committed stage App with ID: {answer.imageID}"]
