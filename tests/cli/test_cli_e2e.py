"""The client against a real isula-builder: listing, tagging, removing, saving, loading,
version and info, and how daemon errors reach the user."""

from __future__ import annotations

import grp
import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2

from isula_build.api import control_pb2
from isula_build.api.control_pb2_grpc import ControlStub
from isula_build.cli.images import EMPTY_TABLE

EXPERIMENTAL = {"ISULABUILD_CLI_EXPERIMENTAL": "enabled"}
ROW = re.compile(r"^ (\S+)\s+(\S+)\s+([0-9a-f]{12})\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+"
                 r"(\d[\d.]*(?:e\+\d+)? [KMGT]?B)\s*$")


def table_rows(output: str) -> list[tuple[str, ...]]:
    """The data rows of an images table, checking its frame on the way."""
    lines = output.splitlines()
    rule = lines[0]
    assert set(rule) == {"-", " "}
    assert lines[1].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[2] == rule and lines[-1] == rule
    rows = []
    for line in lines[3:-1]:
        if line == "":  # gotabulate's empty line between rows
            continue
        match = ROW.match(line)
        assert match, f"unexpected row {line!r}"
        rows.append(match.groups())
    return rows


def daemon_error(daemon, call) -> str:
    """What the daemon itself answers to a call (what the client must show as is)."""
    with grpc.insecure_channel(daemon.host) as channel:
        with pytest.raises(grpc.RpcError) as info:
            result = call(ControlStub(channel))
            list(result) if not isinstance(result, grpc.Future) else result.result()
    return info.value.details()


def test_images_of_an_empty_store(client) -> None:
    assert client("ctr-img", "images").stdout == EMPTY_TABLE


def test_images_lists_an_imported_image(client, busybox_image: str) -> None:
    rows = table_rows(client("ctr-img", "images").stdout)
    assert len(rows) == 1
    repository, tag, image_id, _created, _size = rows[0]
    assert (repository, tag, image_id) == ("busybox", "latest", busybox_image[:12])


def test_import_prints_the_copy_and_the_id(client, busybox_tar: Path) -> None:
    out = client("ctr-img", "import", str(busybox_tar), "mybusybox:v1").stdout
    lines = out.splitlines()
    assert lines[0] == "Getting image source signatures"
    assert re.fullmatch(r'Import success with image id: "[0-9a-f]{64}"', lines[-1])


def test_tag_adds_a_name_and_rm_removes_it(client, busybox_image: str) -> None:
    out = client("ctr-img", "tag", "busybox:latest", "foo/bar:v1").stdout
    assert out == "Tag busybox:latest to image foo/bar:v1 succeed\n"
    rows = table_rows(client("ctr-img", "images").stdout)
    assert sorted((r[0], r[1], r[2]) for r in rows) == [
        ("busybox", "latest", busybox_image[:12]), ("foo/bar", "v1", busybox_image[:12])]

    only = table_rows(client("ctr-img", "images", "foo/bar:v1").stdout)
    assert [(r[0], r[1]) for r in only] == [("foo/bar", "v1")]

    out = client("ctr-img", "rm", "foo/bar:v1").stdout
    assert "Untagged image: foo/bar:v1" in out.splitlines()
    assert [r[0] for r in table_rows(client("ctr-img", "images").stdout)] == ["busybox"]

    out = client("ctr-img", "rm", busybox_image[:12]).stdout
    assert any(line.startswith("Deleted") and busybox_image in line for line in out.splitlines())
    assert client("ctr-img", "images").stdout == EMPTY_TABLE


def test_tag_of_a_missing_image_shows_the_daemons_message(client, daemon) -> None:
    r = client("ctr-img", "tag", "nothere:latest", "x:y", check=False)
    expected = daemon_error(daemon, lambda s: s.Tag.future(
        control_pb2.TagRequest(image="nothere:latest", tag="x:y")))
    assert r.returncode == 1
    assert r.stderr == expected + "\n"
    assert r.stdout == ""


def test_save_and_load_round_trip(client, busybox_image: str, tmp_path: Path) -> None:
    out = client("ctr-img", "save", "busybox:latest", "-o", str(tmp_path / "b.tar")).stdout
    assert out.splitlines()[-1] == "Save success with image: busybox:latest"
    assert (tmp_path / "b.tar").stat().st_size > 0
    client("ctr-img", "rm", "busybox:latest")
    out = client("ctr-img", "load", "-i", str(tmp_path / "b.tar")).stdout
    assert f"Loaded image as {busybox_image}" in out.splitlines()
    assert [r[2] for r in table_rows(client("ctr-img", "images").stdout)] == [busybox_image[:12]]


