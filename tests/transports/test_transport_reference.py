"""transports/reference.py (specs → typed references) and transports/writers.py (ref → writer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from isula_build.errors import InvalidArgument
from isula_build.registry.names import RemoteRef
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.docker_daemon import DockerDaemonWriter
from isula_build.transports.isulad import IsuladWriter
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.reference import (
    DockerArchiveRef, DockerDaemonRef, IsuladRef, OciArchiveRef, RegistryRef, archive_ref,
    parse_reference, replace_archive_path,
)
from isula_build.transports.writers import open_writer


@pytest.mark.parametrize("spec, ref", [
    ("docker-archive:/o/a.tar:app:1", DockerArchiveRef("/o/a.tar", "app:1")),
    ("docker-archive:/o/a.tar:app", DockerArchiveRef("/o/a.tar", "app:latest")),
    ("docker-archive:/o/a.tar", DockerArchiveRef("/o/a.tar", None)),
    ("docker-archive:/o/a.tar:", DockerArchiveRef("/o/a.tar", None)),
    ("oci-archive:rel/o.tar:localhost:5000/a/b:v1",  # the parser leaves paths to its callers
     OciArchiveRef("rel/o.tar", "localhost:5000/a/b:v1")),
    ("docker-daemon:busybox:latest", DockerDaemonRef("busybox:latest")),
    ("isulad:Reg.IO:5000/app:V1", IsuladRef("Reg.IO:5000/app:V1")),
    ("docker://localhost:5000/app", RegistryRef(
        "localhost:5000/app:latest", RemoteRef("localhost:5000", "app", "latest"), "docker")),
    ("oci://docker.io/busybox:1", RegistryRef(
        "docker.io/busybox:1", RemoteRef("docker.io", "library/busybox", "1"), "oci")),
    ("docker://Registry.Example.COM/team/app:v2", RegistryRef(
        "Registry.Example.COM/team/app:v2", RemoteRef("Registry.Example.COM", "team/app", "v2"),
        "docker")),
])
def test_parse_reference(spec: str, ref: object) -> None:
    parsed = parse_reference(spec)
    assert parsed == ref
    assert type(parsed) is type(ref)
    assert parsed.transport == spec.partition(":")[0]


@pytest.mark.parametrize("spec, message", [
    ("", "transport should not be empty"),
    ("docker-archive", "destination should not be empty"),
    ("isulad: ", "destination should not be empty"),
    ("nope:x", "transport 'nope' not support"),
    (":x", "transport should not be empty"),
    ("oci-archive: :a:1", "the archive path is empty"),
    ("docker-archive:/a.tar:App:1", 'invalid image name "App:1": repository name must be lowercase'),
    ("docker-daemon:app", "use docker-daemon:NAME:TAG"),
    ("isulad:reg.io:5000/app", "use isulad:NAME:TAG"),  # the colon is the port's
    ("isulad:a:-1", 'tag "-1"'),
    ("docker:reg.io/a:1", "use docker://REGISTRY/REPO:TAG"),
    ("oci://", "use oci://REGISTRY/REPO:TAG"),
    ("docker://app:1", "does not name a registry"),
    ("docker://reg.io/a@sha256:" + "0" * 64, "digest"),
    ("docker-archive:/" + "x" * 512, "output should not be longer than 512 characters"),
])
def test_parse_reference_refuses(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(spec)
    assert message in str(info.value)
    # Messages name the spec, except the length limit's and the original client's own words.
    if spec and not any(m in message for m in ("512", "transport")):
        assert str(info.value).startswith(f"invalid output {spec!r}: ")


def test_replace_archive_path_keeps_the_name_as_written() -> None:
    assert replace_archive_path("docker-archive:o.tar:app", "/w/o.tar") == "docker-archive:/w/o.tar:app"
    assert replace_archive_path("oci-archive:o.tar:h:5000/a:1", "/o.tar") == "oci-archive:/o.tar:h:5000/a:1"
    assert replace_archive_path("oci-archive:o.tar", "/o.tar") == "oci-archive:/o.tar"


def test_archive_ref_by_image_format() -> None:
    assert archive_ref("docker", "/s.tar") == DockerArchiveRef("/s.tar")
    assert archive_ref("oci", "/s.tar") == OciArchiveRef("/s.tar")


@pytest.mark.parametrize("ref, writer_class", [
    (DockerArchiveRef("PLACEHOLDER", "a:1"), DockerArchiveWriter),
    (OciArchiveRef("PLACEHOLDER"), OciArchiveWriter),
    (DockerDaemonRef("a:1"), DockerDaemonWriter),
    (IsuladRef("a:1"), IsuladWriter),
])
def test_open_writer_chooses_by_reference(tmp_path: Path, ref, writer_class) -> None:
    if isinstance(ref, (DockerArchiveRef, OciArchiveRef)):
        ref = type(ref)(str(tmp_path / "out.tar"), ref.name)
    with pytest.raises(RuntimeError, match="stop"):
        with open_writer(ref, tmp_path / "tmp") as writer:
            assert type(writer) is writer_class
            raise RuntimeError("stop")  # nothing written: the writer leaves nothing behind
    staged = tmp_path / "tmp"
    assert [p.name for p in tmp_path.iterdir() if p != staged] == []
    assert not staged.exists() or list(staged.iterdir()) == []


def test_engine_writers_need_a_staging_directory() -> None:
    with pytest.raises(ValueError, match="isulad"):
        open_writer(IsuladRef("a:1"))
