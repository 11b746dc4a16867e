"""The one place a writer is chosen for a local transport reference (save and build -o).

    with open_writer(ref, tmp_dir) as writer:
        with StoreSource(store, image) as src, writer.image(names) as dst:
            copy_image(src, dst, log)

Registry references are pushed by registry/operations.py, which needs the daemon's registry
settings; everything else is written here.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, Sequence

from isula_build.transports.base import ImageDestination
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.docker_daemon import DockerDaemonWriter
from isula_build.transports.isulad import IsuladWriter
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.reference import (
    DockerArchiveRef, DockerDaemonRef, IsuladRef, LocalRef, OciArchiveRef,
)


class ImageWriter(Protocol):
    """Collects images, one `image(names)` destination each; the result is complete (the
    archive in place, the engine loaded) only when the with-block ends without an exception."""

    def image(self, names: Sequence[str]) -> ImageDestination: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def open_writer(ref: LocalRef, tmp_dir: Path | None = None) -> ImageWriter:
    """The writer for ref. `tmp_dir` is where docker-daemon and isulad outputs stage their
    archive (the daemon's <data_root>/tmp); archives need none."""
    if isinstance(ref, DockerArchiveRef):
        return DockerArchiveWriter(Path(ref.path))
    if isinstance(ref, OciArchiveRef):
        return OciArchiveWriter(Path(ref.path))
    if tmp_dir is None:
        raise ValueError(f"a {ref.transport} writer needs a directory to stage its archive in")
    if isinstance(ref, DockerDaemonRef):
        return DockerDaemonWriter(tmp_dir)
    if isinstance(ref, IsuladRef):
        return IsuladWriter(tmp_dir)
    raise TypeError(f"no writer for {ref!r}")
