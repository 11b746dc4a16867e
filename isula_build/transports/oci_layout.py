"""An OCI image layout directory (oci-layout, index.json, blobs/sha256/…), read in place.

The oci-archive reader does the work: a LayoutIndex gives it the directory's files as an archive
index gives it a tar's members, so both check every blob the same way. Names are confined to
the directory: `..` is normalised away and a path whose symbolic links lead out of the layout
is refused. Used by builds for `--build-context NAME=oci-layout://PATH[:TAG]`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from isula_build.errors import InvalidArgument, NotFound
from isula_build.image.manifest import REF_NAME_ANNOTATION
from isula_build.transports._tario import MAX_JSON_SIZE, normalize_member, read_json_member
from isula_build.transports.base import ImageSource
from isula_build.transports.oci_archive import LAYOUT, read_oci_archive


class LayoutIndex:
    """The regular files of a layout directory, by their names relative to it."""

    def __init__(self, path: Path) -> None:
        if not path.is_dir():
            raise NotFound(f"OCI layout {path} does not exist or is not a directory")
        self.path = path
        self._real = os.path.realpath(path)

    def acquire(self) -> LayoutIndex:
        return self  # nothing held open: files are opened per read

    def release(self) -> None:
        pass

    def _file(self, name: str) -> str | None:
        target = os.path.realpath(os.path.join(self._real, normalize_member(name)))
        if os.path.commonpath([target, self._real]) != self._real:
            return None
        try:
            return target if stat.S_ISREG(os.stat(target).st_mode) else None
        except OSError:
            return None

    def __contains__(self, name: str) -> bool:
        return self._file(name) is not None

    def member(self, name: str, what: str) -> str:
        found = self._file(name)
        if found is None:
            raise InvalidArgument(f"{self.path}: {what} {name!r} is missing from the layout")
        return found

    def size(self, name: str, what: str) -> int:
        return os.stat(self.member(name, what)).st_size

    def open(self, name: str, what: str) -> BinaryIO:
        return open(self.member(name, what), "rb")

    def read(self, name: str, what: str, limit: int = MAX_JSON_SIZE) -> bytes:
        with self.open(name, what) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidArgument(f"{self.path}: {what} {name!r} is more than the {limit} "
                                  "bytes allowed")
        return data

    def read_json(self, name: str, what: str) -> Any:
        return read_json_member(self, name, what)


def _names_tag(name: str, tag: str) -> bool:
    """An org.opencontainers.image.ref.name is a tag (`v1`, as skopeo and buildah write) or a
    whole reference (`busybox:v1`, as containerd and some tools write)."""
    return name == tag or (":" in name and name.rsplit(":", 1)[1] == tag)


def open_oci_layout(path: Path, tag: str = "") -> ImageSource:
    """The image of the layout named `tag`; without a tag, the only image (or the one named
    `latest`). The caller closes it."""
    index = LayoutIndex(path)
    if LAYOUT not in index:
        raise InvalidArgument(f"{path} is not an OCI image layout: it has no {LAYOUT} file")
    images = read_oci_archive(index)
    chosen: ImageSource | None = None
    if tag:
        chosen = next((s for s, names in images if any(_names_tag(n, tag) for n in names)), None)
    elif len(images) == 1:
        chosen = images[0][0]
    else:
        chosen = next((s for s, names in images if any(_names_tag(n, "latest") for n in names)),
                      None)
    for source, _ in images:
        if source is not chosen:
            source.close()
    if chosen is None:
        names = sorted({n for _, found in images for n in found}) or ["none"]
        raise NotFound(f"OCI layout {path} has no image {'named ' + repr(tag) if tag else 'to choose'}"
                       f" (its {REF_NAME_ANNOTATION} names: {', '.join(names)})")
    return chosen


__all__ = ["LayoutIndex", "open_oci_layout"]
