"""The registry that pairs a build's Build and Status RPCs and bounds concurrent builds."""

from __future__ import annotations

import pytest

from isula_build.daemon.builds import MAX_BUILDS, BuildRegistry
from isula_build.errors import AlreadyExists, ResourceExhausted


def test_the_101st_build_is_refused() -> None:
    registry = BuildRegistry()
    sessions = [registry.begin_build(f"b{n}") for n in range(MAX_BUILDS)]
    assert registry.running() == 100
    with pytest.raises(ResourceExhausted, match="already running 100 builds"):
        registry.begin_build("one-more")
    registry.end_build(sessions[0])
    assert registry.begin_build("one-more").build_started


def test_status_first_or_build_first_meet_in_one_session() -> None:
    registry = BuildRegistry()
    early = registry.attach_status("s1")
    assert registry.begin_build("s1") is early
    build = registry.begin_build("b1")
    assert registry.attach_status("b1") is build
    with pytest.raises(AlreadyExists):
        registry.begin_build("b1")
    with pytest.raises(AlreadyExists):
        registry.attach_status("b1")


def test_session_lines_end_and_forgotten_when_both_sides_end() -> None:
    registry = BuildRegistry()
    session = registry.begin_build("x")
    status = registry.attach_status("x")
    session.log("STEP  1: FROM busybox")
    registry.end_build(session)
    assert status.lines.get_nowait() == "STEP  1: FROM busybox"
    assert status.lines.get_nowait() is None
    assert len(registry) == 1
    registry.end_status(status)
    assert len(registry) == 0


def test_a_status_without_build_is_forgotten_when_it_ends() -> None:
    registry = BuildRegistry()
    session = registry.attach_status("lonely")
    registry.end_status(session)
    assert len(registry) == 0
