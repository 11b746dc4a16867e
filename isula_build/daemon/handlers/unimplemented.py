"""Methods whose features come with later issues: each answers UNIMPLEMENTED, naming the feature.

Experimental gating comes first, so a daemon without --experimental says so rather than
"not implemented yet" for manifest commands and non-docker formats.
"""

from __future__ import annotations

from typing import NoReturn

from isula_build.daemon.experimental import check_format, require_experimental
from isula_build.errors import Unimplemented


def push(experimental: bool, image_format: str) -> NoReturn:
    check_format(experimental, image_format)
    raise Unimplemented("ctr-img push is not implemented yet")


def pull() -> NoReturn:
    raise Unimplemented("ctr-img pull is not implemented yet")


def login() -> NoReturn:
    raise Unimplemented("login is not implemented yet")


def logout() -> NoReturn:
    raise Unimplemented("logout is not implemented yet")


def manifest(experimental: bool, command: str) -> NoReturn:
    require_experimental(experimental, "manifest")
    raise Unimplemented(f"manifest {command} is not implemented yet")

