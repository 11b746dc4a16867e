"""The build cache shared through a registry (issue 13): three daemons with data roots of their
own and one docker-registry on 127.0.0.1, through the real client.

A builds a multi-stage Dockerfile with --cache-to; B and C, with empty stores, build it with
--cache-from and run no RUN step, give A's image and download no more than the final image's
layers (counted in the registry's access log). Then an edited source file, two exports at
once, a registry killed while a build imports, and caches that must not be used.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.registry.servers import BlobProxy, GarbageServer, KillingProxy
from tests.registry.test_e2e import _registries_toml

STATIC = "build-time=2020-01-01 00:00:00"
USING = " ---> Using cache"
RUNS = ("ran-builder", "ran-final", "ran-last")
DOCKERFILE = """FROM {base} AS builder
COPY src /src
RUN echo ran-builder && mkdir /out && cat /src/* > /out/all && \\
    dd if=/dev/urandom of=/out/blob bs=64k count=8 2>/dev/null
FROM {base}
RUN echo ran-final && mkdir /app && echo hello > /app/greeting && rm /bin/true
COPY --from=builder /out /app/out
RUN echo ran-last && ls /app/out > /app/list && rm -rf /app/greeting
ENV BUILT=yes
"""


class Fleet:
    """Daemons that trust the registry (insecure: plain HTTP), each with its client."""

    def __init__(self, daemon_factory, client_factory, registry, busybox_tar: Path,
                 tmp_path: Path) -> None:
        self.registry = registry
        self.tmp = tmp_path
        self.base = f"{registry.host}/base/busybox:1"
        self.cache_ref = f"{registry.host}/cache/app:latest"
        self.clients = {}
        self.data_roots: dict[str, Path] = {}
        for name in ("a", "b", "c"):
            daemon = daemon_factory(name)
            _registries_toml(daemon, [registry.host])
            daemon.start()
            self.clients[name] = client_factory(daemon)
            self.data_roots[name] = daemon.data_root
        a = self.clients["a"]
        a("ctr-img", "import", str(busybox_tar), self.base)
        a("ctr-img", "push", self.base)
        self.dockerfile = DOCKERFILE.format(base=self.base)

    def context(self, name: str) -> Path:
        ctx = self.tmp / f"ctx-{name}"
        if not ctx.exists():
            (ctx / "src").mkdir(parents=True)
            for i in range(5):
                (ctx / "src" / f"file{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n")
            (ctx / "Dockerfile").write_text(self.dockerfile)
        return ctx

    def build(self, name: str, *flags: str, ctx: Path | None = None,
              static: bool = True) -> tuple[str, str]:
        """(image ID, build output)."""
        fixed = ("--build-static", STATIC) if static else ()
        out = self.clients[name]("ctr-img", "build", *fixed, *flags,
                                 str(ctx or self.context(name))).stdout
        found = re.search(r"Build success with image id: (\w+)", out)
        assert found, out
        return found.group(1), out

    def log_size(self) -> int:
        return (self.registry.root / "registry.log").stat().st_size

    def downloaded_since(self, offset: int) -> dict[str, int]:
        """Bytes of each blob GET from the registry after `offset` of its access log."""
        with open(self.registry.root / "registry.log", "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        found: dict[str, int] = {}
        for match in re.finditer(r'"GET /v2/[^ ]+/blobs/(sha256:\w+) HTTP/1.1" (\d+) (\d+)',
                                 text):
            if match.group(2) in ("200", "206"):
                found[match.group(1)] = found.get(match.group(1), 0) + int(match.group(3))
        return found


@pytest.fixture
def fleet(daemon_factory, client_factory, plain_registry, busybox_tar, tmp_path) -> Fleet:
    return Fleet(daemon_factory, client_factory, plain_registry, busybox_tar, tmp_path)


def _ran(out: str) -> list[str]:
    """The RUN steps that executed: their echo lines (the STEP lines quote the commands)."""
    return [line for line in out.splitlines() if line in RUNS]


def _skopeo_raw(ref: str) -> dict:
    return json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                                      f"docker://{ref}"], check=True, capture_output=True,
                                     text=True).stdout)


def test_a_fleet_shares_the_cache_through_the_registry(fleet: Fleet) -> None:
    image_a, out = fleet.build("a", "--cache-to", f"{fleet.cache_ref},mode=max")
    assert _ran(out) == list(RUNS) and "[Warning]" not in out
    final_ref = f"{fleet.registry.host}/app/final:1"
    fleet.clients["a"]("ctr-img", "tag", image_a, final_ref)
    fleet.clients["a"]("ctr-img", "push", final_ref)
    final_layers = sum(layer["size"] for layer in _skopeo_raw(final_ref)["layers"])

    manifest = _skopeo_raw(fleet.cache_ref)   # any OCI tool reads it
    documents = {manifest["config"]["digest"], _skopeo_raw(fleet.base)["config"]["digest"]}
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.isula-build.cache.config.v1+json"
    assert manifest["layers"] and all(layer["mediaType"].endswith("tar+gzip")
                                      for layer in manifest["layers"])

    for name in ("b", "c"):
        before = fleet.log_size()
        image, out = fleet.build(name, "--cache-from", fleet.cache_ref)
        assert image == image_a
        assert _ran(out) == [] and out.count(USING) == 6, out
        assert "[Warning]" not in out
        # Layers: the base image's (pulled) and the final stage's; nothing of the builder
        # stage. Besides them, the two configs (the image's and the cache's document).
        fetched = fleet.downloaded_since(before)
        assert set(fetched) >= documents
        assert sum(n for d, n in fetched.items() if d not in documents) <= final_layers
        assert sum(fetched[d] for d in documents) < 32_000
        # Nothing was mounted, so the base image's layer was never extracted either.
        assert list((fleet.data_roots[name] / "storage" / "layers").iterdir()) == []

    before = fleet.log_size()
    again, out = fleet.build("b", "--cache-from", fleet.cache_ref)
    assert again == image_a and _ran(out) == []
    assert set(fleet.downloaded_since(before)) == {manifest["config"]["digest"]}  # no layer

    ctx = fleet.context("b")
    (ctx / "src" / "file3.c").write_text("int f3(void) { return 33; }\n")
    changed, out = fleet.build("b", "--cache-from", fleet.cache_ref)
    assert changed != image_a
    assert _ran(out) == ["ran-builder", "ran-last"]   # the steps after the edited file only
    assert "cache miss: file src/file3.c changed" in out


# One stage: its layer is fetched from the cache before the stage needs its base's layers. (A
# stage only copied from waits for its base at its end, having no layer to fetch meanwhile.)
ONE_STAGE = """FROM {base}
COPY src /src
RUN echo ran-final && cat /src/* > /all && dd if=/dev/urandom of=/blob bs=64k count=8
ENV BUILT=yes
"""


def _one_stage(fleet: Fleet, name: str, base_host: str) -> Path:
    ctx = fleet.tmp / f"one-stage-{name}"
    shutil.copytree(fleet.context(name) / "src", ctx / "src")
    (ctx / "Dockerfile").write_text(ONE_STAGE.format(base=fleet.base.replace(
        fleet.registry.host, base_host)))
    return ctx


def _through(fleet: Fleet, name: str, proxy: BlobProxy) -> Path:
    """Daemon `name` reaching the registry through proxy, and the one-stage context with its
    FROM naming the base image there too (the same image: the cache keys are made of its ID,
    not of its name)."""
    daemon = fleet.clients[name].daemon
    _registries_toml(daemon, [fleet.registry.host, proxy.host])
    daemon.restart()
    return _one_stage(fleet, name, proxy.host)


def _base_layer(fleet: Fleet) -> str:
    return _skopeo_raw(fleet.base)["layers"][0]["digest"]


def test_the_base_is_pulled_while_the_cache_s_layers_are_fetched(fleet: Fleet) -> None:
    image_a, _ = fleet.build("a", "--cache-to", fleet.cache_ref,
                             ctx=_one_stage(fleet, "a", fleet.registry.host))
    cached = {layer["digest"] for layer in _skopeo_raw(fleet.cache_ref)["layers"]}
    # The base image's layer is answered only once a layer of the cache has been: B gets
    # there only by fetching the stage's layer while its FROM is still pulling.
    proxy = BlobProxy(fleet.registry, held={_base_layer(fleet)}, opening=cached)
    ctx = _through(fleet, "b", proxy)
    image, out = fleet.build("b", "--cache-from", f"{proxy.host}/cache/app:latest", ctx=ctx)
    assert not proxy.timed_out
    assert image == image_a and "ran-final" not in out.splitlines() and "[Warning]" not in out
    lines = out.splitlines()
    # The original's output all the same: every line of the pull before the next STEP.
    pulled = lines.index("Storing signatures")
    first_step = next(i for i, line in enumerate(lines) if line.startswith("STEP  2:"))
    assert lines[0].startswith("STEP  1: FROM ") and 0 < pulled < first_step, out
    assert [line for line in lines[first_step:] if line.startswith("STEP")] == [
        "STEP  2: COPY src /src", f"STEP  3: {ONE_STAGE.splitlines()[2]}",
        "STEP  4: ENV BUILT=yes"]
    assert out.count(USING) == 3, out


def test_a_base_that_fails_to_pull_meanwhile_fails_the_build(fleet: Fleet) -> None:
    fleet.build("a", "--cache-to", fleet.cache_ref, ctx=_one_stage(fleet, "a", fleet.registry.host))
    proxy = BlobProxy(fleet.registry, corrupt={_base_layer(fleet)})
    ctx = _through(fleet, "b", proxy)
    result = fleet.clients["b"]("ctr-img", "build", "--build-static", STATIC, "--cache-from",
                                f"{proxy.host}/cache/app:latest", str(ctx), check=False)
    assert proxy.corrupted and result.returncode != 0
    output = result.stdout + result.stderr
    assert f'base image "{proxy.host}/base/busybox:1" not found in the local store, and ' \
           "pulling it failed" in output and "digest mismatch" in output, output
    # As without the overlap: the pull's error ends the output, no step of the stage after it.
    assert "STEP  2:" not in output and USING not in output, output
    images = fleet.clients["b"]("ctr-img", "images").stdout
    assert "busybox" not in images and "<none>" not in images, images


def test_two_exports_at_once_leave_one_whole_cache(fleet: Fleet) -> None:
    ctx_b, ctx_c = fleet.context("b"), fleet.context("c")
    (ctx_c / "src" / "file0.c").write_text("int f0(void) { return 100; }\n")
    results: dict[str, tuple[str, str]] = {}

    def build(name: str, ctx: Path) -> None:
        results[name] = fleet.build(name, "--cache-to", f"{fleet.cache_ref},mode=max", ctx=ctx)

    threads = [threading.Thread(target=build, args=(n, c)) for n, c in (("b", ctx_b),
                                                                         ("c", ctx_c))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == {"b", "c"}
    assert all("[Warning]" not in out for _, out in results.values())
    # Every blob the manifest names is there, and a fresh daemon reads the cache whole: the
    # build of one of the two contexts is served entirely.
    for layer in _skopeo_raw(fleet.cache_ref)["layers"]:
        assert fleet.registry.blob_path(layer["digest"]).is_file()
    images = {name: image for name, (image, _) in results.items()}
    fresh = fleet.tmp / "ctx-a"
    winner = None
    for name, ctx in (("b", ctx_b), ("c", ctx_c)):
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(ctx, fresh)
        image, out = fleet.build("a", "--cache-from", fleet.cache_ref, ctx=fresh)
        assert "[Warning]" not in out
        if _ran(out) == []:
            winner = name
            assert image == images[name]
            break
    assert winner is not None


def test_registry_killed_mid_import_the_build_goes_on(fleet: Fleet) -> None:
    fleet.build("a", "--cache-to", f"{fleet.cache_ref},mode=max")
    fleet.clients["b"]("ctr-img", "pull", fleet.base)   # B needs nothing else of the registry
    # The registry dies once the document was read: at the first snapshot fetched.
    layers = {layer["digest"] for layer in _skopeo_raw(fleet.cache_ref)["layers"]}
    proxy = KillingProxy(fleet.registry, layers)
    daemon_b = fleet.clients["b"].daemon
    _registries_toml(daemon_b, [fleet.registry.host, proxy.host])
    daemon_b.restart()
    _, out = fleet.build("b", "--cache-from", f"{proxy.host}/cache/app:latest")
    assert proxy.killed
    warnings = [line for line in out.splitlines() if line.startswith("[Warning]")]
    assert len(warnings) == 1 and "building again without it" in warnings[0], out
    assert set(_ran(out)) == set(RUNS)


@pytest.mark.parametrize("damage", ["version", "platform", "garbage", "down"])
def test_a_cache_that_cannot_be_used_is_ignored_with_one_warning(fleet: Fleet, damage: str,
                                                                 tmp_path: Path) -> None:
    fleet.build("a", "--cache-to", fleet.cache_ref)
    ref = fleet.cache_ref
    if damage in ("version", "platform"):
        ref = _rewrite_document(fleet, damage)
    else:
        host = GarbageServer(http=True).host if damage == "garbage" else "127.0.0.1:1"
        daemon_b = fleet.clients["b"].daemon
        _registries_toml(daemon_b, [fleet.registry.host, host])
        daemon_b.restart()
        ref = f"{host}/cache/app:latest"
    _, out = fleet.build("b", "--cache-from", ref)
    assert set(_ran(out)) == set(RUNS)   # every step runs: nothing of that cache is used
    warnings = [line for line in out.splitlines() if line.startswith("[Warning]")]
    assert len(warnings) == 1 and ref in warnings[0], out


def _rewrite_document(fleet: Fleet, field: str) -> str:
    """A copy of the cache at another tag whose config says another version or platform."""
    base = f"http://{fleet.registry.host}/v2/cache/app"
    request = urllib.request.Request(f"{base}/manifests/latest", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    manifest = json.loads(urllib.request.urlopen(request).read())
    config = json.loads(urllib.request.urlopen(
        f"{base}/blobs/{manifest['config']['digest']}").read())
    config[field] = "0.0.1" if field == "version" else "linux/s390x"
    data = json.dumps(config).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.urlopen(urllib.request.Request(f"{base}/blobs/uploads/", data=b"",
                                                          method="POST"))
    location = urllib.parse.urljoin(base, start.headers["Location"])
    separator = "&" if "?" in location else "?"
    urllib.request.urlopen(urllib.request.Request(
        f"{location}{separator}digest={digest}", data=data, method="PUT",
        headers={"Content-Type": "application/octet-stream"}))
    manifest["config"].update(digest=digest, size=len(data))
    urllib.request.urlopen(urllib.request.Request(
        f"{base}/manifests/{field}", data=json.dumps(manifest).encode(), method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
    return f"{fleet.registry.host}/cache/app:{field}"


DISJOINT = """FROM {base}
RUN echo ran-big && mkdir -p /opt/pkg && \\
    dd if=/dev/urandom of=/opt/pkg/blob bs=64k count=16 2>/dev/null
COPY src /src
RUN echo ran-sum && cat /src/* > /src.sum
"""


def _disjoint_context(fleet: Fleet) -> Path:
    ctx = fleet.tmp / "ctx-disjoint"
    (ctx / "src").mkdir(parents=True)
    for i in range(3):
        (ctx / "src" / f"file{i}.c").write_text(f"int f{i}(void) {{ return {i}; }}\n")
    (ctx / "Dockerfile").write_text(DISJOINT.format(base=fleet.base))
    return ctx


def test_a_stage_of_disjoint_steps_is_sent_once(fleet: Fleet) -> None:
    # Its steps change disjoint trees (/opt, /src, /src.sum): the stage's layer is the merge of
    # their snapshots, so the cache holds the snapshots only and a fresh builder merges them.
    # Not --build-static: that clamps the layer's mtimes, and then the layer is sent as well.
    ctx = _disjoint_context(fleet)
    image_a, out = fleet.build("a", "--cache-to", fleet.cache_ref, ctx=ctx, static=False)
    assert "[Warning]" not in out
    manifest = _skopeo_raw(fleet.cache_ref)
    config = json.loads(fleet.registry.blob_path(manifest["config"]["digest"]).read_bytes())
    assert len(config["mergedLayers"]) == 1 and config["stageLayers"] == []
    parts = config["mergedLayers"][0]["parts"]
    assert len(parts) == 3 and sorted(parts) == sorted(l["digest"] for l in manifest["layers"])
    final_ref = f"{fleet.registry.host}/app/disjoint:1"
    fleet.clients["a"]("ctr-img", "tag", image_a, final_ref)
    fleet.clients["a"]("ctr-img", "push", final_ref)
    final_layers = sum(layer["size"] for layer in _skopeo_raw(final_ref)["layers"])

    before = fleet.log_size()
    image_b, out = fleet.build("b", "--cache-from", fleet.cache_ref, ctx=ctx, static=False)
    assert image_b == image_a and "ran-" not in out.replace("echo ran-", "")
    fetched = fleet.downloaded_since(before)
    config_digest = manifest["config"]["digest"]
    base_config = _skopeo_raw(fleet.base)["config"]["digest"]
    assert sum(n for d, n in fetched.items() if d not in (config_digest, base_config)) \
        <= final_layers * 1.05   # the snapshots' gzip framing, not a second copy

    # After an edit, the first RUN's snapshot is fetched as before (a blob of its own).
    (ctx / "src" / "file1.c").write_text("int f1(void) { return 11; }\n")
    _, out = fleet.build("c", "--cache-from", fleet.cache_ref, ctx=ctx, static=False)
    assert "ran-sum" in out.splitlines() and "ran-big" not in out.splitlines()


def test_registry_killed_while_a_stage_layer_is_merged_the_build_goes_on(fleet: Fleet) -> None:
    ctx = _disjoint_context(fleet)
    fleet.build("a", "--cache-to", fleet.cache_ref, ctx=ctx, static=False)
    fleet.clients["b"]("ctr-img", "pull", fleet.base)
    layers = {layer["digest"] for layer in _skopeo_raw(fleet.cache_ref)["layers"]}
    proxy = KillingProxy(fleet.registry, layers)
    daemon_b = fleet.clients["b"].daemon
    _registries_toml(daemon_b, [fleet.registry.host, proxy.host])
    daemon_b.restart()
    image, out = fleet.build("b", "--cache-from", f"{proxy.host}/cache/app:latest", ctx=ctx,
                             static=False)
    assert proxy.killed
    warnings = [line for line in out.splitlines() if line.startswith("[Warning]")]
    assert len(warnings) == 1 and "building again without it" in warnings[0], out
    assert {"ran-big", "ran-sum"} <= set(out.splitlines())
    assert image
