"""OverlayMount with real overlayfs mounts."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from isula_build.builder.mounts import MAX_LOWER_DIRS, OverlayMount, split_mount_options
from isula_build.errors import InvalidArgument, ResourceExhausted

Mounted = Callable[[], list[str]]


def make_layers(base: Path, count: int) -> list[Path]:
    """``count`` layer dirs, bottom first; each has its own file and a shared one it overrides."""
    layers = []
    for i in range(count):
        # Store-like names: 64 hex digits, so many of them overflow a page as absolute paths.
        d = base / "layers" / f"{i:064x}"
        d.mkdir(parents=True)
        (d / f"only-{i}").write_text(str(i))
        (d / "shared").write_text(str(i))
        layers.append(d)
    return layers


def test_changes_land_in_upper_and_lower_stays_untouched(tmp_path: Path, mounted_paths: Mounted) -> None:
    lower = make_layers(tmp_path, 1)[0]
    m = OverlayMount([lower], tmp_path / "upper", tmp_path / "work", tmp_path / "merged")
    with m:
        assert str(tmp_path / "merged") in mounted_paths()
        assert (tmp_path / "merged" / "shared").read_text() == "0"
        (tmp_path / "merged" / "new").write_text("x")
        (tmp_path / "merged" / "shared").write_text("changed")
        (tmp_path / "merged" / "only-0").unlink()
    assert str(tmp_path / "merged") not in mounted_paths()
    assert (tmp_path / "upper" / "new").read_text() == "x"
    assert (tmp_path / "upper" / "shared").read_text() == "changed"
    # A deletion is an overlay whiteout: a 0/0 character device in the upper dir.
    wh = os.lstat(tmp_path / "upper" / "only-0")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert sorted(os.listdir(lower)) == ["only-0", "shared"]
    assert (lower / "shared").read_text() == "0"


def test_lower_dirs_are_top_first_and_whiteouts_hide(tmp_path: Path) -> None:
    bottom, middle, top = make_layers(tmp_path, 3)
    os.mknod(top / "only-0", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # top deletes bottom's file
    with OverlayMount([top, middle, bottom], tmp_path / "u", tmp_path / "w", tmp_path / "m"):
        merged = tmp_path / "m"
        assert (merged / "shared").read_text() == "2"
        assert sorted(os.listdir(merged)) == ["only-1", "only-2", "shared"]


def test_scratch_has_an_empty_root_and_leaves_no_helper_dir(tmp_path: Path) -> None:
    before = set(os.listdir(tmp_path))
    with OverlayMount([], tmp_path / "u", tmp_path / "w", tmp_path / "m"):
        assert os.listdir(tmp_path / "m") == []
        (tmp_path / "m" / "f").write_text("scratch")
    assert (tmp_path / "u" / "f").read_text() == "scratch"
    assert set(os.listdir(tmp_path)) - before == {"u", "w", "m"}


def test_many_layers_beyond_one_page_of_options(tmp_path: Path, mounted_paths: Mounted) -> None:
    layers = make_layers(tmp_path, 300)
    # As absolute paths these would need ~25 KiB of options, six times the kernel's page.
    assert sum(len(str(p)) + 1 for p in layers) > 4 * 4096
    before = set(os.listdir(tmp_path))
    with OverlayMount(list(reversed(layers)), tmp_path / "u", tmp_path / "w", tmp_path / "m"):
        merged = tmp_path / "m"
        assert (merged / "shared").read_text() == "299"
        assert len(os.listdir(merged)) == 301
        assert (merged / "only-0").read_text() == "0"
    assert str(tmp_path / "m") not in mounted_paths()
    # The short-name links were temporary.
    assert set(os.listdir(tmp_path)) - before == {"u", "w", "m"}


def test_too_many_layers_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResourceExhausted, match=f"more than the {MAX_LOWER_DIRS}"):
        OverlayMount([tmp_path] * (MAX_LOWER_DIRS + 1), tmp_path / "u", tmp_path / "w", tmp_path / "m")


def test_busy_mount_is_still_unmounted(tmp_path: Path, mounted_paths: Mounted) -> None:
    lower = make_layers(tmp_path, 1)[0]
    m = OverlayMount([lower], tmp_path / "u", tmp_path / "w", tmp_path / "m")
    m.mount()
    # A process with its working directory inside keeps the mount busy.
    holder = subprocess.Popen(["sleep", "30"], cwd=tmp_path / "m")
    try:
        start = time.monotonic()
        m.unmount()
        assert time.monotonic() - start < 5
        assert str(tmp_path / "m") not in mounted_paths()
        m.unmount()  # idempotent
    finally:
        holder.kill()
        holder.wait()


def test_mount_options_split_into_flags_and_data(tmp_path: Path) -> None:
    assert split_mount_options("nodev") == (0x4, [])
    assert split_mount_options("nodev, nosuid,metacopy=on") == (0x6, ["metacopy=on"])
    assert split_mount_options("ro,rw") == (0, [])
    with pytest.raises(InvalidArgument, match="set by isula-builder"):
        split_mount_options("nodev,upperdir=/tmp")


def test_mountopt_flags_are_applied(tmp_path: Path) -> None:
    lower = make_layers(tmp_path, 1)[0]
    with OverlayMount([lower], tmp_path / "u", tmp_path / "w", tmp_path / "m", mountopt="nodev,noexec"):
        line = [l for l in open("/proc/self/mountinfo") if l.split()[4] == str(tmp_path / "m")][0]
        assert {"nodev", "noexec"} <= set(line.split()[5].split(","))


def test_separator_in_a_path_is_refused(tmp_path: Path, mounted_paths: Mounted) -> None:
    bad = tmp_path / "a:b"
    bad.mkdir()
    with pytest.raises(InvalidArgument, match="contains ':' or ','"):
        OverlayMount([bad], tmp_path / "u", tmp_path / "w", tmp_path / "m").mount()
    assert str(tmp_path / "m") not in mounted_paths()
