"""Fixtures for the RUN machinery: a busybox root filesystem under a real overlay mount."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from isula_build.builder.mounts import OverlayMount


@pytest.fixture(scope="session")
def busybox_lower(busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox rootfs extracted once, used read-only as an overlay lower directory."""
    lower = tmp_path_factory.mktemp("busybox-lower")
    subprocess.run(["tar", "-xf", str(busybox_tar), "-C", str(lower)], check=True)
    return lower


def _mounted_paths() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def _runc_containers(state_root: Path) -> list[str]:
    out = subprocess.run(["runc", "--root", str(state_root), "list", "-q"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


# Helpers as fixtures: tests/builder is not a package, so test modules cannot import conftest.
@pytest.fixture
def mounted_paths() -> Callable[[], list[str]]:
    """Returns the mount points of this mount namespace (field 5 of /proc/self/mountinfo)."""
    return _mounted_paths


@pytest.fixture
def runc_containers() -> Callable[[Path], list[str]]:
    """Returns the IDs of the containers runc knows under a state root."""
    return _runc_containers


@dataclass
class Stage:
    """A mounted stage root: its overlay directories, a runc state root and a bundle path."""

    lower: Path
    upper: Path
    rootfs: Path
    state_root: Path
    bundle: Path


@pytest.fixture
def stage(busybox_lower: Path, tmp_path: Path):
    with OverlayMount([busybox_lower], tmp_path / "upper", tmp_path / "work", tmp_path / "merged"):
        yield Stage(busybox_lower, tmp_path / "upper", tmp_path / "merged",
                    tmp_path / "runc", tmp_path / "bundle")
    assert str(tmp_path / "merged") not in _mounted_paths()
