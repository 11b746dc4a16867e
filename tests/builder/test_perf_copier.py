"""The copier's descriptor-based file copy: content (large files go through a writer thread),
modes whatever the daemon's umask, owners, set-id bits, xattrs and times must come out as the
rules say (tests/builder/test_copier.py has the rules themselves)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from isula_build.builder.copier import copy_into_root

LARGE = (1 << 20) * 3 + 5   # several 1 MiB chunks and a short last one
MTIME_NS = 981173106_123456789


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (r / "etc" / "group").write_text("root:x:0:\n")
    return r


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "context"
    c.mkdir()
    (c / "large.bin").write_bytes(os.urandom(LARGE))
    modes = {"plain": 0o644, "private": 0o600, "exec": 0o755, "setuid": 0o4755,
             "setgid": 0o2750, "open": 0o777}
    for name, mode in modes.items():
        (c / name).write_text(name)
        os.chmod(c / name, mode)
    os.setxattr(c / "plain", "user.origin", b"context")
    for p in c.iterdir():
        os.chown(p, 4321, 4321)
        os.chmod(p, modes.get(p.name, 0o640))   # chown cleared the set-id bits
        os.utime(p, ns=(MTIME_NS, MTIME_NS))
    return c


@pytest.fixture(params=[0o022, 0o077, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_files_keep_content_mode_and_times_whatever_the_umask(root: Path, ctx: Path,
                                                               umask: int) -> None:
    copy_into_root(root, ["."], "/dst/", source_root=ctx)
    for src in ctx.iterdir():
        dst = root / "dst" / src.name
        s, d = os.lstat(src), os.lstat(dst)
        assert stat.S_IMODE(d.st_mode) == stat.S_IMODE(s.st_mode), src.name
        assert (d.st_uid, d.st_gid) == (0, 0), src.name   # the context's owners become root
        assert d.st_mtime_ns == MTIME_NS, src.name
        assert dst.read_bytes() == src.read_bytes(), src.name
    assert os.getxattr(root / "dst" / "plain", "user.origin") == b"context"


def test_chown_keeps_set_id_bits(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["setuid", "setgid"], "/dst/", source_root=ctx, chown="1000:1001")
    for name, mode in (("setuid", 0o4755), ("setgid", 0o2750)):
        d = os.lstat(root / "dst" / name)
        assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid) == (mode, 1000, 1001)


def test_copy_from_another_root_keeps_its_owners(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["/setuid", "/large.bin"], "/dst/", source_root=ctx, from_context=False)
    d = os.lstat(root / "dst" / "setuid")
    assert (stat.S_IMODE(d.st_mode), d.st_uid, d.st_gid) == (0o4755, 4321, 4321)
    assert os.lstat(root / "dst" / "large.bin").st_uid == 4321


def test_chmod_applies_to_large_files(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["large.bin"], "/big", source_root=ctx, chmod="0700")
    d = os.lstat(root / "big")
    assert stat.S_IMODE(d.st_mode) == 0o700 and d.st_size == LARGE
    assert (root / "big").read_bytes() == (ctx / "large.bin").read_bytes()


def test_digest_covers_every_chunk_of_a_large_file(tmp_path: Path, root: Path, ctx: Path) -> None:
    first = copy_into_root(root, ["large.bin"], "/a", source_root=ctx)
    data = bytearray((ctx / "large.bin").read_bytes())
    data[LARGE - 2] ^= 0xFF   # in the last, short chunk
    (ctx / "large.bin").write_bytes(data)
    os.utime(ctx / "large.bin", ns=(MTIME_NS, MTIME_NS))
    second = copy_into_root(root, ["large.bin"], "/b", source_root=ctx)
    assert first != second
    assert (root / "b").read_bytes() == bytes(data)
