"""Our side of the differential tests: build through the real daemon and client, save, flatten."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from diffcases import URL_ARG, Case, secret_flags
from flatten import FlatImage, flatten_archive


class ClientLike(Protocol):
    """tests/conftest.py's Client: runs `isula-build ARGS` and raises on failure."""

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> Any: ...


def build_ours(client: ClientLike, case: Case, context: Path, url_base: str | None,
               work: Path, *extra: str, log: list[str] | None = None) -> FlatImage:
    """Builds the case (with `extra` build flags; the build's output into `log`), saves and
    flattens it."""
    tag = f"isb-test-diff-{case.name}:latest".lower()
    args = dict(case.build_args)
    if case.url_server:
        assert url_base, f"case {case.name} needs the URL server"
        args[URL_ARG] = url_base
    cmd = ["ctr-img", "build", "-f", str(context / "Dockerfile"), "-t", tag, *extra]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if case.target:
        cmd += ["--target", case.target]
    cmd += secret_flags(case, work)
    result = client(*cmd, str(context), timeout=600)
    if log is not None:
        log.extend(result.stdout.splitlines())
    archive = work / "ours.tar"
    client("ctr-img", "save", tag, "-o", str(archive))
    return flatten_archive(archive)
