"""import, images, tag, rm, save and load through the generated stubs alone (the original
Go client's view of the daemon): the lines it prints and the formats of the image list."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import grpc
import pytest

from isula_build.api import control_pb2 as pb
from isula_build.api import control_pb2_grpc
from tests.integration.helpers import make_rootfs_tar

COPY_LINES = ["Getting image source signatures", "Copying blob sha256:", "Copying config sha256:",
              "Writing manifest to image destination", "Storing signatures"]


def import_image(stub, source: Path, reference: str = "") -> tuple[str, list[str]]:
    logs = [m.log for m in stub.Import(pb.ImportRequest(importID="i1", source=str(source),
                                                        reference=reference))]
    last = re.fullmatch(r'Import success with image id: "([0-9a-f]{64})"\n', logs[-1])
    assert last, logs
    return last.group(1), logs


def rows(stub, name: str = "") -> list[tuple[str, str, str]]:
    return [(i.repository, i.tag, i.id) for i in stub.List(pb.ListRequest(imageName=name)).images]


def remove(stub, **kwargs) -> tuple[list[str], grpc.RpcError | None]:
    lines: list[str] = []
    try:
        for m in stub.Remove(pb.RemoveRequest(**kwargs)):
            lines.append(m.layerMessage)
    except grpc.RpcError as err:
        return lines, err
    return lines, None


@pytest.fixture
def busybox(stub, busybox_tar) -> str:
    image_id, logs = import_image(stub, busybox_tar, "busybox")
    # Every line ends with "\n": the Go client prints them with fmt.Print.
    assert all(line.endswith("\n") for line in logs)
    texts = [line.rstrip("\n") for line in logs]
    for expected in COPY_LINES:
        assert any(t.startswith(expected) for t in texts), (expected, texts)
    return image_id


def test_import_then_list_formats(stub, busybox, busybox_tar):
    [info] = stub.List(pb.ListRequest()).images
    assert (info.repository, info.tag, info.id) == ("busybox", "latest", busybox)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", info.created)
    # decimal units, three significant digits, like the original ("5.85 MB")
    assert re.fullmatch(r"\d+(\.\d+)? (B|KB|MB)", info.size)
    number, unit = info.size.split()
    scale = {"B": 1, "KB": 1e3, "MB": 1e6}[unit]
    assert abs(float(number) * scale - busybox_tar.stat().st_size) / busybox_tar.stat().st_size < 0.01


def test_untagged_import_lists_none(stub, busybox, tmp_path):
    tar = make_rootfs_tar(tmp_path / "r.tar", {"hello.txt": b"hi\n"})
    image_id, _ = import_image(stub, tar)
    assert ("<none>", "<none>", image_id) in rows(stub)


def test_list_filter(stub, busybox):
    assert rows(stub, "busybox") == [("busybox", "latest", busybox)]
    assert rows(stub, "busybox:latest") == [("busybox", "latest", busybox)]
    assert rows(stub, busybox[:12]) == [("busybox", "latest", busybox)]
    with pytest.raises(grpc.RpcError) as err:
        stub.List(pb.ListRequest(imageName="nothing:here"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nothing:here" in err.value.details()


def test_tag_adds_a_name(stub, busybox):
    stub.Tag(pb.TagRequest(image="busybox", tag="mybox:v1"))
    stub.Tag(pb.TagRequest(image=busybox[:10], tag="registry.example.com:5000/a/b"))
    assert sorted(rows(stub)) == sorted([
        ("busybox", "latest", busybox), ("mybox", "v1", busybox),
        ("registry.example.com:5000/a/b", "latest", busybox)])
    with pytest.raises(grpc.RpcError) as err:
        stub.Tag(pb.TagRequest(image="busybox", tag="Bad:Name"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.Tag(pb.TagRequest(image="missing", tag="x"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_remove_untags_then_deletes(stub, busybox):
    stub.Tag(pb.TagRequest(image="busybox", tag="mybox:v1"))
    lines, err = remove(stub, imageID=["mybox:v1"])
    assert err is None and lines == ["Untagged image: mybox:v1"]  # no "\n": Go prints with Println
    lines, err = remove(stub, imageID=["busybox"])
    assert err is None and lines == ["Untagged image: busybox:latest", f"Deleted image: {busybox}"]
    assert rows(stub) == []


def test_remove_reports_each_failure_and_fails(stub, busybox):
    lines, err = remove(stub, imageID=["missing:1", "busybox", "missing:2"])
    assert err is not None and err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == ('remove one or more images failed: image "missing:1" not found; '
                             'image "missing:2" not found')
    assert lines[0].startswith('Remove image "missing:1" failed: ') and "not found" in lines[0]
    assert f"Deleted image: {busybox}" in lines
    assert lines[-1].startswith('Remove image "missing:2" failed: ')
    assert rows(stub) == [], "the images that could be removed were removed"


def test_remove_all_and_prune(stub, busybox, tmp_path):
    untagged, _ = import_image(stub, make_rootfs_tar(tmp_path / "r.tar", {"a": b"a"}))
    lines, err = remove(stub, prune=True)
    assert err is None and lines == [f"Deleted image: {untagged}"]
    assert rows(stub) == [("busybox", "latest", busybox)]
    lines, err = remove(stub, all=True)
    assert err is None and f"Deleted image: {busybox}" in lines
    assert rows(stub) == []
    _, err = remove(stub, all=True, imageID=["busybox"])
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT


def save(stub, images: list[str], path: Path, fmt: str = "") -> list[str]:
    return [m.log for m in stub.Save(pb.SaveRequest(saveID="s1", images=images, path=str(path),
                                                    format=fmt))]


def load(stub, path: Path) -> list[str]:
    return [m.log for m in stub.Load(pb.LoadRequest(loadID="l1", path=str(path)))]


def test_save_and_load_round_trip(stub, busybox, tmp_path):
    second, _ = import_image(stub, make_rootfs_tar(tmp_path / "r.tar", {"a": b"a"}), "second:1")
    archive = tmp_path / "out.tar"
    logs = save(stub, ["busybox", "second:1"], archive)
    assert logs[0] == "Getting image source signatures\n"
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert [m["RepoTags"] for m in manifest] == [["busybox:latest"], ["second:1"]]

    remove(stub, all=True)
    logs = load(stub, archive)
    assert f"Loaded image as {busybox}\n" in logs and f"Loaded image as {second}\n" in logs
    assert sorted(rows(stub)) == sorted([("busybox", "latest", busybox), ("second", "1", second)])


def test_upper_case_registry_host_names_an_image(stub, busybox, tmp_path):
    # The one name grammar (docker's): the host may be upper case and is kept as written.
    name = "Reg.Example.COM:5000/team/app:V1"
    stub.Tag(pb.TagRequest(image="busybox", tag=name))
    assert rows(stub, name) == [("Reg.Example.COM:5000/team/app", "V1", busybox)]
    archive = tmp_path / "upper.tar"
    save(stub, [name], archive)
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == [name]
    remove(stub, all=True)
    load(stub, archive)
    assert rows(stub) == [("Reg.Example.COM:5000/team/app", "V1", busybox)]
    with pytest.raises(grpc.RpcError) as err:
        stub.Tag(pb.TagRequest(image="busybox", tag="Reg.Example.COM/App"))
    assert "repository name must be lowercase" in err.value.details()


def test_save_by_id_carries_no_name(stub, busybox, tmp_path):
    archive = tmp_path / "by-id.tar"
    save(stub, [busybox], archive)
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == []


def test_save_refuses_existing_target_and_relative_path(stub, busybox, tmp_path):
    existing = tmp_path / "exists.tar"
    existing.write_bytes(b"keep me")
    with pytest.raises(grpc.RpcError) as err:
        save(stub, ["busybox"], existing)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(grpc.RpcError) as err:
        save(stub, ["busybox"], Path("relative.tar"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_save_missing_image_writes_nothing(stub, busybox, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(grpc.RpcError) as err:
        save(stub, ["busybox", "missing:1"], out / "none.tar")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert list(out.iterdir()) == []


def test_load_errors(stub, tmp_path):
    with pytest.raises(grpc.RpcError) as err:
        load(stub, tmp_path / "absent.tar")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    not_archive = make_rootfs_tar(tmp_path / "plain.tar", {"x": b"x"})
    with pytest.raises(grpc.RpcError) as err:
        load(stub, not_archive)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rows(stub) == []


def test_import_errors(stub, tmp_path):
    with pytest.raises(grpc.RpcError) as err:
        import_image(stub, tmp_path / "absent.tar", "x")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    tar = make_rootfs_tar(tmp_path / "r.tar", {"a": b"a"})
    with pytest.raises(grpc.RpcError) as err:
        import_image(stub, tar, "UPPER:case")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rows(stub) == []


def test_oci_save_with_experimental(daemon_factory, busybox_tar, tmp_path):
    d = daemon_factory(extra_args=["--experimental"])
    d.start()
    with grpc.insecure_channel(d.host) as channel:
        s = control_pb2_grpc.ControlStub(channel)
        image_id, _ = import_image(s, busybox_tar, "busybox")
        archive = tmp_path / "oci.tar"
        save(s, ["busybox"], archive, "oci")
        with tarfile.open(archive) as tar:
            assert "oci-layout" in tar.getnames()
        remove(s, all=True)
        assert f"Loaded image as {image_id}\n" in load(s, archive)
        assert rows(s) == [("busybox", "latest", image_id)]
