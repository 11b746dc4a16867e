"""COPY/ADD on real directories, as root (so owners really change)."""

from __future__ import annotations

import email.utils
import http.server
import io
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from isula_build.builder.copier import copy_into_root
from isula_build.errors import InvalidArgument, NotFound

MTIME = 981173106  # 2001-02-03 04:05:06 UTC


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small image root: passwd/group, /tmp, and /img/etclink -> /etc (absolute)."""
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
    (r / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\napp:x:1000:\n")
    (r / "tmp").mkdir()
    (r / "img").mkdir()
    os.symlink("/etc", r / "img" / "etclink")
    return r


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    """A build context with files, a directory, symlinks and a hard link."""
    c = tmp_path / "context"
    (c / "d" / "sub").mkdir(parents=True)
    (c / "a").write_text("A")
    (c / "b").write_text("B")
    (c / "d" / "f1").write_text("f1")
    (c / "d" / "sub" / "g").write_text("g")
    os.chmod(c / "d" / "f1", 0o640)
    os.chmod(c / "d", 0o700)
    os.chmod(c / "d" / "sub", 0o750)
    os.symlink("f1", c / "d" / "lnk")
    os.link(c / "a", c / "d" / "hard-a")
    for p in (c / "a", c / "d" / "f1"):
        os.utime(p, (MTIME, MTIME))
    os.chown(c / "a", 4321, 4321)
    return c


def mode_owner(p: Path) -> tuple[int, int, int]:
    st = os.lstat(p)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def test_file_into_directory_keeps_mode_and_mtime_and_owner_becomes_root(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["a", "d/f1"], "/x/y/", source_root=ctx)
    assert (root / "x" / "y" / "a").read_text() == "A"
    assert mode_owner(root / "x" / "y" / "a") == (0o644, 0, 0)
    assert mode_owner(root / "x" / "y" / "f1") == (0o640, 0, 0)
    assert os.stat(root / "x" / "y" / "f1").st_mtime == MTIME
    for d in (root / "x", root / "x" / "y"):
        assert mode_owner(d) == (0o755, 0, 0)


def test_destination_without_slash_is_the_file_unless_a_directory(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["a"], "/renamed", source_root=ctx)
    assert (root / "renamed").read_text() == "A"
    copy_into_root(root, ["a"], "/tmp", source_root=ctx)
    assert (root / "tmp" / "a").read_text() == "A"
    (root / "renamed").write_text("old")
    copy_into_root(root, ["b"], "/renamed", source_root=ctx)
    assert (root / "renamed").read_text() == "B"


def test_relative_destination_is_under_workdir(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["a"], "sub/", source_root=ctx, workdir="/app")
    copy_into_root(root, ["b"], ".", source_root=ctx, workdir="/app")
    copy_into_root(root, ["b"], "named", source_root=ctx, workdir="/app")
    assert (root / "app" / "sub" / "a").read_text() == "A"
    assert (root / "app" / "b").read_text() == "B"
    assert (root / "app" / "named").read_text() == "B"


def test_directory_source_copies_its_contents(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["d"], "/cd", source_root=ctx)
    cd = root / "cd"
    assert sorted(os.listdir(cd)) == ["f1", "hard-a", "lnk", "sub"]
    # Checked with docker: the destination directory is created 0755 even though d is 0700,
    # while directories inside keep their modes.
    assert mode_owner(cd) == (0o755, 0, 0)
    assert mode_owner(cd / "sub") == (0o750, 0, 0)
    assert os.readlink(cd / "lnk") == "f1"
    assert (cd / "sub" / "g").read_text() == "g"


def test_existing_destination_directory_keeps_its_metadata(root: Path, ctx: Path) -> None:
    (root / "exist").mkdir(mode=0o750)
    os.chown(root / "exist", 7, 7)
    copy_into_root(root, ["d"], "/exist", source_root=ctx)
    assert mode_owner(root / "exist") == (0o750, 7, 7)
    assert (root / "exist" / "f1").exists()


def test_existing_nested_directories_take_the_source_metadata(root: Path, ctx: Path) -> None:
    # BuildKit: inside a directory copy, an existing directory gets the source directory's
    # mode and owner (the --chown owner with --chown); the destination itself keeps its own.
    (root / "exist" / "sub").mkdir(parents=True, mode=0o700)
    os.chmod(root / "exist", 0o750)
    os.chown(root / "exist", 7, 7)
    os.chmod(root / "exist" / "sub", 0o700)
    os.chown(root / "exist" / "sub", 65534, 65534)
    (root / "exist" / "sub" / "old").write_text("old")
    copy_into_root(root, ["d"], "/exist", source_root=ctx)
    assert mode_owner(root / "exist") == (0o750, 7, 7)
    assert mode_owner(root / "exist" / "sub") == (0o750, 0, 0)
    assert (root / "exist" / "sub" / "old").read_text() == "old"
    os.chown(root / "exist" / "sub", 65534, 65534)
    copy_into_root(root, ["d"], "/exist", source_root=ctx, chown="app", chmod="0711")
    assert mode_owner(root / "exist" / "sub") == (0o711, 1000, 1000)


def test_file_copied_onto_a_symlink_writes_through_it(root: Path, ctx: Path) -> None:
    (root / "bin").mkdir()
    (root / "bin" / "busybox").write_text("binary")
    os.chmod(root / "bin" / "busybox", 0o755)
    os.symlink("busybox", root / "bin" / "ls")
    os.symlink("busybox", root / "bin" / "cat")
    os.symlink("/nowhere/deep/file", root / "bin" / "dangling")
    copy_into_root(root, ["d/f1"], "/bin/ls", source_root=ctx)
    assert os.readlink(root / "bin" / "ls") == "busybox"
    assert (root / "bin" / "busybox").read_text() == "f1"
    assert mode_owner(root / "bin" / "busybox") == (0o640, 0, 0)
    # A dangling link leads to its target's place inside the root, parents made.
    copy_into_root(root, ["a"], "/bin/dangling", source_root=ctx)
    assert (root / "nowhere" / "deep" / "file").read_text() == "A"
    # A destination ending in "/" names a directory: the entry there replaces the link.
    (ctx / "cat").write_text("cat")
    copy_into_root(root, ["cat"], "/bin/", source_root=ctx)
    assert not (root / "bin" / "cat").is_symlink()
    assert (root / "bin" / "cat").read_text() == "cat"
    assert (root / "bin" / "busybox").read_text() == "f1"


def test_named_symlink_source_is_followed(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["d/lnk"], "/explicit", source_root=ctx)
    assert not (root / "explicit").is_symlink()
    assert (root / "explicit").read_text() == "f1"
    assert mode_owner(root / "explicit") == (0o640, 0, 0)


def test_hard_links_in_one_instruction_stay_linked(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["."], "/all/", source_root=ctx)
    assert os.stat(root / "all" / "a").st_ino == os.stat(root / "all" / "d" / "hard-a").st_ino


def test_wildcards_follow_filepath_match(root: Path, ctx: Path) -> None:
    for name in ("a1.txt", "a2.txt", "b.txt", "c.md", "[x].txt"):
        (ctx / name).write_text(name)
    (ctx / "sub1").mkdir()
    (ctx / "sub1" / "y.txt").write_text("y")

    def names(pattern: str) -> list[str]:
        dest = root / "w" / pattern.replace("/", "_").replace("\\", "_")
        copy_into_root(root, [pattern], str(dest.relative_to(root)) + "/", source_root=ctx)
        return sorted(os.listdir(dest))

    assert names("a?.txt") == ["a1.txt", "a2.txt"]
    assert names("[ab]*.txt") == ["a1.txt", "a2.txt", "b.txt"]
    # Matched directories (d, sub1) contribute their contents.
    assert names("[^ab]*") == ["[x].txt", "c.md", "f1", "hard-a", "lnk", "sub", "y.txt"]
    assert names("*/y.txt") == ["y.txt"]
    assert names("\\[x].txt") == ["[x].txt"]
    with pytest.raises(NotFound, match="no source files"):
        copy_into_root(root, ["*.none"], "/w/", source_root=ctx)
    with pytest.raises(InvalidArgument, match="must be a directory and end with a /"):
        copy_into_root(root, ["a?.txt"], "/w/nodir", source_root=ctx)


def test_several_sources_need_a_directory_destination(root: Path, ctx: Path) -> None:
    with pytest.raises(InvalidArgument, match="more than one source file"):
        copy_into_root(root, ["a", "b"], "/dest", source_root=ctx)


def test_chmod_octal_and_symbolic(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["a", "d"], "/o/", source_root=ctx, chmod="0751")
    assert mode_owner(root / "o" / "a")[0] == 0o751
    assert mode_owner(root / "o" / "sub")[0] == 0o751
    copy_into_root(root, ["d"], "/s/", source_root=ctx, chmod="go=rX")
    assert mode_owner(root / "s" / "f1")[0] == 0o644     # no x anywhere: X adds none
    assert mode_owner(root / "s" / "sub")[0] == 0o755    # directories always get X
    copy_into_root(root, ["d/f1"], "/t", source_root=ctx, chmod="u+x,go=rX,o-r")
    assert mode_owner(root / "t")[0] == 0o751            # clauses apply in order, as chmod(1)
    with pytest.raises(InvalidArgument, match="invalid --chmod"):
        copy_into_root(root, ["a"], "/bad", source_root=ctx, chmod="0999")


def test_chown_by_name_and_number(root: Path, ctx: Path) -> None:
    copy_into_root(root, ["a"], "/p1/p2/", source_root=ctx, chown="app:staff")
    assert mode_owner(root / "p1" / "p2" / "a")[1:] == (1000, 50)
    # Checked with docker: parents the copy creates get the --chown owner.
    assert mode_owner(root / "p1")[1:] == (1000, 50)
    copy_into_root(root, ["a"], "/u", source_root=ctx, chown="app")
    assert mode_owner(root / "u")[1:] == (1000, 1000)
    copy_into_root(root, ["d"], "/n/", source_root=ctx, chown="1234:5678")
    assert mode_owner(root / "n" / "sub" / "g")[1:] == (1234, 5678)
    assert os.lstat(root / "n" / "lnk").st_uid == 1234
    with pytest.raises(InvalidArgument, match="can't find uid for user nosuch"):
        copy_into_root(root, ["a"], "/z", source_root=ctx, chown="nosuch")
    with pytest.raises(InvalidArgument, match="ids must be in range"):
        copy_into_root(root, ["a"], "/z", source_root=ctx, chown="1:99999999999")
    with pytest.raises(InvalidArgument, match="can't find gid for group nogroup"):
        copy_into_root(root, ["a"], "/z", source_root=ctx, chown="app:nogroup")


def test_destination_symlink_to_etc_stays_in_root(root: Path, ctx: Path) -> None:
    host_etc = os.stat("/etc")
    copy_into_root(root, ["a"], "/img/etclink/fromctx", source_root=ctx)
    copy_into_root(root, ["d"], "/img/etclink/dir/", source_root=ctx)
    (root / "etc" / "link-to-host").symlink_to("/etc/hostname")
    copy_into_root(root, ["b"], "/etc/link-to-host", source_root=ctx)
    assert (root / "etc" / "fromctx").read_text() == "A"
    assert (root / "etc" / "dir" / "f1").exists()
    # A file copied onto an existing symlink is written through it, as BuildKit does: the
    # link stays and its target, resolved inside the root, gets the content.
    assert os.readlink(root / "etc" / "link-to-host") == "/etc/hostname"
    assert (root / "etc" / "hostname").read_text() == "B"
    assert not os.path.lexists("/etc/fromctx") and not os.path.lexists("/etc/dir")
    assert os.stat("/etc").st_mtime_ns == host_etc.st_mtime_ns


def test_sources_cannot_escape_the_context(root: Path, ctx: Path, tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("secret")
    with pytest.raises(InvalidArgument, match="forbidden path outside the build context"):
        copy_into_root(root, ["../outside"], "/x", source_root=ctx)
    with pytest.raises(InvalidArgument, match="forbidden path"):
        copy_into_root(root, ["d/../../outside"], "/x", source_root=ctx)
    # A symlink leaving the context is resolved inside it, as if the context were "/".
    os.symlink("../../../../../outside", ctx / "esc")
    with pytest.raises(NotFound, match="file not found in build context"):
        copy_into_root(root, ["esc"], "/x", source_root=ctx)
    (ctx / "outside").write_text("inside")
    copy_into_root(root, ["esc"], "/x", source_root=ctx)
    assert (root / "x").read_text() == "inside"
    # Inside a copied directory the same link is copied as a link, never followed.
    os.symlink("/etc/shadow", ctx / "d" / "shadowlink")
    copy_into_root(root, ["d"], "/dd", source_root=ctx)
    assert os.readlink(root / "dd" / "shadowlink") == "/etc/shadow"


def test_dockerignore_callback(root: Path, ctx: Path) -> None:
    ignored = {"d/sub", "b"}
    copy_into_root(root, ["."], "/all/", source_root=ctx, ignored=ignored.__contains__)
    assert not (root / "all" / "b").exists()
    assert not (root / "all" / "d" / "sub").exists()
    assert (root / "all" / "d" / "f1").exists()
    with pytest.raises(NotFound, match="excluded by .dockerignore"):
        copy_into_root(root, ["b"], "/b", source_root=ctx, ignored=ignored.__contains__)


def test_dockerignore_exceptions_inside_an_ignored_directory(root: Path, ctx: Path) -> None:
    from isula_build.dockerfile.dockerignore import DockerignoreMatcher
    (ctx / "d" / "sub" / "keep").write_text("k")
    matcher = DockerignoreMatcher.from_text("d\n!d/sub/keep\n")
    copy_into_root(root, ["."], "/all/", source_root=ctx, ignored=matcher.ignored,
                   ignore_has_exceptions=matcher.has_exceptions)
    assert sorted(os.listdir(root / "all" / "d")) == ["sub"]
    assert os.listdir(root / "all" / "d" / "sub") == ["keep"]
    assert mode_owner(root / "all" / "d" / "sub") == (0o750, 0, 0)
    # Without the exception the directory is left out whole.
    plain = DockerignoreMatcher.from_text("d\n")
    copy_into_root(root, ["."], "/plain/", source_root=ctx, ignored=plain.ignored,
                   ignore_has_exceptions=plain.has_exceptions)
    assert not (root / "plain" / "d").exists()


def test_copy_from_another_root_keeps_owners(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "stage1"
    (other / "od").mkdir(parents=True)
    (other / "o").write_text("o")
    (other / "od" / "p").write_text("p")
    os.chown(other / "o", 1234, 5678)
    os.chown(other / "od" / "p", 44, 45)
    copy_into_root(root, ["/o"], "/o2", source_root=other, from_context=False)
    copy_into_root(root, ["/../od"], "/od2", source_root=other, from_context=False,
                   ignored=lambda _: True)  # no .dockerignore for --from
    assert mode_owner(root / "o2")[1:] == (1234, 5678)
    assert mode_owner(root / "od2")[1:] == (0, 0)
    assert mode_owner(root / "od2" / "p")[1:] == (44, 45)


def _tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(name: str, data: bytes | None = None, **attrs: object) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.mtime = MTIME
    info.mode = 0o640
    info.uid = info.gid = 77
    if data is not None:
        info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    return info, data


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_add_extracts_archives_detected_by_content(root: Path, ctx: Path, compression: str) -> None:
    entries = [_member("top/", type=tarfile.DIRTYPE, mode=0o711),
               _member("top/file", b"hello"),
               _member("top/link", type=tarfile.SYMTYPE, linkname="file"),
               _member("top/hard", type=tarfile.LNKTYPE, linkname="top/file")]
    with tarfile.open(ctx / "archive.bin", f"w:{compression}", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    # Checked with docker: --chown does not change what comes out of an archive.
    copy_into_root(root, ["archive.bin"], "/x", source_root=ctx, add=True, chown="app")
    assert mode_owner(root / "x") == (0o755, 1000, 1000)
    top = root / "x" / "top"
    assert (top / "file").read_text() == "hello"
    assert mode_owner(top) == (0o711, 77, 77)
    assert mode_owner(top / "file") == (0o640, 77, 77)
    assert os.stat(top / "file").st_mtime == MTIME
    assert os.stat(top).st_mtime == MTIME
    assert os.readlink(top / "link") == "file"
    assert os.stat(top / "hard").st_ino == os.stat(top / "file").st_ino
    # COPY never extracts.
    copy_into_root(root, ["archive.bin"], "/y", source_root=ctx)
    assert (root / "y").is_file()


def test_add_of_a_non_archive_copies_the_file(root: Path, ctx: Path) -> None:
    import gzip
    (ctx / "data.gz").write_bytes(gzip.compress(b"not a tar"))
    copy_into_root(root, ["data.gz"], "/opt/", source_root=ctx, add=True)
    assert gzip.decompress((root / "opt" / "data.gz").read_bytes()) == b"not a tar"


def test_add_archive_entries_are_confined_to_the_destination(root: Path, ctx: Path) -> None:
    (ctx / "evil.tar").write_bytes(_tar_bytes([
        _member("../../../escape", b"1"),
        _member("/abs", b"2"),
        _member("evil", type=tarfile.SYMTYPE, linkname="/etc"),
        _member("evil/pwned", b"3"),
        _member("up", type=tarfile.SYMTYPE, linkname="../../../../.."),
        _member("up/etc/pwned2", b"4"),
    ]))
    copy_into_root(root, ["evil.tar"], "/dest/", source_root=ctx, add=True)
    dest = root / "dest"
    assert (dest / "escape").read_text() == "1"
    assert (dest / "abs").read_text() == "2"
    assert (dest / "etc" / "pwned").read_text() == "3"
    assert (dest / "etc" / "pwned2").read_text() == "4"
    assert not (root / "etc" / "pwned").exists() and not (root / "escape").exists()
    assert not os.path.lexists("/etc/pwned") and not os.path.lexists("/etc/pwned2")
    (ctx / "hard.tar").write_bytes(_tar_bytes([
        _member("h", type=tarfile.LNKTYPE, linkname="../../etc/passwd")]))
    with pytest.raises(InvalidArgument, match="bad hard link"):
        copy_into_root(root, ["hard.tar"], "/dest2/", source_root=ctx, add=True)


@pytest.mark.parametrize("climbing", [False, True])
def test_add_archive_directory_metadata_never_follows_a_later_symlink(root: Path, ctx: Path,
                                                                      tmp_path: Path,
                                                                      climbing: bool) -> None:
    """A directory's mode and times are set after its entries; by then a later entry may have
    replaced it (or its parent) with a symlink, which must not be followed out of the root."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    for d in (outside, outside / "sub"):
        os.chmod(d, 0o700)
        os.utime(d, (MTIME, MTIME))
    target = "../" * 12 + str(outside).lstrip("/") if climbing else str(outside)
    (ctx / "swap.tar").write_bytes(_tar_bytes([
        _member("d", type=tarfile.DIRTYPE, mode=0o777, mtime=1),
        _member("d", type=tarfile.SYMTYPE, linkname=target),
        _member("p", type=tarfile.DIRTYPE),
        _member("p/sub", type=tarfile.DIRTYPE, mode=0o777, mtime=1),
        _member("p", type=tarfile.SYMTYPE, linkname=target)]))
    copy_into_root(root, ["swap.tar"], "/dest/", source_root=ctx, add=True)
    assert os.readlink(root / "dest" / "d") == target
    for d in (outside, outside / "sub"):
        st = os.stat(d)
        assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o700, MTIME)


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, dict[str, str]]] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, headers = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_add_url(root: Path, ctx: Path, http_base: str) -> None:
    last_modified = email.utils.formatdate(MTIME, usegmt=True)
    tar = _tar_bytes([_member("inside", b"x")])
    _Handler.routes = {
        "/dl/tool.bin": (b"tool", {"Last-Modified": last_modified}),
        "/get?id=1": (b"named", {"Content-Disposition": 'attachment; filename="../named.txt"'}),
        "/a.tar": (tar, {}),
        "/big": (b"x" * 5000, {}),
    }
    copy_into_root(root, [f"{http_base}/dl/tool.bin"], "/opt/", source_root=ctx, add=True)
    tool = root / "opt" / "tool.bin"
    assert tool.read_text() == "tool"
    assert mode_owner(tool) == (0o600, 0, 0)
    assert os.stat(tool).st_mtime == MTIME
    copy_into_root(root, [f"{http_base}/get?id=1"], "/opt/", source_root=ctx, add=True)
    assert (root / "opt" / "named.txt").read_text() == "named"
    copy_into_root(root, [f"{http_base}/a.tar"], "/opt/exact", source_root=ctx, add=True,
                   chmod="755", chown="app")
    assert (root / "opt" / "exact").read_bytes() == tar     # URLs are never extracted
    assert mode_owner(root / "opt" / "exact") == (0o755, 1000, 1000)
    from isula_build.errors import ResourceExhausted
    with pytest.raises(ResourceExhausted, match="limit"):
        copy_into_root(root, [f"{http_base}/big"], "/opt/", source_root=ctx, add=True,
                       fetch_limit=1000)
    with pytest.raises(InvalidArgument, match="404"):
        copy_into_root(root, [f"{http_base}/missing"], "/opt/", source_root=ctx, add=True)


def test_digest_follows_content_and_mode_not_mtime(tmp_path: Path, ctx: Path) -> None:
    def digest() -> str:
        r = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        r.mkdir()
        return copy_into_root(r, ["."], "/app/", source_root=ctx)

    first = digest()
    assert first.startswith("sha256:") and len(first) == 71
    assert digest() == first
    os.utime(ctx / "d" / "f1", (1, 1))
    assert digest() == first
    (ctx / "d" / "f1").write_text("changed")
    changed = digest()
    assert changed != first
    os.chmod(ctx / "d" / "f1", 0o600)
    assert digest() not in (first, changed)
