"""Save (`ctr-img save IMAGE... -o FILE`): several images into one archive sharing layers.

docker-archive by default; oci-archive with format "oci" (experimental), which also holds the
manifest list of a multi-platform build: its images and an index of them under its name. An image asked for by
name carries that name in the archive; one asked for by ID carries none, as with `docker save`.
The archive appears only when complete, and a killed daemon leaves no part of it
(transports/newfile.py). The client prints the final `Save success with image: ...` line, as
the original's does.
"""

from __future__ import annotations

import logging

from isula_build.api import control_pb2 as pb
from isula_build.daemon.experimental import check_format
from isula_build.daemon.handlers.paths import new_file
from isula_build.daemon.logstream import Job
from isula_build.daemon.state import DaemonState
from isula_build.distribution.lists import load_list, local_entries, write_list_archive
from isula_build.errors import InvalidArgument
from isula_build.image.reference import normalize_name
from isula_build.transports.copy import copy_image
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.reference import archive_ref
from isula_build.transports.store import StoreSource
from isula_build.transports.writers import open_writer

_log = logging.getLogger(__name__)


def save(state: DaemonState, request: pb.SaveRequest, job: Job) -> None:
    image_format = check_format(state.options.experimental, request.format)
    if not request.images:
        raise InvalidArgument("no image given to save")
    path = new_file(request.path, "output file")
    # Every image is looked up first, so a missing one fails before anything is written.
    wanted = [(state.store.lookup(ref), _names(ref)) for ref in request.images]
    lists = {image.id: load_list(state.store, image.id) for image, _ in wanted
             if image.is_manifest_list}
    if lists and image_format != "oci":
        first = next(iter(lists.values()))
        raise InvalidArgument(f"{(first.names or [first.id])[0]} is a manifest list: a "
                              "docker-archive holds one image a name; save it with --format "
                              "oci, which holds the list and all its images")
    for manifest_list in lists.values():  # refused before anything is written
        local_entries(state.store, manifest_list, "save")
    with open_writer(archive_ref(image_format, str(path))) as archive:
        for image, names in wanted:
            names = [n for n in names if n in image.names]
            if image.id in lists:
                assert isinstance(archive, OciArchiveWriter)
                write_list_archive(state.store, lists[image.id], archive, names, job.log)
                continue
            with StoreSource(state.store, image) as src, archive.image(names) as dst:
                copy_image(src, dst, job.log, job.progress)
    _log.info("save %s: %s to %s", request.saveID, list(request.images), path)


def _names(ref: str) -> list[str]:
    """The name a reference asks for, or none when it is an ID."""
    if ref.startswith("sha256:"):
        return []
    try:
        return [normalize_name(ref)]
    except InvalidArgument:
        return []
