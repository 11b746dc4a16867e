"""image/tarsafety.py: the streaming tar checker refuses every way out of the layer root."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given, settings, strategies as st

from isula_build.errors import InvalidArgument
from isula_build.image.tarsafety import EntryChecker, TarStreamChecker, _byte_sum


def entry(name: str, type_: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
          pax: dict[str, str] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = type_, linkname, len(data)
    if type_ in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    info.pax_headers = pax or {}
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def check(data: bytes, chunk: int = 1 << 20) -> TarStreamChecker:
    checker = TarStreamChecker()
    for i in range(0, len(data), chunk):
        checker.feed(memoryview(data)[i:i + chunk])
    checker.finish()
    return checker


SAFE = make_tar(
    entry("./", tarfile.DIRTYPE),
    entry("etc", tarfile.DIRTYPE),
    entry("./etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),
    entry("bin", tarfile.DIRTYPE),
    entry("bin/busybox", data=b"\x7fELF" + bytes(3000)),
    entry("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox"),  # absolute targets are normal
    entry("bin/ls", tarfile.SYMTYPE, linkname="busybox"),
    entry("usr/bin/env", tarfile.SYMTYPE, linkname="../../bin/busybox"),  # stays at the root
    # Climbing above the root: the kernel resolves "/.." to "/", so this is /bin, as docker has it.
    entry("usr/bin/climb", tarfile.SYMTYPE, linkname="../../../../bin"),
    entry("bin/cat", tarfile.LNKTYPE, linkname="bin/busybox"),
    entry("bin/a/../true", tarfile.LNKTYPE, linkname="./bin/../bin/busybox"),
    entry("dev/null", tarfile.CHRTYPE),
    entry("dev/sda", tarfile.BLKTYPE),
    entry("run/fifo", tarfile.FIFOTYPE),
    entry("etc/.wh.gone"),
    entry("etc/.wh..wh..opq"),
    entry("d" * 150 + "/" + "long-name-" * 20, data=b"pax path"),
    entry("bin/sh", data=b"a file replacing the symlink"),
    entry("bin/sh/x", data=b"no longer through a symlink"),
)


@pytest.mark.parametrize("chunk", [1 << 20, 512, 1, 7, 511, 513, 10240])
def test_safe_tar_passes_in_any_chunking(chunk: int) -> None:
    checker = check(SAFE, chunk)
    assert checker.offset == len(SAFE)


def test_gnu_format_long_names_pass() -> None:
    data = make_tar(entry("x" * 200, data=b"gnu long name"),
                    entry("l" * 150, tarfile.SYMTYPE, linkname="/" + "t" * 150), fmt=tarfile.GNU_FORMAT)
    check(data, 100)


def test_empty_layer_of_two_zero_blocks() -> None:
    check(bytes(1024))


def test_trailing_bytes_after_the_end_marker_are_ignored() -> None:
    check(SAFE + b"garbage that no extractor reads")


def refused(data: bytes) -> str:
    messages = set()
    for chunk in (1 << 20, 1, 100, 512):
        with pytest.raises(InvalidArgument) as info:
            check(data, chunk)
        messages.add(str(info.value))
    assert len(messages) == 1, messages  # the verdict does not depend on how bytes arrive
    return messages.pop()


@pytest.mark.parametrize("entries, name, reason", [
    ([entry("/etc/passwd")], "/etc/passwd", "absolute path"),
    ([entry("../evil")], "../evil", "climbs out"),
    ([entry("a/../../evil")], "a/../../evil", "climbs out"),
    ([entry("./a/./../..", tarfile.DIRTYPE)], "./a/./../..", "climbs out"),
    ([entry("x", tarfile.LNKTYPE, linkname="/etc/shadow")], "x", "is absolute"),
    ([entry("x", tarfile.LNKTYPE, linkname="../etc/shadow")], "x", "climbs out"),
    ([entry("a/x", tarfile.LNKTYPE, linkname="a/../../etc/shadow")], "a/x", "climbs out"),
    ([entry("x", tarfile.LNKTYPE, linkname="")], "x", "without a target"),
    ([entry("x", tarfile.SYMTYPE, linkname="")], "x", "without a target"),
    ([entry("link", tarfile.SYMTYPE, linkname="/etc"), entry("link/passwd", data=b"owned")],
     "link/passwd", 'through the symlink "link"'),
    ([entry("a/link", tarfile.SYMTYPE, linkname="."), entry("a/link/b/c", data=b"x")],
     "a/link/b/c", 'through the symlink "a/link"'),
    ([entry("link", tarfile.SYMTYPE, linkname="/etc"), entry("h", tarfile.LNKTYPE, linkname="link/shadow")],
     "h", 'through the symlink "link"'),
    ([entry("etc/./link", tarfile.SYMTYPE, linkname="/"), entry("etc/link/x", tarfile.DIRTYPE)],
     "etc/link/x", 'through the symlink "etc/link"'),
    ([entry(".", tarfile.REGTYPE)], ".", "only a directory"),
    ([entry("x", b"V")], "x", "unsupported entry type"),
    ([entry("benign", pax={"path": "../evil"})], "../evil", "climbs out"),
    ([entry("../" + "x" * 200)], "../" + "x" * 200, "climbs out"),
    ([entry("sparse", pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})], "sparse",
     "sparse"),
])
def test_unsafe_entries_are_refused(entries: list, name: str, reason: str) -> None:
    message = refused(make_tar(*entries))
    assert f'"{name}"' in message
    assert reason in message


@pytest.mark.parametrize("target", ["../../../etc", "../../../../bin", "b/../../../../etc",
                                    "../../..", "../" * 40 + "x" * 150])
def test_symlink_targets_climbing_above_the_root_are_accepted(target: str) -> None:
    """A symlink's target is only data, resolved inside the container ("/.." is "/"), so a
    target climbing above the root is accepted, as docker accepts it; what stays refused is
    writing through the link, and names that climb out themselves."""
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        check(make_tar(entry("a/b/link", tarfile.SYMTYPE, linkname=target), fmt=fmt), 100)
    assert 'through the symlink "a/b/link"' in refused(make_tar(
        entry("a/b/link", tarfile.SYMTYPE, linkname=target), entry("a/b/link/x", data=b"x")))
    assert 'through the symlink "a/b/link"' in refused(make_tar(
        entry("a/b/link", tarfile.SYMTYPE, linkname=target),
        entry("h", tarfile.LNKTYPE, linkname="a/b/link/passwd")))
    assert "climbs out" in refused(make_tar(
        entry("a/b/link", tarfile.SYMTYPE, linkname=target), entry("a/b/../../../x", data=b"x")))
    assert "climbs out" in refused(make_tar(entry("h", tarfile.LNKTYPE, linkname=target)))


def test_a_hard_link_to_a_symlink_is_a_symlink() -> None:
    """os.link of a symlink makes a second symlink: nothing may be written through it either."""
    for target in ("/etc", "../../.."):
        link, hard = entry("s", tarfile.SYMTYPE, linkname=target), entry("h", tarfile.LNKTYPE, linkname="s")
        check(make_tar(link, hard))
        message = refused(make_tar(link, hard, entry("h/passwd", data=b"owned")))
        assert '"h/passwd"' in message and 'through the symlink "h"' in message
        message = refused(make_tar(link, hard, entry("h2", tarfile.LNKTYPE, linkname="h/shadow")))
        assert 'through the symlink "h"' in message
    # The link stays a symlink when its target is replaced afterwards.
    assert 'through the symlink "h"' in refused(make_tar(
        entry("s", tarfile.SYMTYPE, linkname="/etc"), entry("h", tarfile.LNKTYPE, linkname="s"),
        entry("s", tarfile.DIRTYPE), entry("h/x", data=b"x")))
    # A hard link replacing a symlink is no symlink any more.
    check(make_tar(entry("f", data=b"f"), entry("s", tarfile.SYMTYPE, linkname="/etc"),
                   entry("s", tarfile.LNKTYPE, linkname="f"), entry("d", tarfile.DIRTYPE)))


def test_gnu_long_name_escape_is_refused() -> None:
    name = "../" + "y" * 200
    message = refused(make_tar(entry(name), fmt=tarfile.GNU_FORMAT))
    assert f'"{name}"' in message and "climbs out" in message


def test_device_nodes_and_fifos_are_accepted() -> None:
    # Every layer may hold them, an imported root filesystem's /dev included (as docker import).
    check(make_tar(entry("dev", tarfile.DIRTYPE), entry("dev/null", tarfile.CHRTYPE),
                   entry("dev/loop0", tarfile.BLKTYPE), entry("dev/initctl", tarfile.FIFOTYPE)))
    # The path rules still apply to them.
    assert "climbs out" in refused(make_tar(entry("../null", tarfile.CHRTYPE)))
    assert "through the symlink" in refused(make_tar(entry("dev", tarfile.SYMTYPE, linkname="/dev"),
                                                     entry("dev/sda", tarfile.BLKTYPE)))


def test_not_a_tar() -> None:
    assert "not a tar" in refused(b"this is plain text, not a tar archive at all" * 20)
    assert "empty" in refused(b"")


def test_corrupt_header_later_in_the_archive() -> None:
    data = bytearray(SAFE)
    data[1024 + 150] ^= 0xFF  # a checksum byte of a later header
    assert "corrupt tar" in refused(bytes(data))


@pytest.mark.parametrize("cut", [100, 512, 700, 1536, 2100, 2560])
def test_truncated_archives(cut: int) -> None:
    # a: header 0-512, data 512-1536; b: header 1536-2048, data 2048-2560; end marker from 2560
    data = make_tar(entry("a", data=b"x" * 1000), entry("b", data=b"y" * 100))
    assert data[2560:3584] == bytes(1024)
    assert "truncated" in refused(data[:cut])


def test_missing_end_marker() -> None:
    data = make_tar(entry("a", data=b"x" * 10))
    assert "truncated" in refused(data[:1024])  # one header and its data, no zero block


def test_oversized_pax_header() -> None:
    data = make_tar(entry("a", pax={"comment": "z" * (2 << 20)}))
    assert "extended header" in refused(data)


def test_entry_checker_returns_normalized_paths() -> None:
    checker = EntryChecker()
    assert checker.check("./etc//passwd", tarfile.REGTYPE) == "etc/passwd"
    assert checker.check("a/b/../c", tarfile.REGTYPE) == "a/c"
    assert checker.check("./", tarfile.DIRTYPE) == ""
    assert checker.hardlink_target("./x/../etc/passwd") == "etc/passwd"


NAMES = st.lists(st.sampled_from(["a", "b", "..", ".", "c"]), min_size=1, max_size=5).map("/".join)


@settings(max_examples=300)
@given(st.lists(st.tuples(NAMES, st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                                                  tarfile.LNKTYPE]),
                          st.sampled_from(["/x", "a", "../a", "../../a", ".", "a/b", "b"])),
                max_size=6))
def test_accepted_paths_never_leave_the_root(entries: list[tuple[str, bytes, str]]) -> None:
    """Whatever EntryChecker accepts resolves inside the root, symlinks made so far (and hard
    links to them, which are symlinks too) included."""
    checker = EntryChecker()
    links: dict[str, str] = {}
    for name, type_, target in entries:
        try:
            path = checker.check(name, type_, target)
        except InvalidArgument:
            continue
        parts = path.split("/") if path else []
        assert ".." not in parts and "." not in parts
        for i in range(1, len(parts)):
            assert "/".join(parts[:i]) not in links
        if type_ == tarfile.LNKTYPE:
            hard_target = checker.hardlink_target(target)
            assert ".." not in hard_target.split("/")
            for i in range(1, len(hard_target.split("/"))):
                assert "/".join(hard_target.split("/")[:i]) not in links
        if type_ == tarfile.SYMTYPE:
            links[path] = target
        elif type_ == tarfile.LNKTYPE and checker.hardlink_target(target) in links:
            links[path] = links[checker.hardlink_target(target)]
        else:
            links.pop(path, None)


@given(st.binary(min_size=512, max_size=512))
@settings(max_examples=300, deadline=None)
def test_the_fast_header_sum_is_the_byte_sum(block: bytes) -> None:
    assert _byte_sum(block) == sum(block)


def test_the_fast_header_sum_at_its_extremes() -> None:
    for block in (bytes(512), b"\xff" * 512, b"\xff" * 256 + bytes(256), bytes(256) + b"\xff" * 256):
        assert _byte_sum(block) == sum(block)


def test_a_header_summed_with_signed_chars_is_accepted_and_a_wrong_sum_refused() -> None:
    # Old tars summed the bytes as signed chars; tarfile takes both, so the checker does.
    info = tarfile.TarInfo("caf\xe9")
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT, "latin-1", "strict"))
    signed = sum(b - 256 if b >= 128 else b for b in block[:148] + b" " * 8 + block[156:])
    for checksum, accepted in ((signed, True), (signed + 1, False)):
        block[148:156] = b"%06o\0 " % checksum
        checker = TarStreamChecker()
        if accepted:
            checker.feed(bytes(block) + bytes(1024))
            checker.finish()
        else:
            with pytest.raises(InvalidArgument, match="bad header checksum"):
                checker.feed(bytes(block) + bytes(1024))