def test_version_shows_client_and_server(client) -> None:
    out = client("version").stdout
    blocks = out.split("\n\n")
    assert blocks[0].splitlines()[0] == "Client:"
    assert blocks[1].splitlines()[0] == "Server:"
    for block in blocks:
        labels = [line.split(":")[0].strip() for line in block.splitlines()[1:]]
        assert labels == ["Version", "Python Version", "Git Commit", "Built", "OS/Arch"]


def test_info(client, daemon) -> None:
    out = client("info").stdout
    assert out.startswith("General:\n  MemTotal:     ")
    assert f"  DataRoot:     {daemon.data_root}" in out
    assert "Store:\n  Storage Driver:     overlay\n" in out
    assert "\nRuntime:\n" not in out
    verbose = client("info", "-H", "-V").stdout
    assert re.search(r"^  MemTotal:     \d[\d.]* [KMGT]?B$", verbose, re.M)
    assert "\nRuntime:\n" in verbose
    assert re.search(r"^  MemSys:           \d[\d.]* [KMGT]?B$", verbose, re.M)


def test_failed_pull_shows_the_daemons_message(client, daemon) -> None:
    expected = daemon_error(daemon, lambda s: s.Pull(
        control_pb2.PullRequest(pullID="x", imageName="busybox:latest")))
    r = client("ctr-img", "pull", "busybox:latest", check=False)
    assert r.returncode == 1
    assert r.stderr == expected + "\n"
    assert "Pull success" not in r.stdout


@pytest.mark.parametrize("args,env", [
    (["ctr-img", "push", "localhost:5000/busybox:latest"], {}),
    (["logout", "localhost:5000"], {}),
    (["manifest", "create", "mylist", "localhost:5000/busybox:latest"], EXPERIMENTAL),
    (["manifest", "inspect", "mylist"], EXPERIMENTAL),
    (["ctr-img", "save", "app:latest", "-b", "busybox:latest"], {}),
])
def test_failing_commands_show_one_line_from_the_daemon(client, args, env) -> None:
    r = client(*args, check=False, env=env)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.strip(), r.stderr
    assert "Traceback" not in r.stderr


def test_login_reaches_the_daemon_with_its_key(client, daemon) -> None:
    r = client("login", "-u", "user", "-p", "localhost:5000", input="secret\n", check=False,
               env={"ISULABUILD_CONFIG_DIR": str(daemon.config_dir)})
    assert r.returncode == 1
    # The client found the daemon's key in ISULABUILD_CONFIG_DIR and encrypted the password:
    # the daemon decrypted it and went on to the registry, which is not there.
    assert "decrypt" not in r.stderr
    assert "localhost:5000" in r.stderr
    assert "secret" not in r.stderr + r.stdout
    assert "Login Failed" in r.stdout


def test_build_of_a_missing_base_fails_cleanly(client, daemon, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM isb-no-such-base\n")
    r = client("ctr-img", "build", str(tmp_path), check=False, timeout=60)
    assert r.returncode == 1
    assert "isb-no-such-base" in r.stderr and "Traceback" not in r.stderr
    assert "Build success" not in r.stdout


def test_health_check_answers_serving(daemon) -> None:
    # What the client relies on before every command.
    with grpc.insecure_channel(daemon.host) as channel:
        reply = ControlStub(channel).HealthCheck(empty_pb2.Empty(), timeout=10)
    assert reply.status == control_pb2.HealthCheckResponse.SERVING


def run_as_nobody(daemon, *args: str, groups: str | None = None) -> subprocess.CompletedProcess:
    """The client as user nobody (in the given supplementary groups, else in none). The
    interpreter may live under /root (pyenv), which nobody may not search, so the process keeps
    CAP_DAC_READ_SEARCH: it reads files, but connecting to a socket needs write permission,
    which the capability does not grant, so the socket's mode and group still decide."""
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup",
           f"--groups={groups}" if groups else "--clear-groups",
           "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
           sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": "/nonexistent"})


def test_a_user_outside_the_sockets_group_is_told_which_group_grants_access(daemon) -> None:
    # The test daemon's socket is 0660 root:root (--group root).
    denied = run_as_nobody(daemon, "ctr-img", "images")
    assert denied.returncode == 1 and denied.stdout == ""
    assert denied.stderr == (f"permission denied while connecting to the isula-builder at "
                             f'{daemon.host}: the socket is owned by group "root"; run as root '
                             "or as a member of that group\n")
    member = run_as_nobody(daemon, "ctr-img", "images", groups="root")
    assert member.returncode == 0, member.stderr
    assert member.stdout == EMPTY_TABLE

    named = {entry.gr_gid for entry in grp.getgrall()}
    gid = next(g for g in range(4242, 1 << 20) if g not in named)
    os.chown(daemon.socket, -1, gid)  # a group without a name is given by its number
    unnamed = run_as_nobody(daemon, "ctr-img", "images")
    assert f"the socket is owned by group ID {gid}; run as root" in unnamed.stderr
