"""docker's side of the differential tests: BuildKit builds, flattened, cached under /var/tmp.

BuildKit is reached through Debian's docker 20.10 CLI (`DOCKER_BUILDKIT=1 /usr/bin/docker
build`); the docker first on PATH may be a newer CLI without buildx. The base image is the same
busybox root filesystem tar our side imports, imported into docker as `busybox:latest` so that
`FROM busybox` means the same bytes on both sides.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from diffcases import HERE, URL_ARG, Case, content_key, prepare_context, secret_flags
from flatten import FlatImage, flatten_archive

BUILDKIT_DOCKER = "/usr/bin/docker"
BASE_NAME = "busybox:latest"
CACHE_DIR = Path(os.environ.get("ISB_DIFF_CACHE", "/var/tmp/isb-differential-cache"))
# Bump when the meaning of a cached result changes without the harness files changing.
CACHE_FORMAT = "1"


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def ensure_busybox(busybox_tar: Path) -> None:
    """Makes docker's busybox:latest the test busybox, never replacing someone else's image.

    docker computes the diff ID of an imported uncompressed tar over its bytes, so an image
    whose only layer is sha256(busybox_tar) is the test's own, whoever imported it.
    """
    want = [f"sha256:{sha256_file(busybox_tar)}"]
    probe = _run([BUILDKIT_DOCKER, "image", "inspect", "--format", "{{json .RootFS.Layers}}",
                  BASE_NAME])
    if probe.returncode == 0:
        have = json.loads(probe.stdout)
        assert have == want, (
            f"docker already has a {BASE_NAME} that is not the test busybox (layers {have}, "
            f"want {want}); the differential tests will not replace it: retag or remove it")
        return
    done = _run([BUILDKIT_DOCKER, "import", str(busybox_tar), BASE_NAME])
    assert done.returncode == 0, f"docker import failed: {done.stderr}"


def docker_version() -> str:
    out = _run([BUILDKIT_DOCKER, "version", "--format", "{{.Server.Version}}"])
    assert out.returncode == 0, f"dockerd is not running: {out.stderr}"
    return out.stdout.strip()


def build_with_buildkit(case: Case, context: Path, build_args: dict[str, str],
                        work: Path) -> FlatImage:
    """Builds the prepared context with BuildKit, saves and flattens the image, removes it."""
    tag = f"isb-test-diff-{case.name}-{os.getpid()}".lower()
    cmd = [BUILDKIT_DOCKER, "build", "--network", "host", "-t", tag,
           "-f", str(context / case.docker_dockerfile)]
    for key, value in build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if case.target:
        cmd += ["--target", case.target]
    cmd += secret_flags(case, work)
    built = _run([*cmd, str(context)], env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=600)
    assert built.returncode == 0, f"BuildKit failed on case {case.name}:\n{built.stderr[-4000:]}"
    try:
        archive = work / "docker.tar"
        saved = _run([BUILDKIT_DOCKER, "save", "-o", str(archive), tag])
        assert saved.returncode == 0, f"docker save failed: {saved.stderr}"
        return flatten_archive(archive)
    finally:
        _run([BUILDKIT_DOCKER, "rmi", "-f", tag])


def cache_key(case: Case, busybox_tar: Path) -> str:
    harness = [sha256_file(HERE / name) for name in ("flatten.py", "diffcases.py", "dockerside.py")]
    return content_key(case, CACHE_FORMAT, docker_version(), sha256_file(busybox_tar), *harness)


def docker_result(case: Case, busybox_tar: Path, url_base: str | None) -> FlatImage:
    """docker's flattened image for a case: from the cache when the case is unchanged.

    The URL server's port is left out of the key: it changes nothing in the image.
    """
    key = cache_key(case, busybox_tar)
    cached = CACHE_DIR / f"{case.name}-{key}.json"
    if cached.exists():
        return FlatImage.from_json(json.loads(cached.read_text()))
    ensure_busybox(busybox_tar)
    args = dict(case.build_args)
    if case.url_server:
        assert url_base, f"case {case.name} needs the URL server"
        args[URL_ARG] = url_base
    with tempfile.TemporaryDirectory(prefix="isb-diff-docker-", dir="/var/tmp") as tmp:
        context = prepare_context(case, Path(tmp) / "context")
        image = build_with_buildkit(case, context, args, Path(tmp))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(image.to_json(), sort_keys=True))
    partial.rename(cached)  # atomic: a concurrent run reads a whole file or none
    return image
