"""Turns a finished stage's overlayfs upper directory into a layer tar.

overlayfs records deletions as character devices 0:0 and replaced directories as directories with
the xattr trusted.overlay.opaque=y; image layers say the same with `.wh.NAME` and `.wh..wh..opq`
entries (the OCI image spec's whiteouts, as docker's overlay driver writes them).

The tar is reproducible: entries in sorted order (parents first), numeric owners without user or
group names, no access or change times, and with `mtime` every timestamp set to it, so identical
trees give identical bytes whatever the umask or the day.  Long names use PAX headers, as the
layer tars docker and BuildKit write (containerd's archive package) do.  Output streams straight
to `out` while it is hashed, so no layer is ever held in memory.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isula_build.errors import InternalError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
# overlayfs bookkeeping and host security labels describe the host, not the image.
_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")


@dataclass(frozen=True)
class LayerStats:
    diff_id: str        # "sha256:<hex>" of the uncompressed tar
    size: int           # bytes written


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def _walk(top: Path, rel: str = "") -> Iterator[tuple[str, Path, os.stat_result]]:
    """(relative name, path, lstat) of everything under `top`, names sorted, parents first."""
    for name in sorted(os.listdir(top)):
        path = top / name
        st = os.lstat(path)
        rel_name = f"{rel}/{name}" if rel else name
        yield rel_name, path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path, rel_name)


def _read_xattrs(path: Path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found: dict[str, bytes] = {}
    for name in sorted(names):
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return found


def _pax_xattrs(xattrs: dict[str, bytes]) -> dict[str, str]:
    # tarfile writes str values back as the original bytes (hdrcharset=BINARY when needed).
    return {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
            for k, v in xattrs.items() if not k.startswith(_SKIPPED_XATTR_PREFIXES)}


def _check_overlay_features(name: str, xattrs: dict[str, bytes]) -> None:
    """Refuses uppers whose content lives partly in the lower layers."""
    for prefix in ("trusted.overlay.", "user.overlay."):
        if prefix + "metacopy" in xattrs:
            raise InternalError(f"cannot commit {name}: overlay metacopy is on; mount the stage "
                                f"with metacopy=off")
        if prefix + "redirect" in xattrs:
            raise InternalError(f"cannot commit {name}: overlay redirect_dir is on; mount the "
                                f"stage with redirect_dir=off")


def _base_info(name: str, st: os.stat_result, mtime: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = st.st_uid
    info.gid = st.st_gid
    info.uname = ""
    info.gname = ""
    # Whole seconds: a fractional mtime would make tarfile add a PAX record per entry.
    info.mtime = mtime if mtime is not None else int(st.st_mtime)
    return info


def write_layer(upper: Path, out: BinaryIO, *, mtime: int | None = None) -> LayerStats:
    """Writes the layer tar of the overlay upper directory `upper` to `out`."""
    writer = _HashingWriter(out)
    links: dict[tuple[int, int], str] = {}
    # tarfile only ever calls write() on the stream it is given in "w|" mode.
    stream: BinaryIO = writer  # type: ignore[assignment]
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path, st in _walk(upper):
            info = _base_info(name, st, mtime)
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:
                head, _, base = name.rpartition("/")
                info.name = f"{head}/{WHITEOUT_PREFIX}{base}" if head else WHITEOUT_PREFIX + base
                info.type = tarfile.REGTYPE
                info.mode = 0o600
                tar.addfile(info)
                continue
            if stat.S_ISSOCK(mode):
                continue  # sockets live only while their server runs; docker drops them too
            if not stat.S_ISDIR(mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    info.type = tarfile.LNKTYPE
                    info.linkname = links[key]
                    tar.addfile(info)
                    continue
                links[key] = name
            xattrs = _read_xattrs(path)
            _check_overlay_features(name, xattrs)
            info.pax_headers = _pax_xattrs(xattrs)
            if stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                info.name = name + "/"
                tar.addfile(info)
                if any(xattrs.get(k) == b"y" for k in _OPAQUE_XATTRS):
                    marker = _base_info(f"{name}/{OPAQUE_MARKER}", st, mtime)
                    marker.type = tarfile.REGTYPE
                    tar.addfile(marker)
            elif stat.S_ISREG(mode):
                info.type = tarfile.REGTYPE
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            elif stat.S_ISLNK(mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                info.devmajor = os.major(st.st_rdev)
                info.devminor = os.minor(st.st_rdev)
                tar.addfile(info)
            elif stat.S_ISFIFO(mode):
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
    return LayerStats(diff_id="sha256:" + writer.digest.hexdigest(), size=writer.size)
