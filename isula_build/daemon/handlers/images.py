"""List: the rows of `isula-build ctr-img images`, formatted as the original daemon sends them.

The client prints the fields as they come, so the formats are part of the wire contract: the
full 64-hex ID (the client cuts it to 12), CREATED as `YYYY-MM-DD HH:MM:SS` (UTC), SIZE in
decimal units with three significant digits (Go's `%.3g`: "5.85 MB", "1 MB", "832 B").
One row per name, newest image first; an image without names is one `<none>` `<none>` row.
An image of another platform than this machine's has it after its size (`1.24 MB  linux/arm64`):
ListResponse has no field for it, and the columns scripts read stay as they were.
"""

from __future__ import annotations

from isula_build.api import control_pb2 as pb
from isula_build.daemon.state import DaemonState
from isula_build.errors import InvalidArgument, IsulaBuildError
from isula_build.image.config import parse_config
from isula_build.image.platform import host_platform, matches, of_fields
from isula_build.image.reference import normalize_name, split_name
from isula_build.store import ImageRecord
from isula_build.units import format_size

NONE = "<none>"
CREATED_LAYOUT = "%Y-%m-%d %H:%M:%S"


def list_images(state: DaemonState, request: pb.ListRequest) -> pb.ListResponse:
    if request.imageName:
        rows = _rows_for_reference(state, request.imageName)
    else:
        images = sorted(state.store.list_images(), key=lambda img: img.created, reverse=True)
        rows = [row for image in images for row in _rows(state, image)]
    return pb.ListResponse(images=rows)


def _rows_for_reference(state: DaemonState, reference: str) -> list[pb.ListResponse.ImageInfo]:
    """The image a name or ID refers to (NotFound if none, as the original answers)."""
    image = state.store.lookup(reference)
    try:
        wanted = normalize_name(reference)
    except InvalidArgument:  # an ID or ID prefix, not a name: show every name of the image
        return _rows(state, image)
    if wanted in image.names:
        return [_row(state, image, *split_name(wanted))]
    return _rows(state, image)


def _rows(state: DaemonState, image: ImageRecord) -> list[pb.ListResponse.ImageInfo]:
    if not image.names:
        return [_row(state, image, NONE, NONE)]
    return [_row(state, image, *split_name(name)) for name in image.names]


def _row(state: DaemonState, image: ImageRecord, repository: str,
         tag: str) -> pb.ListResponse.ImageInfo:
    return pb.ListResponse.ImageInfo(
        repository=repository,
        tag=tag,
        id=image.id,
        created=image.created.strftime(CREATED_LAYOUT),
        size=format_size(image.size) + _foreign_platform(state, image),
    )


def _foreign_platform(state: DaemonState, image: ImageRecord) -> str:
    """`  linux/arm64` for an image of another platform than this machine's, else ""."""
    if image.is_manifest_list:
        return ""
    try:
        platform = of_fields(parse_config(state.store.config_bytes(image.id)))
    except IsulaBuildError:  # removed meanwhile, or a config without a platform
        return ""
    if platform is None or matches(host_platform(), platform):
        return ""
    return f"  {platform}"
