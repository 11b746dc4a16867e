"""Stages through the real client and daemon: --target, parallel stages, named build contexts.

Overlap is proved without timing: the RUN of each of two stages registers with a rendezvous
server of the test (host network) and waits, up to a minute, until the other stage has
registered too; run one after the other, the first would never meet the second and fails the
build.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.test_build_e2e import context, image_ids, leftovers

BUILDKIT_DOCKER = "/usr/bin/docker"   # Debian's 20.10 CLI: BuildKit without buildx


class _Rendezvous(http.server.BaseHTTPRequestHandler):
    seen: set[str]
    lock: threading.Lock

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        with self.lock:
            self.seen.add(self.path.strip("/"))
            body = b"go" if len(self.seen) >= 2 else b"wait"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def rendezvous() -> Iterator[int]:
    """A port on 127.0.0.1 answering GET /NAME with `go` once two names have called."""
    handler = type("Handler", (_Rendezvous,), {"seen": set(), "lock": threading.Lock()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def meet(name: str) -> str:
    """A RUN command that waits (at most ~60 s) until another stage has called the server."""
    return (f'i=0; until [ "$(wget -q -O- http://127.0.0.1:$PORT/{name})" = go ]; do '
            f'i=$((i+1)); [ $i -lt 300 ] || {{ echo {name}-never-met; exit 1; }}; sleep 0.2; '
            f'done; echo {name}-met')


def saved_files(client, image: str, tmp_path: Path) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """The regular files of an image (every layer, later ones winning), by path."""
    archive = tmp_path / f"saved-{len(list(tmp_path.iterdir()))}.tar"
    client("ctr-img", "save", image, "-o", str(archive))
    files: dict[str, bytes] = {}
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:  # type: ignore[arg-type]
                for member in inner:
                    if member.isfile():
                        files["/" + member.name.lstrip("./")] = inner.extractfile(member).read()  # type: ignore[union-attr]
    return files


# --- --target -------------------------------------------------------------------------------

TARGET_DOCKERFILE = """\
FROM busybox AS base
RUN echo base > /base
FROM busybox AS broken
RUN exit 7
FROM base AS app
RUN echo app > /app
FROM busybox
RUN exit 9
"""


def test_target_by_name_builds_only_what_it_needs(client, busybox_image: str,
                                                  tmp_path: Path) -> None:
    ctx = context(tmp_path, TARGET_DOCKERFILE)
    out = client("ctr-img", "build", "--target", "APP", "-t", "isb-test-target:1",
                 str(ctx)).stdout.splitlines()
    # Step numbers still count every stage; the stages app does not need never start.
    assert [line for line in out if line.startswith("STEP")] == [
        "STEP  1: FROM busybox AS base", "STEP  2: RUN echo base > /base",
        "STEP  5: FROM base AS app", "STEP  6: RUN echo app > /app"]
    assert any(line.startswith("Committed stage app with ID: ") for line in out)
    files = saved_files(client, "isb-test-target:1", tmp_path)
    assert files["/base"] == b"base\n" and files["/app"] == b"app\n"


def test_target_by_index(client, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, TARGET_DOCKERFILE)
    out = client("ctr-img", "build", "--target", "0", "-t", "isb-test-target:0",
                 str(ctx)).stdout
    assert "RUN echo app" not in out and "Committed stage base with ID: " in out
    files = saved_files(client, "isb-test-target:0", tmp_path)
    assert files["/base"] == b"base\n" and "/app" not in files


def test_target_by_index_is_refused_by_buildkit_20_10(docker: str, busybox_image: str,
                                                      tmp_path: Path) -> None:
    """Pinned: BuildKit looks --target up by name only; the index form is buildah's (whose
    unnamed stages are named by their index), which this project takes as well."""
    ctx = context(tmp_path, "FROM busybox\nRUN true\n")
    p = subprocess.run([BUILDKIT_DOCKER, "build", "--network", "host", "--target", "0", str(ctx)],
                       env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=300)
    assert p.returncode != 0 and "target stage 0 could not be found" in p.stderr


def test_unknown_target_is_refused_before_any_step(client, daemon, busybox_image: str,
                                                   tmp_path: Path) -> None:
    ctx = context(tmp_path, TARGET_DOCKERFILE)
    for target in ("nope", "4"):
        result = client("ctr-img", "build", "--target", target, str(ctx), check=False)
        assert result.returncode == 1
        assert f"target stage '{target}' could not be found; the Dockerfile's stages are " \
               "0 (base), 1 (broken), 2 (app), 3" in result.stderr
        assert "STEP" not in result.stdout
    assert image_ids(client) == {busybox_image[:12]}
    assert leftovers(daemon) == []


# --- parallel stages ------------------------------------------------------------------------

def test_independent_stages_run_at_once_with_prefixed_lines(client, busybox_image: str,
                                                            rendezvous: int,
                                                            tmp_path: Path) -> None:
    ctx = context(tmp_path, f"""\
