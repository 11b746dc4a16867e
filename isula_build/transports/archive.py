"""Image archives of either kind, told apart by their content (SPEC §4 load)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from isula_build.errors import InvalidArgument
from isula_build.transports._tario import TarIndex
from isula_build.transports.base import ImageSource
from isula_build.transports.docker_archive import MANIFEST, read_docker_archive
from isula_build.transports.oci_archive import INDEX, LAYOUT, read_oci_archive

ArchiveFormat = Literal["docker-archive", "oci-archive"]


def _format(index: TarIndex) -> ArchiveFormat:
    # docker 25+ writes both manifest.json and an OCI layout; manifest.json carries the names
    # as RepoTags, so it wins.
    if MANIFEST in index:
        return "docker-archive"
    if LAYOUT in index and INDEX in index:
        return "oci-archive"
    raise InvalidArgument(f"{index.path} is neither a docker-archive (no {MANIFEST}) nor an "
                          f"oci-archive (no {LAYOUT} and {INDEX})")


def detect_archive_format(path: Path) -> ArchiveFormat:
    """"docker-archive" or "oci-archive"; NotFound, InvalidArgument or ResourceExhausted."""
    index = TarIndex(path)
    try:
        return _format(index)
    finally:
        index.release()


def open_archive(path: Path) -> list[tuple[ImageSource, list[str]]]:
    """Every image of the archive with the names it carries (as written, not normalized).

    The caller closes each source. Errors in the archive's metadata are raised here, before
    anything is copied; errors in layer data are raised while the layer is copied.
    """
    index = TarIndex(path)
    try:
        if _format(index) == "docker-archive":
            return read_docker_archive(index)
        return read_oci_archive(index)
    finally:
        index.release()
