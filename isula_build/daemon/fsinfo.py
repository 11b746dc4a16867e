"""File system facts the daemon needs: the statfs magic of a path, and its name.

Python's os.statvfs does not return f_type, so statfs(2) is called through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

TMPFS_MAGIC = 0x01021994

# Names as containers/storage reports them for "Backing Filesystem" (the original's Info).
_FS_NAMES = {
    0xEF53: "extfs",
    0x58465342: "xfs",
    0x9123683E: "btrfs",
    TMPFS_MAGIC: "tmpfs",
    0x794C7630: "overlayfs",
    0x6969: "nfs",
    0x2FC12FC1: "zfs",
    0x65735546: "fuse",
    0x5346544E: "ntfs",
    0x4D44: "msdos",
    0x3153464A: "jfs",
    0x52654973: "reiserfs",
    0x012FF7B4: "xenix",
    0xF2F52010: "f2fs",
    0x28CD3D45: "cramfs",
    0x73717368: "squashfs",
    0x858458F6: "ramfs",
    0x6E736673: "nsfs",
    0xCA451A4E: "bcachefs",
}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
# struct statfs starts with f_type (a C long on every Linux ABI we run on); 256 bytes is larger
# than the whole struct on any of them.
_STATFS_BUFFER = 256


def fs_magic(path: Path) -> int:
    buf = ctypes.create_string_buffer(_STATFS_BUFFER)
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def fs_name(path: Path) -> str:
    magic = fs_magic(path)
    return _FS_NAMES.get(magic, "<unknown>")