FROM busybox AS left
ARG PORT
RUN {meet("left")} && echo L > /left
FROM busybox
ARG PORT
RUN {meet("right")} && echo R > /right
FROM busybox AS joined
COPY --from=left /left /left
COPY --from=1 /right /right
""")
    out = client("ctr-img", "build", "--build-arg", f"PORT={rendezvous}", "-t",
                 "isb-test-parallel:1", str(ctx)).stdout.splitlines()
    assert "[left] left-met" in out and "[stage-1] right-met" in out
    # Every line of a stage carries its name, in the stage's own order.
    left = [line for line in out if line.startswith("[left] ")]
    assert left[:2] == ["[left] STEP  1: FROM busybox AS left", "[left] STEP  2: ARG PORT"]
    assert left.index("[left] left-met") > 2
    assert "[joined] STEP  7: FROM busybox AS joined" in out
    assert out.index("[joined] STEP  7: FROM busybox AS joined") > out.index("[left] left-met")
    assert any(line.startswith("Committed stage joined with ID: ") for line in out)
    files = saved_files(client, "isb-test-parallel:1", tmp_path)
    assert files["/left"] == b"L\n" and files["/right"] == b"R\n"


def test_stages_one_after_another_are_not_prefixed(client, busybox_image: str,
                                                   tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox AS a\nRUN echo in-a > /a\n"
                            "FROM a\nRUN echo in-b\n")
    out = client("ctr-img", "build", str(ctx)).stdout.splitlines()
    assert out[:5] == ["STEP  1: FROM busybox AS a", "STEP  2: RUN echo in-a > /a",
                       "STEP  3: FROM a", "STEP  4: RUN echo in-b", "in-b"]


def test_a_failing_stage_cancels_the_others(client, daemon, busybox_image: str,
                                            rendezvous: int, tmp_path: Path) -> None:
    ctx = context(tmp_path, f"""\
FROM busybox AS fails
ARG PORT
RUN {meet("fails")} && exit 5
FROM busybox AS slow
ARG PORT
RUN {meet("slow")} && sleep 60 && echo slow-finished
RUN echo slow-second-step
FROM busybox
COPY --from=fails /etc/passwd /a
COPY --from=slow /etc/passwd /b
""")
    result = client("ctr-img", "build", "--build-arg", f"PORT={rendezvous}", str(ctx),
                    check=False)
    assert result.returncode == 1
    assert "returned a non-zero code: 5" in result.stderr
    # `fails` met `slow`: slow's RUN was running when fails failed.
    assert "[fails] fails-met" in result.stdout
    lines = result.stdout.splitlines()
    assert "[slow] slow-finished" not in lines         # and was stopped, not waited for
    assert not any("RUN echo slow-second-step" in line for line in lines)
    assert image_ids(client) == {busybox_image[:12]}
    assert leftovers(daemon) == []


# --- named contexts -------------------------------------------------------------------------

def _oci_layout(client, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """An OCI layout (tag v1) of an image holding /marker; the image is then removed from
    the store, so a build can only have it from the layout."""
    src = context(tmp_path / "layout-src", "FROM busybox\nRUN echo from-layout > /marker\n")
    client("ctr-img", "build", "-t", "isb-test-layout-src:1", str(src))
    archive = tmp_path / "layout-src.tar"
    client("ctr-img", "save", "isb-test-layout-src:1", "-o", str(archive))
    client("ctr-img", "rm", "isb-test-layout-src:1")
    layout = tmp_path / "layout"
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{archive}",
                    f"oci:{layout}:v1"], check=True, capture_output=True, timeout=300)
    return layout


def test_named_contexts_of_every_kind_in_from_and_copy_from(client, busybox_image: str,
                                                            tmp_path: Path) -> None:
    (tmp_path / "layout-src").mkdir()
    layout = _oci_layout(client, tmp_path)
    assets = tmp_path / "assets"
    (assets / "sub").mkdir(parents=True)
    (assets / "sub" / "x.txt").write_text("x\n")
    (assets / "secret.txt").write_text("ignored\n")
    (assets / ".dockerignore").write_text("secret.txt\n")
    ctx = context(tmp_path, """\
