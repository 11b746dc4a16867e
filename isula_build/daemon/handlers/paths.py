"""Checks of the file paths clients send (they are made absolute by the client)."""

from __future__ import annotations

import os
from pathlib import Path

from isula_build.errors import InvalidArgument, NotFound
from isula_build.transports.newfile import output_exists


def absolute_path(path: str, what: str) -> Path:
    if not path:
        raise InvalidArgument(f"{what} path is empty")
    if not os.path.isabs(path):
        raise InvalidArgument(f'{what} path "{path}" must be absolute')
    return Path(os.path.normpath(path))


def existing_file(path: str, what: str) -> Path:
    result = absolute_path(path, what)
    if not result.exists():
        raise NotFound(f"{what} {result} does not exist")
    if not result.is_file():
        raise InvalidArgument(f"{what} {result} is not a regular file")
    return result


def new_file(path: str, what: str) -> Path:
    """A path to write a new file at: its directory exists and nothing is there yet."""
    result = absolute_path(path, what)
    if result.exists() or result.is_symlink():
        raise output_exists(result)
    if not result.parent.is_dir():
        raise NotFound(f"directory {result.parent} of the {what} does not exist")
    return result
