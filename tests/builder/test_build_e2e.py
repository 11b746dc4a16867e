"""`isula-build ctr-img build` end to end: the real client, the real daemon, runc, docker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

# Real registries on 127.0.0.1 (the registry tests' fixtures, reused as they are).
from tests.registry.conftest import plain_registry, registry_factory  # noqa: F401

STATIC = "build-time=2020-06-30 15:05:05"


def context(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).write_text(text)
    return ctx


def leftovers(daemon) -> list[str]:  # type: ignore[no-untyped-def]
    """Work dirs, mounts and runc containers a build may have left behind."""
    tmp = daemon.data_root / "tmp"
    found = [str(p) for p in tmp.iterdir()] if tmp.is_dir() else []
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if line.split()[4].startswith(str(daemon.root))]
    state = daemon.run_root / "runc"
    if state.is_dir():
        out = subprocess.run(["runc", "--root", str(state), "list", "-q"],
                             capture_output=True, text=True, check=True).stdout
        found += out.split()
    return found


def image_ids(client) -> set[str]:  # type: ignore[no-untyped-def]
    out = client("ctr-img", "images").stdout
    return {line.split()[2] for line in out.splitlines()
            if line.strip() and not line.startswith(("-", " REPOSITORY")) and len(line.split()) >= 5}


def test_build_streams_steps_and_tags(client, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo hello-from-run\nCOPY a.txt /a.txt\n"
                            "CMD [\"cat\", \"/a.txt\"]\n", {"a.txt": "A\n"})
    iid = tmp_path / "iid"
    result = client("ctr-img", "build", "-t", "isb-test-e2e:1", "--iidfile", str(iid), str(ctx))
    lines = result.stdout.splitlines()
    assert lines[0] == "STEP  1: FROM busybox"
    assert lines[1] == "STEP  2: RUN echo hello-from-run"
    assert lines[2] == "hello-from-run"
    assert "STEP  3: COPY a.txt /a.txt" in lines
    assert "Getting image source signatures" in lines and "Storing signatures" in lines
    image_id = iid.read_text()
    assert lines[-1] == f"Write image ID [{image_id}] to file: {iid}"
    listed = client("ctr-img", "images", "isb-test-e2e:1").stdout
    assert image_id[:12] in listed


def test_failed_run_reports_command_and_leaves_nothing(client, daemon, busybox_image: str,
                                                       tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo partial > /p; exit 3\n")
    result = client("ctr-img", "build", "-t", "isb-test-fail:1", str(ctx), check=False)
    assert result.returncode == 1
    assert "The command '/bin/sh -c echo partial > /p; exit 3' returned a non-zero code: 3" \
        in result.stderr
    assert image_ids(client) == {busybox_image[:12]}
    assert leftovers(daemon) == []


def test_failed_run_with_a_long_command_shows_its_error(client, daemon, busybox_image: str,
                                                       tmp_path: Path) -> None:
    # The error names the 40 KiB command; gRPC refuses a status message that long ("received
    # metadata size exceeds hard limit"), so the daemon cuts it, keeping its start and end.
    words = " ".join(f"w{i}" for i in range(8000))
    ctx = context(tmp_path, f"FROM busybox\nRUN false start-of-it {words} end-of-it\n")
    result = client("ctr-img", "build", str(ctx), check=False)
    assert result.returncode == 1
    assert "metadata" not in result.stderr and "exceeds" not in result.stderr
    assert "The command '/bin/sh -c false start-of-it w0 w1 w2 " in result.stderr
    assert " w7999 end-of-it' returned a non-zero code: 1" in result.stderr
    assert " bytes cut]…" in result.stderr and len(result.stderr) < 8000
    assert f"start-of-it {words} end-of-it' returned a non-zero code: 1" in daemon.log()


@pytest.mark.parametrize("args, dockerfile, error", [
    (["-o", "docker-archive"], "FROM busybox\n", "destination should not be empty"),
    (["--build-static", "build-time=2020-13-45 99:00:00"], "FROM busybox\n", "invalid build time"),
    ([], "FROM busybox\nCOPY --from=nowhere /x /\n", "not found in the local store"),
    ([], "FROM busybox\nCOPY ../outside /x\n", "outside the build context"),
    ([], "FROM busybox\nCOPY absent.txt /x\n", "absent.txt"),
    ([], "FROM busybox\n" + "# padding\n" * 110_000, "1 MiB"),
    ([], "FROM busybox\nENV B=1\nLABEL a=" + "${A:-" * 500 + "x" + "}" * 500 + "\n",
     "Dockerfile line 3: variable substitutions nested more than 100 deep"),
], ids=["output", "build-static", "unknown-stage", "escape", "missing-source", "big-dockerfile",
        "deep-nesting"])
def test_bad_input_refused(client, daemon, busybox_image: str, tmp_path: Path,
                           args: list[str], dockerfile: str, error: str) -> None:
    ctx = context(tmp_path, dockerfile)
    result = client("ctr-img", "build", *args, str(ctx), check=False)
    assert result.returncode == 1
    assert error in result.stderr
    assert image_ids(client) == {busybox_image[:12]}
    assert leftovers(daemon) == []


def test_proxy_build_arg_is_encrypted_and_reaches_run(client, daemon, busybox_image: str,
                                                      tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo \"$http_proxy\" > /proxy\n")
    # The client encrypts the args with the daemon's public key in its config dir.
    client("ctr-img", "build", "--build-arg", "http_proxy=http://proxy.example:3128",
           "-t", "isb-test-proxy:1", str(ctx),
           env={"ISULABUILD_CONFIG_DIR": str(daemon.config_dir)})
    out = tmp_path / "proxy.tar"
    client("ctr-img", "save", "-o", str(out), "isb-test-proxy:1")
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        top = tar.extractfile(manifest[0]["Layers"][-1])
        with tarfile.open(fileobj=top) as layer:  # type: ignore[arg-type]
            assert layer.extractfile("proxy").read() == b"http://proxy.example:3128\n"  # type: ignore[union-attr]
    assert not any("proxy" in e for e in config["config"].get("Env") or [])


def test_static_builds_give_the_same_id(client, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo fixed > /f && hostname > /h\n")
    ids = []
    for n in range(2):
        iid = tmp_path / f"iid{n}"
        client("ctr-img", "build", "--build-static", STATIC, "--iidfile", str(iid), str(ctx))
        ids.append(iid.read_text())
        if n == 0:
            client("ctr-img", "rm", ids[0])
    assert ids[0] == ids[1]


def test_two_builds_at_once(daemon, busybox_image: str, tmp_path: Path) -> None:
    procs = []
    for n in range(2):
        ctx = tmp_path / f"c{n}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN sleep 1; echo build-{n}\n")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host,
             "ctr-img", "build", str(ctx)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    for n, (out, err) in enumerate(outs):
        assert procs[n].returncode == 0, err
        assert f"build-{n}" in out.splitlines()
        assert f"build-{1 - n}" not in out.splitlines()


def test_client_going_away_cancels_the_build(daemon, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo started; sleep 120\n")
    proc = subprocess.Popen([sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host,
                             "ctr-img", "build", "-t", "isb-test-cancel:1", str(ctx)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "started":
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while leftovers(daemon) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(daemon) == []


def test_output_docker_daemon_runs(client, docker: str, busybox_image: str,
                                   tmp_path: Path) -> None:
    name = "isb-test-dd:1"
    ctx = context(tmp_path, "FROM busybox\nRUN echo from-docker > /msg\nCMD [\"cat\", \"/msg\"]\n")
    try:
        client("ctr-img", "build", "-o", f"docker-daemon:{name}", str(ctx))
        run = subprocess.run([docker, "run", "--rm", "--network", "none", name],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert run.stdout == "from-docker\n"
    finally:
        subprocess.run([docker, "rmi", "-f", name], capture_output=True)


ISULA_STAND_IN = """#!/bin/sh
# Stand-in for iSulad's CLI in tests: `isula load -i FILE` hands the archive to docker load,
# which reads the same docker-archive format, and notes the call.
[ "$1" = load ] && [ "$2" = -i ] || { echo "unexpected: $*" >&2; exit 2; }
echo "$3" >> "$(dirname "$0")/calls"
exec docker load -i "$3"
"""


def test_output_isulad_uses_isula_load(daemon_factory, docker: str, tmp_path: Path,
                                       busybox_tar: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # iSulad is not installed here: an `isula` script on the daemon's PATH passes the archive
    # to `docker load`, so the image it received can be run with docker.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "isula").write_text(ISULA_STAND_IN)
    os.chmod(bin_dir / "isula", 0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    d = daemon_factory("isulad")
    d.start()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "isula_build.cli.main", "--host", d.host,
                               *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done

    cli("ctr-img", "import", str(busybox_tar), "busybox:latest")
    name = "isb-test-isulad:1"
    ctx = context(tmp_path, "FROM busybox\nRUN echo via-isula > /msg\nCMD [\"cat\", \"/msg\"]\n")
    try:
        cli("ctr-img", "build", "-o", f"isulad:{name}", str(ctx))
        calls = (bin_dir / "calls").read_text().split()
        assert len(calls) == 1
        assert calls[0].startswith(str(d.data_root / "tmp"))
        assert not Path(calls[0]).exists()  # removed after the load
        run = subprocess.run([docker, "run", "--rm", "--network", "none", name],
                             capture_output=True, text=True, timeout=120)
        assert run.stdout == "via-isula\n", run.stderr
    finally:
        subprocess.run([docker, "rmi", "-f", name], capture_output=True)


def test_output_archives(client, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN touch /x\n")
    out = tmp_path / "out.tar"
    client("ctr-img", "build", "-o", f"oci-archive:{out}:isb-test-oci:1", str(ctx))
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == \
        "isb-test-oci:1"


# --- registries: FROM pulls what the store lacks, -o docker:// and oci:// push ---------------


@pytest.fixture
def registry_daemon(daemon_factory, client_factory, plain_registry):  # type: ignore[no-untyped-def]
    """A daemon whose registries.toml lists the test registry as insecure (plain HTTP)."""
    daemon = daemon_factory("reg")
    (daemon.config_dir / "registries.toml").write_text(
        "[registries.search]\nregistries = []\n"
        f'[registries.insecure]\nregistries = ["{plain_registry.host}"]\n'
        "[registries.block]\nregistries = []\n")
    daemon.start()
    return daemon, client_factory(daemon)


def skopeo_raw(reference: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{reference}"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_from_pulls_an_image_the_store_lacks(registry_daemon, plain_registry, busybox_tar: Path,
                                             tmp_path: Path) -> None:
    daemon, client = registry_daemon
    remote = f"{plain_registry.host}/busybox:latest"
    client("ctr-img", "import", str(busybox_tar), remote)
    client("ctr-img", "push", remote)
    client("ctr-img", "rm", remote)
    assert "busybox" not in client("ctr-img", "images").stdout

    ctx = context(tmp_path, f"FROM {remote}\nRUN echo pulled > /p\n")
    out = client("ctr-img", "build", "-t", "isb-test-pulled:1", str(ctx)).stdout.splitlines()
    start = out.index(f"STEP  1: FROM {remote}")
    assert out[start + 1] == "Getting image source signatures"
    assert out[start + 2].startswith("Copying blob sha256:")
    assert out.index("STEP  2: RUN echo pulled > /p") > out.index("Storing signatures")
    assert out[-1].startswith("Build success with image id: ")
    listed = client("ctr-img", "images").stdout
    assert f"{plain_registry.host}/busybox" in listed and "isb-test-pulled" in listed
    assert leftovers(daemon) == []


def test_build_outputs_push_to_the_registry(registry_daemon, plain_registry, busybox_tar: Path,
                                            tmp_path: Path) -> None:
    daemon, client = registry_daemon
    client("ctr-img", "import", str(busybox_tar), "busybox:latest")
    ctx = context(tmp_path, "FROM busybox\nRUN echo pushed > /p\n")
    for transport, media_type in (("docker", "application/vnd.docker.distribution.manifest.v2+json"),
                                  ("oci", "application/vnd.oci.image.manifest.v1+json")):
        dest = f"{plain_registry.host}/app:{transport}"
        out = client("ctr-img", "build", "-o", f"{transport}://{dest}", str(ctx)).stdout
        image_id = out.splitlines()[-1].rpartition(" ")[2]
        assert out.count("Writing manifest to image destination") == 2  # commit, then push
        inspected = json.loads(subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}"],
            check=True, capture_output=True, text=True).stdout)
        assert len(inspected["Layers"]) == 2
        manifest = skopeo_raw(dest)
        assert manifest["mediaType"] == media_type
        assert manifest["config"]["digest"] == f"sha256:{image_id}"

    refused = client("ctr-img", "build", "-o", "docker://app:1", str(ctx), check=False)
    assert refused.returncode == 1 and "does not name a registry" in refused.stderr
    unreachable = client("ctr-img", "build", "-o", "docker://127.0.0.1:1/app:1", str(ctx),
                         check=False)
    assert unreachable.returncode == 1 and unreachable.stderr.strip()
    assert leftovers(daemon) == []