FROM assets AS files
FROM layout AS fromlayout
RUN cat /marker && echo built-on-layout > /on-layout
FROM base
COPY --from=assets sub/x.txt /copied/x.txt
COPY --from=files / /files/
COPY --from=layout /marker /layout-marker
COPY --from=fromlayout /on-layout /on-layout
COPY --from=box /bin/busybox /box-busybox
RUN test "$(stat -c %u:%g /copied/x.txt)" = 0:0 && test ! -e /files/secret.txt
""")
    out = client("ctr-img", "build", "-t", "isb-test-named:1",
                 "--build-context", f"assets={assets}",
                 "--build-context", f"layout=oci-layout://{layout}:v1",
                 "--build-context", "base=docker-image://busybox:latest",
                 "--build-context", "box=docker-image://busybox",
                 str(ctx)).stdout
    assert "from-layout" in out
    files = saved_files(client, "isb-test-named:1", tmp_path)
    assert files["/copied/x.txt"] == b"x\n"
    assert files["/files/sub/x.txt"] == b"x\n" and "/files/secret.txt" not in files
    assert files["/layout-marker"] == b"from-layout\n"
    assert files["/on-layout"] == b"built-on-layout\n"
    assert files["/box-busybox"] == files["/bin/busybox"]


def test_a_named_directory_is_in_the_cache_key(client, busybox_image: str,
                                               tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "a.txt").write_text("one\n")
    ctx = context(tmp_path, "FROM busybox\nCOPY --from=assets a.txt /a.txt\n"
                            "FROM assets\n")
    flags = ["--build-context", f"assets={assets}", "--target", "0"]
    client("ctr-img", "build", *flags, "-t", "isb-test-key:1", str(ctx))
    again = client("ctr-img", "build", *flags, "-t", "isb-test-key:2", str(ctx)).stdout
    assert again.count(" ---> Using cache") == 1
    (assets / "a.txt").write_text("two\n")
    changed = client("ctr-img", "build", *flags, "-t", "isb-test-key:3", str(ctx)).stdout
    assert " ---> Using cache" not in changed
    assert "cache miss: file a.txt changed" in changed
    assert saved_files(client, "isb-test-key:3", tmp_path)["/a.txt"] == b"two\n"


def test_from_a_named_directory_changes_with_its_files(client, busybox_image: str,
                                                       tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "f").write_text("1\n")
    ctx = context(tmp_path, "FROM assets\nLABEL x=y\n")
    flags = ["--build-context", f"assets={assets}"]
    first = client("ctr-img", "build", *flags, "-t", "isb-test-fromdir:1", str(ctx)).stdout
    assert " ---> Using cache" not in first
    assert " ---> Using cache" in client("ctr-img", "build", *flags, str(ctx)).stdout
    (assets / "f").write_text("2\n")
    changed = client("ctr-img", "build", *flags, "-t", "isb-test-fromdir:2", str(ctx)).stdout
    assert " ---> Using cache" not in changed
    assert saved_files(client, "isb-test-fromdir:2", tmp_path)["/f"] == b"2\n"


@pytest.mark.parametrize("spec, message", [
    ("assets={missing}", "directory '{missing}' does not exist or is not a directory"),
    ("assets", "invalid --build-context 'assets': use NAME=DIR"),
    ("assets=git://host/repo", "unsupported scheme"),
])
def test_bad_build_contexts_are_refused_by_the_client(client, busybox_image: str, spec: str,
                                                      message: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\n")
    missing = str(tmp_path / "missing")
    result = client("ctr-img", "build", "--build-context", spec.format(missing=missing),
                    str(ctx), check=False)
    assert result.returncode == 1 and message.format(missing=missing) in result.stderr


@pytest.mark.parametrize("spec, message", [
    ("Bad=/", "invalid --build-context name 'Bad'"),
    ("base=/", "the Dockerfile has a stage of that name"),
    ("x=docker-image://UPPER", "--build-context x: invalid image name \"UPPER\": repository "
                               "name must be lowercase"),
    ("x=oci-layout://{missing}:v1", "does not exist or is not a directory"),
    ("x={missing}", "directory {missing} does not exist or is not a directory"),
])
def test_bad_build_contexts_are_refused_by_the_daemon_before_any_step(
        daemon, busybox_image: str, spec: str, message: str, tmp_path: Path) -> None:
    """What the daemon checks itself (the original's client or a crafted request)."""
    from isula_build.api import control_pb2, control_pb2_grpc
    import grpc

    ctx = context(tmp_path, "FROM busybox AS base\nRUN echo ran\n")
    missing = str(tmp_path / "missing")
    with grpc.insecure_channel(daemon.host) as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        request = control_pb2.BuildRequest(
            buildID="aaaabbbbcccc", buildType="ctr-img", contextDir=str(ctx),
            fileContent=(ctx / "Dockerfile").read_text(), format="docker",
            buildContexts=[spec.format(missing=missing)])
        with pytest.raises(grpc.RpcError) as caught:
            stub.Build(request, timeout=60)
    assert caught.value.code() == (grpc.StatusCode.NOT_FOUND if "missing" in spec
                                   else grpc.StatusCode.INVALID_ARGUMENT)
    assert message.format(missing=missing) in (caught.value.details() or "")


def test_build_context_is_unknown_to_docker_20_10(docker: str, tmp_path: Path) -> None:
    """Pinned: docker 20.10's CLI has no --build-context (it came with buildx and Dockerfile
    frontend 1.4), so no differential case can cover named contexts; the tests above follow
    BuildKit's documented meaning (FROM NAME and COPY --from=NAME read the context)."""
    p = subprocess.run([BUILDKIT_DOCKER, "build", "--build-context", f"a={tmp_path}",
                        str(tmp_path)], env={"DOCKER_BUILDKIT": "1", "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "unknown flag: --build-context" in p.stderr
