"""`RUN --mount` (bind, cache, tmpfs; secret and ssh: test_secret_mounts_e2e.py) and `RUN --network` through the real client and daemon,
runc and busybox: what RUN sees, that nothing of a mount enters the image, cache mounts kept
across builds (and listed, counted and pruned with the cache), the step keys, bad input."""

from __future__ import annotations

import http.server
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.test_build_e2e import context, image_ids, leftovers

USING = " ---> Using cache"


def build(client, ctx: Path, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    return client("ctr-img", "build", *args, str(ctx), check=check)


def top_layer(client, tmp_path: Path, image: str) -> dict[str, bytes | None]:  # type: ignore[no-untyped-def]
    """The top layer of `image` saved by the daemon: path → file content (None: not a file)."""
    archive = tmp_path / f"saved-{len(list(tmp_path.glob('saved-*')))}.tar"
    client("ctr-img", "save", "-o", str(archive), image)
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = outer.extractfile(manifest[0]["Layers"][-1])
        assert layer is not None
        with tarfile.open(fileobj=layer) as tar:
            return {m.name: (tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
                    for m in tar.getmembers()}


def test_bind_mounts_are_read_only_rw_writes_vanish_and_nothing_enters_the_image(
        client, daemon, busybox_image: str, tmp_path: Path) -> None:
    ctx = context(tmp_path, (
        "FROM busybox\n"
        "WORKDIR /w\n"
        "RUN --mount=target=/ctx cat /ctx/a.txt > /seen; touch /ctx/new 2>/dev/null; "
        "echo $? > /ro-status\n"
        "RUN --mount=source=a.txt,target=rel-file cat /w/rel-file > /seen-file\n"
        "RUN --mount=target=/ctx,rw echo scribble > /ctx/a.txt && touch /ctx/new && ls /ctx > /rw-ls\n"
        "RUN --mount=type=bind,target=/ctx cat /ctx/a.txt > /after-rw\n"
        "RUN ls / > /root-ls\n"),
        {"a.txt": "from-context\n"})
    build(client, ctx, "-t", "isb-test-bind:1")
    layer = top_layer(client, tmp_path, "isb-test-bind:1")
    assert layer["seen"] == b"from-context\n"
    assert layer["ro-status"] != b"0\n"           # read-only by default
    assert layer["seen-file"] == b"from-context\n"  # a file source, a target under WORKDIR
    assert b"new" in (layer["rw-ls"] or b"")        # rw: the command could write …
    assert layer["after-rw"] == b"from-context\n"   # … and the writes were thrown away
    assert (ctx / "a.txt").read_text() == "from-context\n" and not (ctx / "new").exists()
    assert b"ctx" not in (layer["root-ls"] or b"").split()  # the mount point went again
    assert not [p for p in layer if p.startswith(("ctx", "w/rel-file"))]
    assert leftovers(daemon) == []


def test_bind_from_a_stage_and_its_key_follows_that_stage(client, busybox_image: str,
                                                          tmp_path: Path) -> None:
    ctx = context(tmp_path, (
        "FROM busybox AS tools\n"
        "ARG V=1\n"
        "RUN mkdir -p /opt/tool && echo tool-$V > /opt/tool/version\n"
        "FROM busybox\n"
        "RUN --mount=from=tools,target=/t,rw rm -rf /t/opt && ls /t > /tools-root\n"
        "RUN --mount=from=tools,source=/opt/tool,target=/tool cat /tool/version > /version\n"))
    build(client, ctx, "-t", "isb-test-from:1")
    layer = top_layer(client, tmp_path, "isb-test-from:1")
    assert b"opt" not in (layer["tools-root"] or b"").split()   # rw: the rm was seen …
    assert layer["version"] == b"tool-1\n"                       # … and left the stage whole
    assert sorted(layer) == ["tools-root", "version"]            # no mount point stayed
    again = build(client, ctx, "-t", "isb-test-from:1").stdout
    assert again.count(USING) == 4                # unchanged: every step from the cache
    changed = build(client, ctx, "--build-arg", "V=2", "-t", "isb-test-from:2").stdout
    assert USING not in changed.split("STEP  6:")[1]  # the stage it binds changed
    assert top_layer(client, tmp_path, "isb-test-from:2")["version"] == b"tool-2\n"


def test_a_changed_context_file_reruns_the_step_that_binds_it(client, busybox_image: str,
                                                              tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN --mount=target=/src cat /src/a.txt > /a\n",
                  {"a.txt": "one\n"})
    build(client, ctx, "-t", "isb-test-ctxkey:1")
    assert USING in build(client, ctx, "-t", "isb-test-ctxkey:1").stdout
    (ctx / "a.txt").write_text("two\n")
    assert USING not in build(client, ctx, "-t", "isb-test-ctxkey:2").stdout
    assert top_layer(client, tmp_path, "isb-test-ctxkey:2")["a"] == b"two\n"


def test_cache_mount_persists_across_builds_never_enters_the_image_and_is_pruned(
        client, daemon, busybox_image: str, tmp_path: Path) -> None:
    dockerfile = ("FROM busybox\n"
                  "ARG N\n"
                  "RUN --mount=type=cache,target=/var/cache/app,uid=1000,mode=0750 "
                  "ls /var/cache/app > /before; echo run-$N >> /var/cache/app/log; "
                  "stat -c '%u %a' /var/cache/app > /owner\n")
    ctx = context(tmp_path, dockerfile)
    build(client, ctx, "--build-arg", "N=1", "-t", "isb-test-cache:1")
    first = top_layer(client, tmp_path, "isb-test-cache:1")
    assert first["before"] == b"" and first["owner"] == b"1000 750\n"
    assert not [p for p in first if p.startswith("var/cache")]
    build(client, ctx, "--build-arg", "N=2", "-t", "isb-test-cache:2")
    assert top_layer(client, tmp_path, "isb-test-cache:2")["before"] == b"log\n"
    logs = list((daemon.data_root / "cache" / "mounts").glob("*/0/log"))
    assert [p.read_text() for p in logs] == ["run-1\nrun-2\n"]

    listed = client("cache", "ls").stdout
    assert "RUN --mount=type=cache,id=/var/cache/app" in listed
    assert "Build Cache:" in client("info").stdout
    client("cache", "prune", "--all")
    assert "id=/var/cache/app" not in client("cache", "ls").stdout
    build(client, ctx, "--build-arg", "N=3", "-t", "isb-test-cache:3")
    assert top_layer(client, tmp_path, "isb-test-cache:3")["before"] == b""
    assert leftovers(daemon) == []


def test_tmpfs_mount_is_empty_each_time_sized_and_not_in_the_image(client, busybox_image: str,
                                                                   tmp_path: Path) -> None:
    ctx = context(tmp_path, (
        "FROM busybox\n"
        "RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/f && ls /scratch > /first\n"
        "RUN --mount=type=tmpfs,target=/scratch,size=2m ls -A /scratch > /second; "
        "df -k /scratch | tail -1 | awk '{print $2}' > /size\n"))
    build(client, ctx, "-t", "isb-test-tmpfs:1")
    layer = top_layer(client, tmp_path, "isb-test-tmpfs:1")
    assert (layer["first"], layer["second"], layer["size"]) == (b"f\n", b"", b"2048\n")
    assert not [p for p in layer if p.startswith("scratch")]


@pytest.fixture
def host_server() -> Iterator[int]:
    """An HTTP server on the host's loopback; its port."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host-reached\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_network_none_has_only_loopback_and_cannot_reach_the_host(
        client, busybox_image: str, tmp_path: Path, host_server: int) -> None:
    # busybox's nc (its static wget crashes resolving inside a container)
    get = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 {host_server}"
    ctx = context(tmp_path, (
        "FROM busybox\n"
        "RUN --network=none sed -n '3,$p' /proc/net/dev | cut -d: -f1 | tr -d ' ' > /ifaces; "
        f"{get} > /none-got 2>/dev/null; echo $? > /none-status\n"
        f"RUN --network=default {get} > /default-got\n"
        f"RUN --network=host {get} > /host-got\n"))
    build(client, ctx, "-t", "isb-test-net:1")
    layer = top_layer(client, tmp_path, "isb-test-net:1")
    assert layer["ifaces"] == b"lo\n"
    assert layer["none-status"] != b"0\n" and b"host-reached" not in (layer["none-got"] or b"")
    assert b"host-reached" in (layer["default-got"] or b"")
    assert b"host-reached" in (layer["host-got"] or b"")


@pytest.mark.parametrize("instruction, error", [
    ("RUN --mount=type=volume,target=/x true", 'unsupported mount type \'volume\''),
    ("RUN --mount=type=cache,target=/ true", 'invalid mount target "/"'),
    ("RUN --mount=type=cache,target=/c,colour=red true", "unexpected key 'colour'"),
    ("RUN --mount=type=bind,target=/c,size=1m true", "unexpected key 'size' for mount type 'bind'"),
    ("RUN --mount=type=tmpfs,target=/t,size=lots true", "invalid value for size: lots"),
    ("RUN --mount=type=cache,target=/c,sharing=sometimes true", "unsupported sharing value"),
    ("RUN --mount=type=cache,target=/c,uid=me true", "invalid value me for uid"),
    ("RUN --mount=type=bind,from=$STAGE,target=/c true", "doesn't support variable expansion"),
    ("RUN --mount=type=cache true", "a cache mount needs a target"),
    ("RUN --network=bridge true", "unsupported network mode"),
    ("ARG T=/\nRUN --mount=type=tmpfs,target=$T true", 'invalid mount target "/"'),
    ("RUN --mount=from=0,target=/x true", "not a stage index"),
    ("RUN --mount=target=/x,ro=maybe true", "invalid value for readonly: maybe"),
], ids=["type", "cache-root", "option", "size-on-bind", "size", "sharing", "uid", "from-var",
        "no-target", "network", "expanded-root", "from-index", "ro-value"])
def test_bad_mounts_are_refused_with_their_line_before_any_step(
        client, daemon, busybox_image: str, tmp_path: Path, instruction: str, error: str) -> None:
    ctx = context(tmp_path, "FROM busybox\nRUN echo must-not-run\n" + instruction + "\n")
    result = build(client, ctx, check=False)
    assert result.returncode == 1
    line = 3 + instruction.count("\n")
    assert f"Dockerfile line {line}:" in result.stderr and error in result.stderr
    assert "must-not-run" not in result.stdout
    assert image_ids(client) == {busybox_image[:12]}
    assert leftovers(daemon) == []


def test_a_bind_source_that_leads_out_of_the_context_is_refused(
        client, daemon, busybox_image: str, tmp_path: Path) -> None:
    secret = tmp_path / "outside"
    secret.write_text("host secret\n")
    ctx = context(tmp_path, "FROM busybox\nRUN --mount=source=missing,target=/m true\n")
    result = build(client, ctx, check=False)
    assert "Dockerfile line 2:" in result.stderr and 'mount source "missing" not found' in result.stderr
    # A symlink to the host's file resolves inside the context, where there is no such file.
    (ctx / "link").symlink_to(secret)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN --mount=source=link,target=/m cat /m\n")
    result = build(client, ctx, check=False)
    assert result.returncode == 1 and "host secret" not in result.stdout
    assert leftovers(daemon) == []
