"""Platforms parsed and matched as containerd does, and binfmt_misc read for what can RUN."""

from __future__ import annotations

from pathlib import Path

import pytest

from isula_build.builder.binfmt import check_can_run, emulation_problem, runnable_platforms
from isula_build.errors import FailedPrecondition, InvalidArgument
from isula_build.image.platform import Platform, host_platform, matches, of_fields, parse_platforms


@pytest.mark.parametrize("text, expected", [
    ("linux/arm64", "linux/arm64"), ("linux/aarch64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"), ("arm64", "linux/arm64"), ("LINUX/AMD64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"), ("linux/arm", "linux/arm/v7"), ("linux/armhf", "linux/arm/v7"),
    ("linux/arm/v6", "linux/arm/v6"), ("linux/i386", "linux/386"),
])
def test_platforms_are_normalized(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize("text, reason", [
    ("linux//x", "use os/arch"), ("linux/arm64/v8/x", "use os/arch"),
    ("windows/amd64", "only linux images"), ("linux/a b", "use os/arch"),
])
def test_bad_platforms_are_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        Platform.parse(text)


def test_platform_lists_and_matching() -> None:
    assert [str(p) for p in parse_platforms("linux/arm64, linux/amd64,linux/aarch64")] == \
        ["linux/arm64", "linux/amd64"]
    assert parse_platforms("") == []
    with pytest.raises(InvalidArgument):
        parse_platforms(" , ")
    arm64 = Platform.parse("linux/arm64")
    assert matches(arm64, of_fields({"architecture": "arm64", "os": "linux", "variant": "v8"}))
    assert not matches(arm64, of_fields({"architecture": "amd64", "os": "linux"}))
    assert not matches(Platform.parse("linux/arm/v6"),
                       of_fields({"architecture": "arm", "os": "linux", "variant": "v7"}))
    assert of_fields({"os": "linux"}) is None
    assert host_platform("aarch64") == arm64 and host_platform("x86_64").qemu_name == "x86_64"
    assert arm64.automatic_args("TARGET") == {"TARGETPLATFORM": "linux/arm64", "TARGETOS": "linux",
                                              "TARGETARCH": "arm64", "TARGETVARIANT": ""}


def test_binfmt_handlers_are_read(tmp_path: Path) -> None:
    arm64 = Platform.parse("linux/arm64")
    assert emulation_problem(host_platform(), tmp_path) is None  # never emulated
    assert "not mounted" in str(emulation_problem(arm64, tmp_path))
    (tmp_path / "status").write_text("disabled\n")
    assert "disabled" in str(emulation_problem(arm64, tmp_path))
    (tmp_path / "status").write_text("enabled\n")
    assert "no qemu handler for aarch64" in str(emulation_problem(arm64, tmp_path))
    handler = tmp_path / "qemu-aarch64"
    handler.write_text("disabled\ninterpreter /x\nflags: PF\n")
    assert "is disabled" in str(emulation_problem(arm64, tmp_path))
    handler.write_text("enabled\ninterpreter /x\nflags: P\n")
    with pytest.raises(FailedPrecondition, match="cannot RUN for linux/arm64 on this .* F "):
        check_can_run(arm64, tmp_path)
    assert runnable_platforms(tmp_path) == [str(host_platform())]
    handler.write_text("enabled\ninterpreter /x\nflags: PF\n")
    check_can_run(arm64, tmp_path)
    assert runnable_platforms(tmp_path) == [str(host_platform()), "linux/arm64"]
