"""Differential tests: every case of the corpus built by docker's BuildKit and by us.

The flattened file trees and the compared config fields must be equal, except for the
differences a case's case.json declares (each with its reason); those must still be there, so a
fixed difference is noticed and removed from the corpus. docker's side is cached under /var/tmp
by content hash; without a running dockerd these tests fail (the `docker` fixture).
"""

from __future__ import annotations

import json
import re
from contextlib import nullcontext
from pathlib import Path

import pytest

from diffcases import CASES_DIR, Case, all_cases, prepare_context
from diffcompare import delta, describe, differences, without_reason
from dockerside import docker_result
from flatten import flatten_layer_tar
from ourside import build_ours
from urlserver import serve

CASES = all_cases()
IDS = [c.name for c in CASES]


def _url_server(case: Case):
    return serve(case.dir / "www") if case.url_server else nullcontext(None)


@pytest.mark.docker
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_expected_file_is_dockers_result(case: Case, docker: str, busybox_tar: Path) -> None:
    """expected/<case>.json, what a reviewer reads, is what BuildKit makes today."""
    with _url_server(case) as url_base:
        image = docker_result(case, busybox_tar, url_base)
    fresh = delta(flatten_layer_tar(busybox_tar), image)
    assert case.expected_path.exists(), f"run regen_expected.py: {case.expected_path} is missing"
    stored = json.loads(case.expected_path.read_text())
    assert stored == fresh, f"{case.expected_path} is stale: run tests/builder/differential/regen_expected.py {case.name}"


@pytest.mark.docker
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_build_matches_docker(case: Case, docker: str, client, busybox_image: str,
                              busybox_tar: Path, tmp_path: Path) -> None:
    with _url_server(case) as url_base:
        theirs = docker_result(case, busybox_tar, url_base)
        context = prepare_context(case, tmp_path / "context")
        ours = build_ours(client, case, context, url_base, tmp_path)
    found = differences(theirs, ours)
    declared = [without_reason(d) for d in case.differences]
    unexpected = [d for d in found if d not in declared]
    gone = [d for d in declared if d not in found]
    assert not unexpected, f"case {case.name} differs from BuildKit:\n{describe(unexpected)}"
    assert not gone, (f"case {case.name}: declared differences no longer occur (remove them "
                      f"from case.json):\n{describe(gone)}")


STATIC = "build-time=2020-06-30 15:05:05"


@pytest.mark.docker
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cached_rebuild_equals_clean_build(case: Case, client, busybox_image: str,
                                           tmp_path: Path) -> None:
    """The build cache mode: a --no-cache build (which fills the cache), then the same build
    served from the cache, both static: the same image ID, so the same image BuildKit's is
    compared with above."""
    ids: list[str] = []
    flat = []
    log: list[str] = []
    with _url_server(case) as url_base:
        context = prepare_context(case, tmp_path / "context")
        for n, flags in enumerate((["--no-cache"], [])):
            iid, work = tmp_path / f"iid{n}", tmp_path / f"w{n}"
            work.mkdir()
            flat.append(build_ours(client, case, context, url_base, work,
                                   "--build-static", STATIC, "--iidfile", str(iid), *flags,
                                   log=log))
            ids.append(iid.read_text().strip())
    steps = [line for line in log if line.startswith("STEP ")]
    cached = log.count(" ---> Using cache")
    # Every step after FROM lines is served, but for ADD of a URL and what follows it.
    assert cached or len(steps) == sum(1 for s in steps if " FROM " in s) or \
        any(" ADD " in s for s in steps), f"case {case.name}: nothing came from the cache"
    assert ids[0] == ids[1], (f"case {case.name}: the cached build differs from the clean one:\n"
                              f"{describe(differences(flat[0], flat[1]))}")


# What the issue asks the corpus to cover, checked against the Dockerfiles' text.
REQUIRED = [
    r"^FROM --platform=\S+ \S+ AS \S+", r"^FROM scratch", r"^RUN \[", r"^RUN <<", r"^RUN [^\[<]",
    r"^COPY .*\*", r"^COPY --chown=[a-z]", r"^COPY --chmod=", r"^COPY --from=[a-z]",
    r"^COPY --from=\d", r"^COPY --from=busybox", r"^ADD .*\.tar\b", r"^ADD .*\.tar\.gz",
    r"^ADD .*\.tar\.bz2", r"^ADD .*\.tar\.xz", r"^ADD \$\{?URL_BASE", r"^ENV ", r"^LABEL ",
    r"^CMD \[", r"^CMD [^\[]", r"^ENTRYPOINT \[", r"^ENTRYPOINT [^\[]", r"^EXPOSE ",
    r"^VOLUME ", r"^USER ", r"^WORKDIR ", r"^STOPSIGNAL ", r"^HEALTHCHECK ", r"^HEALTHCHECK NONE",
    r"^SHELL ", r"^ONBUILD ", r"^MAINTAINER ", r"^ARG ", r"^COPY .* \S+/$", r"^COPY .* [^/\s]+$",
]


def test_corpus_covers_every_instruction() -> None:
    assert len(CASES) >= 40, f"the corpus has {len(CASES)} cases, the issue asks for 40"
    lines = [line for case in CASES for line in (case.dir / "Dockerfile").read_text().splitlines()]
    missing = [p for p in REQUIRED if not any(re.search(p, line) for line in lines)]
    assert not missing, f"no case covers: {missing}"
    assert any((c.dir / ".dockerignore").exists() for c in CASES), "no case has a .dockerignore"
    assert any(c.build_args for c in CASES), "no case passes --build-arg"
    assert sorted(p.name for p in CASES_DIR.iterdir()) == IDS, "a case directory has no Dockerfile"
