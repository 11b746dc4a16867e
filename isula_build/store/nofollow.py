"""Reaching a directory inside a tree without following a symlink on the way.

Extractors set a directory's owner, mode and times after its entries are written (writing them
would change the times; a read-only mode would stop them). By then a later entry of the same tar
may have replaced that directory, or one of its parents, with a symlink to /etc or to
../../../.., which the host kernel would follow out of the tree. Opening each component with
O_NOFOLLOW from the top and changing the directory through the descriptor can only reach what
is inside the tree; a directory that is gone is skipped, its metadata went with it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What opening a component that is no directory (any more) gives: missing, a file, a symlink.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


@contextmanager
def open_dir_nofollow(top: Path, rel: str) -> Iterator[int | None]:
    """A descriptor of the directory `rel` ("a/b", "" for `top` itself) under `top`, reached
    without following any symlink; None when a component is not a directory now. `rel` must
    be normalized: ".." is refused (ValueError)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"not a normalized relative path: {rel!r}")
    fd: int | None = os.open(top, _DIR_FLAGS)
    try:
        for part in parts:
            assert fd is not None
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in _GONE:
                    raise
                os.close(fd)
                fd = None
                break
            os.close(fd)
            fd = child
        yield fd
    finally:
        if fd is not None:
            os.close(fd)
