"""write_layer on real overlayfs upper directories and real special files."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from isula_build.builder.layertar import write_layer


class WriteOnly:
    """An output that can only be written, like a pipe: write_layer must stream."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def value(self) -> bytes:
        return b"".join(self.chunks)


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


@pytest.fixture
def overlay(tmp_path: Path) -> Iterator[tuple[Path, Path, Path]]:
    """(lower, upper, merged) of a real overlay mount, unmounted afterwards."""
    dirs = {n: tmp_path / n for n in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir()
    lower = dirs["lower"]
    (lower / "a").mkdir()
    (lower / "a" / "keep").write_text("k")
    (lower / "a" / "del").write_text("d")
    (lower / "dir" / "x").mkdir(parents=True)
    (lower / "dir" / "x" / "old").write_text("o")
    (lower / "gone").mkdir()
    (lower / "gone" / "f").write_text("f")
    opts = f"lowerdir={lower},upperdir={dirs['upper']},workdir={dirs['work']}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(dirs["merged"])], check=True)
    try:
        yield lower, dirs["upper"], dirs["merged"]
    finally:
        subprocess.run(["umount", str(dirs["merged"])], check=False)


def test_overlay_whiteouts_and_opaque_directories(overlay: tuple[Path, Path, Path]) -> None:
    _, upper, merged = overlay
    (merged / "a" / "del").unlink()
    for p in ((merged / "dir" / "x" / "old"), (merged / "gone" / "f")):
        p.unlink()
    (merged / "dir" / "x").rmdir()
    (merged / "gone").rmdir()
    (merged / "dir" / "x").mkdir()
    (merged / "dir" / "x" / "new").write_text("n")
    out = WriteOnly()
    stats = write_layer(upper, out)
    data = out.value()
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stats.size == len(data)
    got = {m.name: m for m in members(data)}
    # (tarfile drops the trailing "/" of directory names when reading)
    assert set(got) == {"a", "a/.wh.del", "dir", "dir/x", "dir/x/.wh..wh..opq", "dir/x/new",
                        ".wh.gone"}
    assert b"dir/x/\0" in data  # directories are written as docker does, with a trailing slash
    for name in ("a/.wh.del", ".wh.gone", "dir/x/.wh..wh..opq"):
        assert got[name].isreg() and got[name].size == 0
    names = [m.name for m in members(data)]
    assert names.index("dir/x") < names.index("dir/x/.wh..wh..opq") < names.index("dir/x/new")
    for m in got.values():
        assert not any("overlay" in k for k in m.pax_headers), m.pax_headers


def test_special_files_links_owners_and_xattrs(tmp_path: Path) -> None:
    up = tmp_path / "upper"
    (up / "d").mkdir(parents=True)
    (up / "d" / "f").write_text("data")
    os.chown(up / "d" / "f", 1234, 5678)
    os.chmod(up / "d" / "f", 0o4750)
    os.link(up / "d" / "f", up / "d" / "h")
    os.symlink("../d/f", up / "s")
    os.mknod(up / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(up / "blk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    os.mkfifo(up / "fifo", 0o644)
    os.setxattr(up / "d" / "f", "user.note", b"hello")
    os.setxattr(up / "d" / "f", "trusted.overlay.origin", b"x")
    long_name = "n" * 150
    (up / "d" / long_name).write_text("long")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(up / "sock"))
    sock.close()
    buf = io.BytesIO()
    write_layer(up, buf)
    got = {m.name: m for m in members(buf.getvalue())}
    assert "sock" not in got
    f = got["d/f"]
    assert (f.uid, f.gid, f.mode, f.uname, f.gname, f.size) == (1234, 5678, 0o4750, "", "", 4)
    assert f.pax_headers.get("SCHILY.xattr.user.note") == "hello"
    assert "SCHILY.xattr.trusted.overlay.origin" not in f.pax_headers
    assert got["d/h"].islnk() and got["d/h"].linkname == "d/f"
    assert got["s"].issym() and got["s"].linkname == "../d/f"
    assert got["null"].ischr() and (got["null"].devmajor, got["null"].devminor) == (1, 3)
    assert got["blk"].isblk() and (got["blk"].devmajor, got["blk"].devminor) == (7, 0)
    assert got["fifo"].isfifo()
    assert got[f"d/{long_name}"].size == 4
    # No access/change times anywhere; only long names need PAX records.
    for m in got.values():
        assert not {"atime", "ctime"} & set(m.pax_headers)
    # GNU tar reads it too (hard link, long name).
    (tmp_path / "layer.tar").write_bytes(buf.getvalue())
    listing = subprocess.run(["tar", "-tvf", str(tmp_path / "layer.tar")], check=True,
                             capture_output=True, text=True).stdout
    assert "d/h link to d/f" in listing and long_name in listing


def test_metacopy_or_redirect_uppers_are_refused(tmp_path: Path) -> None:
    from isula_build.errors import InternalError
    up = tmp_path / "upper"
    up.mkdir()
    (up / "f").write_text("")
    os.setxattr(up / "f", "trusted.overlay.metacopy", b"")
    with pytest.raises(InternalError, match="metacopy=off"):
        write_layer(up, io.BytesIO())
    os.removexattr(up / "f", "trusted.overlay.metacopy")
    (up / "moved").mkdir()
    os.setxattr(up / "moved", "trusted.overlay.redirect", b"/old")
    with pytest.raises(InternalError, match="redirect_dir=off"):
        write_layer(up, io.BytesIO())


def _make_tree(top: Path, umask: int, reverse: bool) -> None:
    old = os.umask(umask)
    try:
        entries = [("dir", None), ("dir/sub", None), ("dir/sub/file", b"x" * 3000),
                   ("a.txt", b"a"), ("dir/z", b"z")]
        if reverse:
            entries = entries[:2] + entries[2:][::-1]
        top.mkdir()
        for name, data in entries:
            p = top / name
            if data is None:
                p.mkdir()
                os.chmod(p, 0o755)
            else:
                p.write_bytes(data)
                os.chmod(p, 0o644)
        os.symlink("dir/z", top / "link")
        now = time.time()
        for p in [*top.rglob("*")]:
            os.utime(p, (now, now), follow_symlinks=False)
    finally:
        os.umask(old)


def test_identical_trees_give_identical_bytes_with_mtime(tmp_path: Path) -> None:
    _make_tree(tmp_path / "one", 0o077, reverse=False)
    time.sleep(1.1)
    _make_tree(tmp_path / "two", 0o002, reverse=True)
    outs = []
    for name, umask in (("one", 0o022), ("two", 0o077)):
        old = os.umask(umask)
        try:
            buf = io.BytesIO()
            stats = write_layer(tmp_path / name, buf, mtime=1577836800)
        finally:
            os.umask(old)
        outs.append((buf.getvalue(), stats))
    assert outs[0][0] == outs[1][0]
    assert outs[0][1] == outs[1][1]
    assert all(m.mtime == 1577836800 for m in members(outs[0][0]))
    # Without a fixed mtime the trees' real (different) times show: the mtime option matters.
    one, two = io.BytesIO(), io.BytesIO()
    write_layer(tmp_path / "one", one)
    write_layer(tmp_path / "two", two)
    assert one.getvalue() != two.getvalue()


def _docker_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def test_docker_applies_the_layer_whiteouts(tmp_path: Path, busybox_tar: Path, docker: str) -> None:
    """Our layer over the busybox layer, loaded into docker: deletions and opaque dirs hold."""
    import json

    dirs = {n: tmp_path / n for n in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir()
    subprocess.run(["tar", "-xf", str(busybox_tar), "-C", str(dirs["lower"])], check=True)
    opts = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(dirs["merged"])], check=True)
    try:
        merged = dirs["merged"]
        (merged / "bin" / "vi").unlink()
        for f in (merged / "etc").iterdir():
            f.unlink()
        (merged / "etc").rmdir()
        (merged / "etc").mkdir()
        (merged / "etc" / "passwd").write_text("root:x:0:0:new:/root:/bin/sh\n")
        os.link(merged / "etc" / "passwd", merged / "etc" / "passwd-")
    finally:
        subprocess.run(["umount", str(dirs["merged"])], check=True)
    layer = tmp_path / "layer.tar"
    with open(layer, "wb") as out:
        stats = write_layer(dirs["upper"], out, mtime=1577836800)
    base_id = "sha256:" + hashlib.sha256(busybox_tar.read_bytes()).hexdigest()
    config = json.dumps({
        "architecture": _docker_arch(), "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [base_id, stats.diff_id]},
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    tag = "isb-test-commit-layer:latest"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": ["base.tar", "layer.tar"]}]).encode()
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(busybox_tar, "base.tar")
        tar.add(layer, "layer.tar")
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    subprocess.run([docker, "load", "-i", str(archive)], check=True, capture_output=True)
    try:
        run = subprocess.run(
            [docker, "run", "--rm", "--network", "none", tag, "sh", "-c",
             "ls /etc; cat /etc/passwd; test -e /bin/vi && echo vi-present; "
             "stat -c %i /etc/passwd /etc/passwd- | sort -u | wc -l"],
            check=True, capture_output=True, text=True)
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True)
    lines = run.stdout.split()
    # docker adds hostname, hosts and resolv.conf; the old /etc/group is hidden (opaque dir).
    assert "passwd" in lines and "passwd-" in lines and "group" not in lines
    assert "root:x:0:0:new:/root:/bin/sh" in run.stdout
    assert "vi-present" not in run.stdout          # the whiteout removed /bin/vi
    assert lines[-1] == "1"                        # the hard link survived as one inode
