"""What a finished build leaves and says, end to end (real client, real daemon): the names an
output gives the image in the store, the `Committed stage` / success / iidfile lines (written by
the daemon into the Status stream, printed once by the client), the unused build-args warning.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ID_LINE = "Build success with image id: "


def context(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def image_id_of(stdout: str) -> str:
    [line] = [line for line in stdout.splitlines() if line.startswith(ID_LINE)]
    return line[len(ID_LINE):]


def test_archive_outputs_name_the_image_in_the_store(client, busybox_image: str,
                                                      tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN touch /x\n")
    for n, transport in enumerate(("docker-archive", "oci-archive")):
        out = tmp_path / f"out{n}.tar"
        result = client("ctr-img", "build", "-o", f"{transport}:{out}:isb-out-{n}:1", str(ctx))
        image_id = image_id_of(result.stdout)
        listed = client("ctr-img", "images", f"isb-out-{n}:1").stdout
        assert image_id[:12] in listed
        removed = client("ctr-img", "rm", f"isb-out-{n}:1").stdout
        assert f"Untagged image: isb-out-{n}:1" in removed
    # An archive without a name leaves the image unnamed, as before.
    result = client("ctr-img", "build", "-o", f"docker-archive:{tmp_path / 'plain.tar'}", str(ctx))
    assert image_id_of(result.stdout)[:12] in client("ctr-img", "images").stdout
    assert "isb-out" not in client("ctr-img", "images").stdout


def test_tag_is_a_second_name_next_to_the_output_name(client, busybox_image: str,
                                                      tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN touch /y\n")
    out = tmp_path / "out.tar"
    result = client("ctr-img", "build", "-o", f"docker-archive:{out}:isb-first:1",
                    "-t", "isb-second:2", str(ctx))
    image_id = image_id_of(result.stdout)
    for name in ("isb-first:1", "isb-second:2"):
        assert image_id[:12] in client("ctr-img", "images", name).stdout
    client("ctr-img", "rm", "isb-first:1", "isb-second:2")
    # The same name twice is one name.
    result = client("ctr-img", "build", "-o", f"docker-archive:{tmp_path / 'again.tar'}:isb-same:1",
                    "-t", "isb-same:1", str(ctx))
    assert client("ctr-img", "rm", "isb-same:1").returncode == 0


def test_docker_daemon_output_names_the_image_too(client, docker: str, busybox_image: str,
                                                  tmp_path: Path) -> None:
    name = "isb-test-dd-name:1"
    ctx = context(tmp_path, "FROM busybox\nRUN echo named > /msg\n")
    try:
        result = client("ctr-img", "build", "-o", f"docker-daemon:{name}", str(ctx))
        assert image_id_of(result.stdout)[:12] in client("ctr-img", "images", name).stdout
        client("ctr-img", "rm", name)
    finally:
        subprocess.run([docker, "rmi", "-f", name], capture_output=True)


def test_client_prints_each_final_line_once(client, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox AS Final\nRUN echo once > /o\n")
    result = client("ctr-img", "build", "--build-arg", "B=1", "--build-arg", "A=2", str(ctx))
    lines = result.stdout.splitlines()
    image_id = image_id_of(result.stdout)
    assert lines.count(f"{ID_LINE}{image_id}") == 1
    # The stage's name as written; committed after the copy lines, before the success line.
    committed = f"Committed stage Final with ID: {image_id}"
    assert lines.count(committed) == 1
    assert lines.index("Storing signatures") < lines.index(committed) < \
        lines.index(f"{ID_LINE}{image_id}")
    # The warning comes last, as the original prints it when the build is cleaned up.
    assert lines[-1] == "[Warning] One or more build-args [A B] were not consumed"
    assert lines.count(lines[-1]) == 1


def test_iidfile_is_written_once_by_the_daemon(client, daemon, busybox_image: str,
                                               tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo iid > /i\n")
    iid = tmp_path / "sub" / "iid"
    iid.parent.mkdir()
    old_umask = os.umask(0)
    try:
        result = client("ctr-img", "build", "--iidfile", str(iid), str(ctx))
    finally:
        os.umask(old_umask)
    image_id = iid.read_text()
    assert len(image_id) == 64 and "\n" not in image_id
    assert stat.S_IMODE(iid.stat().st_mode) == 0o600
    lines = result.stdout.splitlines()
    assert lines.count(f"Write image ID [{image_id}] to file: {iid}") == 1
    assert not any(line.startswith(ID_LINE) for line in lines)
    # Nothing else beside it: no second write through a temporary file.
    assert sorted(p.name for p in iid.parent.iterdir()) == ["iid"]

