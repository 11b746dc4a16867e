"""The rename file of a separated save: a JSON list of {"name": tarball name, "rename": new name}
(e.g. `{"name": "app_latest_app_image.tar.gz", "rename": "app.tar.gz"}`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from isula_build.errors import InvalidArgument, NotFound
from isula_build.image import jsondoc
from isula_build.separated.layout import MANIFEST_FILE

MAX_RENAME_FILE_SIZE = 1 << 20


def _check_file_name(path: Path, name: str) -> None:
    if not name or os.sep in name or name in (".", "..", MANIFEST_FILE) or "\0" in name:
        raise InvalidArgument(f"rename file {path}: {name!r} is not a valid tarball file name")


def load_renames(path: Path) -> dict[str, str]:
    """Tarball name → new name. Refuses a file that is not such a list, gives one name two new
    names, or gives two names one new name (their tarballs would overwrite each other)."""
    try:
        if path.stat().st_size > MAX_RENAME_FILE_SIZE:
            raise InvalidArgument(f"rename file {path} is larger than {MAX_RENAME_FILE_SIZE} bytes")
        data = jsondoc.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"rename file {path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"check rename file failed: {path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot read rename file {path}: {exc.strerror}") from None
    if not isinstance(data, list):
        raise InvalidArgument(f'rename file {path} must be a JSON list of {{"name": ..., '
                              '"rename": ...}')
    renames: dict[str, str] = {}
    taken: dict[str, str] = {}
    for item in data:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                and isinstance(item.get("rename"), str)):
            raise InvalidArgument(f'rename file {path}: every entry needs a "name" and a '
                                  '"rename" string')
        name, new = item["name"], item["rename"]
        _check_file_name(path, name)
        _check_file_name(path, new)
        if renames.get(name, new) != new:
            raise InvalidArgument(f"rename file {path} renames {name} twice: to "
                                  f"{renames[name]} and to {new}")
        if taken.get(new, name) != name:
            raise InvalidArgument(f"rename file {path} maps two names to one: both "
                                  f"{taken[new]} and {name} are renamed to {new}")
        renames[name] = new
        taken[new] = name
    return renames
