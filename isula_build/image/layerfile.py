"""A layer tar file this daemon wrote itself and verified while writing it.

A build's commit (builder/layertar.py) hashes every byte of the layer tar and runs it through
the store's TarStreamChecker as it writes the file. Handing those facts along with the file —
explicitly, from the commit through the copy's source and destination to the store's writer —
lets the store link the file in instead of reading, hashing and checking it a second time.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from isula_build.image.digest import is_digest


def _stamp(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@dataclass(frozen=True)
class VerifiedLayerFile:
    """The regular file at `path` holds exactly `size` bytes of a layer tar whose sha256 is
    `diff_id` and which TarStreamChecker accepted.

    `stamp` is the file as its writer left it (device, inode, size, mtime, ctime). Any later
    change — a write, truncate, chmod, link or rename — moves its ctime, so only a file that
    still matches is the one verified; one that does not is read again like any stream.
    """

    path: Path
    diff_id: str
    size: int
    stamp: tuple[int, int, int, int, int]

    @classmethod
    def of_written_file(cls, fd: int, path: Path, diff_id: str,
                        size: int) -> VerifiedLayerFile | None:
        """The record for the file open as fd at path, written and flushed by the caller, which
        hashed and checked its bytes; None when it is not a regular file of exactly that size."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size or not is_digest(diff_id):
            return None
        return cls(path, diff_id, size, _stamp(st))

    def unchanged(self, st: os.stat_result) -> bool:
        """Whether `st` (an fstat of the file opened at path) is the file as it was verified."""
        return stat.S_ISREG(st.st_mode) and _stamp(st) == self.stamp
