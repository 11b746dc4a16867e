"""Features the daemon offers only with --experimental or `experimental = true` (SPEC §4)."""

from __future__ import annotations

from isula_build.errors import FailedPrecondition, InvalidArgument

DOCKER_FORMAT = "docker"
OCI_FORMAT = "oci"


def require_experimental(enabled: bool, feature: str) -> None:
    if not enabled:
        raise FailedPrecondition(f"{feature} is an experimental feature: start isula-builder "
                                 "with --experimental (or experimental = true in "
                                 "configuration.toml) to use it")


def check_format(enabled: bool, image_format: str) -> str:
    """The image format of a request; "" means docker. Any other format needs experimental mode."""
    if image_format in ("", DOCKER_FORMAT):
        return DOCKER_FORMAT
    require_experimental(enabled, f'image format "{image_format}"')
    if image_format != OCI_FORMAT:
        raise InvalidArgument(f'unknown image format "{image_format}" (choose oci or docker)')
    return image_format
