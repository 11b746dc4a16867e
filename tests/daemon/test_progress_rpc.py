"""Progress messages (issue 15) at the gRPC level, with the generated stubs alone.

A request without the `progress` field — what the original Go client sends — gets only log
lines, exactly as before; one with it gets the same lines and, between them, Progress
messages: per blob copied, bytes done of total ending at done == total, and for a build each
step's time and the whole build's.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from isula_build.api import control_pb2 as pb
from isula_build.api import control_pb2_grpc
# Real registries on 127.0.0.1 (the registry tests' fixtures, reused as they are).
from tests.registry.conftest import plain_registry, registry_factory  # noqa: F401

def split(messages: list, field: str) -> tuple[list[str], list[tuple[int, pb.Progress]]]:
    """The log text of a stream and its progress messages, each with the number of log
    messages that came before it."""
    lines: list[str] = []
    events: list[tuple[int, pb.Progress]] = []
    for message in messages:
        if message.HasField("progress"):
            assert getattr(message, field) == "", "a progress message carries no log text"
            events.append((len(lines), message.progress))
        else:
            lines.append(getattr(message, field))
    return lines, events


def check_blobs(lines: list[str], events: list[tuple[int, pb.Progress]],
                sizes: dict[str, int]) -> None:
    """Each blob copied: its events come after its "Copying blob" line, grow, and end at
    done == total == its size; no other events."""
    by_blob: dict[str, list[tuple[int, pb.BlobProgress]]] = {}
    for position, event in events:
        assert event.WhichOneof("event") == "blob"
        by_blob.setdefault(event.blob.id, []).append((position, event.blob))
    assert set(by_blob) == set(sizes)
    for blob_id, seen in by_blob.items():
        announced = lines.index(f"Copying blob {blob_id}\n")
        assert all(position > announced for position, _ in seen)
        dones = [b.done for _, b in seen]
        assert dones == sorted(dones) and len(seen) >= 2
        last = seen[-1][1]
        assert last.done == last.total == sizes[blob_id]
        assert all(b.total in (-1, sizes[blob_id]) for _, b in seen)


def test_save_and_load_send_progress_only_when_asked(stub, busybox_image: str, busybox_tar: Path,
                                                     tmp_path: Path) -> None:
    # busybox's one layer is the imported tarball itself (a plain tar is stored as it is).
    sizes = {f"sha256:{hashlib.sha256(busybox_tar.read_bytes()).hexdigest()}":
             busybox_tar.stat().st_size}
    plain = list(stub.Save(pb.SaveRequest(saveID="s1", images=["busybox"],
                                          path=str(tmp_path / "a.tar"), format="docker")))
    assert plain and not any(m.HasField("progress") for m in plain)
    watched = list(stub.Save(pb.SaveRequest(saveID="s2", images=["busybox"],
                                            path=str(tmp_path / "b.tar"), format="docker",
                                            progress=True)))
    lines, events = split(watched, "log")
    assert lines == [m.log for m in plain]
    check_blobs(lines, events, sizes)

    for path, progress in ((tmp_path / "a.tar", False), (tmp_path / "b.tar", True)):
        list(stub.Remove(pb.RemoveRequest(imageID=["busybox"])))
        loaded = list(stub.Load(pb.LoadRequest(loadID="l1", path=str(path), progress=progress)))
        lines, events = split(loaded, "log")
        assert lines[-1] == f"Loaded image as {busybox_image}\n"
        if progress:
            check_blobs(lines, events, sizes)
        else:
            assert events == []


def test_import_progress_counts_the_tarball(stub, busybox_tar: Path) -> None:
    plain = list(stub.Import(pb.ImportRequest(importID="i1", source=str(busybox_tar))))
    assert not any(m.HasField("progress") for m in plain)
    watched = list(stub.Import(pb.ImportRequest(importID="i2", source=str(busybox_tar),
                                                progress=True)))
    lines, events = split(watched, "log")
    # The same lines (the image ID aside: each import makes a config of its own time).
    ids = re.compile(r"[0-9a-f]{64}")
    assert [ids.sub("ID", line) for line in lines] == [ids.sub("ID", m.log) for m in plain]
    blobs = [e.blob for _, e in events]
    # The digest is known only once the tarball was read: the last event names it.
    assert all(b.id == "" for b in blobs[:-1])
    assert f"Copying blob {blobs[-1].id}\n" in lines
    assert blobs[0].done < blobs[0].total == busybox_tar.stat().st_size
    assert blobs[-1].done == blobs[-1].total == busybox_tar.stat().st_size


def build(stub, tmp_path: Path, build_id: str, dockerfile: str,
          progress: bool) -> tuple[list[pb.StatusResponse], pb.BuildResponse]:
    ctx = tmp_path / build_id
    ctx.mkdir()
    request = pb.BuildRequest(buildID=build_id, buildType="ctr-img", contextDir=str(ctx),
                              fileContent=dockerfile, format="docker", progress=progress,
                              noCache=True)  # both builds run every step
    answer: dict[str, pb.BuildResponse] = {}
    sender = threading.Thread(target=lambda: answer.setdefault("r", stub.Build(request)))
    sender.start()
    messages = list(stub.Status(pb.StatusRequest(buildID=build_id)))
    sender.join()
    return messages, answer["r"]


def test_build_step_times_only_when_asked(stub, busybox_image: str, tmp_path: Path) -> None:
    dockerfile = "FROM busybox\nRUN sleep 0.3\nRUN true\n"
    plain, _ = build(stub, tmp_path, "progplain1", dockerfile, progress=False)
    assert plain and not any(m.HasField("progress") for m in plain)

    messages, answer = build(stub, tmp_path, "progwatch1", dockerfile, progress=True)
    chunks, events = split(messages, "content")
    # The same lines (image IDs aside: each build has a time of its own).
    ids = re.compile(r"[0-9a-f]{64}")
    assert ids.sub("ID", "".join(chunks)) == ids.sub("ID", "".join(m.content for m in plain))
    steps = [(position, e.step) for position, e in events]
    assert all(e.WhichOneof("event") == "step" for _, e in events)
    assert [s.step for _, s in steps] == [1, 2, 3, 0]
    assert steps[1][1].seconds >= 0.3   # RUN sleep 0.3, timed by the daemon
    assert steps[-1][1].seconds >= sum(s.seconds for _, s in steps[:-1])
    before = ["".join(chunks[:position]) for position, _ in steps]
    # A step's time comes after its STEP line and before the next one.
    for (_, step), text in zip(steps[:-1], before[:-1]):
        assert f"STEP  {step.step}: " in text and f"STEP  {step.step + 1}: " not in text
    # The whole build's time comes after the commit and before the final line.
    assert f"Committed stage 0 with ID: {answer.imageID}" in before[-1]
    assert f"Build success with image id: {answer.imageID}" not in before[-1]
    assert f"Build success with image id: {answer.imageID}" in "".join(chunks)


@pytest.fixture
def registry_stub(daemon_factory, plain_registry) -> Iterator[control_pb2_grpc.ControlStub]:
    """A daemon that pushes to and pulls from plain_registry (insecure), and its stub."""
    daemon = daemon_factory("reg")
    (daemon.config_dir / "registries.toml").write_text(
        f'[registries.insecure]\nregistries = ["{plain_registry.host}"]\n')
    daemon.start()
    channel = grpc.insecure_channel(daemon.host)
    try:
        yield control_pb2_grpc.ControlStub(channel)
    finally:
        channel.close()


def test_push_and_pull_send_progress_only_when_asked(registry_stub, plain_registry,
                                                     busybox_tar: Path) -> None:
    stub = registry_stub
    list(stub.Import(pb.ImportRequest(importID="i1", source=str(busybox_tar),
                                      reference="busybox")))
    diff_id = f"sha256:{hashlib.sha256(busybox_tar.read_bytes()).hexdigest()}"
    name = f"{plain_registry.host}/progress/bb:1"
    stub.Tag(pb.TagRequest(image="busybox", tag=name))
    lines, events = split(list(stub.Push(pb.PushRequest(pushID="p1", imageName=name,
                                                        format="docker", progress=True))),
                          "response")
    # Compressed while it uploads: the store's uncompressed layer is what is counted.
    check_blobs(lines, events, {diff_id: busybox_tar.stat().st_size})
    again = name.replace(":1", ":2")
    stub.Tag(pb.TagRequest(image="busybox", tag=again))
    plain = list(stub.Push(pb.PushRequest(pushID="p2", imageName=again, format="docker")))
    assert plain and not any(m.HasField("progress") for m in plain)
    assert [m.response for m in plain] == lines

    # A pull downloads the compressed blob: that is what is counted, against its size.
    manifest = json.loads(subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{name}"],
        check=True, capture_output=True, text=True).stdout)
    compressed = manifest["layers"][0]["size"]
    assert compressed != busybox_tar.stat().st_size
    list(stub.Remove(pb.RemoveRequest(all=True)))
    plain = list(stub.Pull(pb.PullRequest(pullID="q1", imageName=name)))
    assert plain and not any(m.HasField("progress") for m in plain)
    list(stub.Remove(pb.RemoveRequest(all=True)))
    lines, events = split(list(stub.Pull(pb.PullRequest(pullID="q2", imageName=name,
                                                        progress=True))), "response")
    assert lines == [m.response for m in plain]
    check_blobs(lines, events, {diff_id: compressed})
