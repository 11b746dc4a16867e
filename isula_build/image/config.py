"""Image configs (docker image spec v1.2 / OCI image-spec config): reading fields, making new ones.

Configs are kept as the exact bytes they arrived in (their sha256 is the image ID); these helpers
only parse them to read fields, and serialize the configs this project makes in one canonical way.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from isula_build.errors import InvalidArgument
from isula_build.image.digest import is_digest
from isula_build.image.jsondoc import load_json_object
from isula_build.image.platform import host_platform

_FRACTION = re.compile(r"\.(\d+)")
_ZULU = re.compile(r"[zZ]$")

def host_architecture() -> str:
    """This machine's architecture as GOARCH spells it (amd64, arm64, …)."""
    return host_platform().architecture


def parse_config(data: bytes) -> dict[str, Any]:
    """The config as a dict; InvalidArgument when it is not a JSON object."""
    return load_json_object(data, "image config")


def diff_ids(config: dict[str, Any]) -> list[str]:
    """rootfs.diff_ids, bottom layer first; InvalidArgument when missing or malformed."""
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) and is_digest(i) for i in ids):
        raise InvalidArgument('image config has no valid "rootfs.diff_ids" list of sha256 digests')
    return list(ids)


def created(config: dict[str, Any]) -> datetime | None:
    """The "created" time in UTC, or None when absent or unreadable."""
    value = config.get("created")
    if not isinstance(value, str):
        return None
    return parse_rfc3339(value)


def parse_rfc3339(value: str) -> datetime | None:
    """Parses Go's RFC 3339 times, including nanosecond fractions that fromisoformat refuses."""
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value.strip(), count=1)
    text = _ZULU.sub("+00:00", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_rfc3339(moment: datetime) -> str:
    """UTC, RFC 3339 with nanoseconds as Go writes them (trailing zeros dropped)."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def architecture(config: dict[str, Any]) -> str:
    value = config.get("architecture")
    return value if isinstance(value, str) else ""


def os_name(config: dict[str, Any]) -> str:
    value = config.get("os")
    return value if isinstance(value, str) else ""


def serialize(config: dict[str, Any]) -> bytes:
    """The canonical bytes of a config this project makes: compact, keys sorted.

    Sorted keys make the bytes (and so the image ID) depend only on the content.
    """
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def import_config(layer_diff_ids: list[str], when: datetime | None = None,
                  comment: str = "Imported from tarball") -> bytes:
    """The config of an image imported from a root filesystem tarball (`docker import` style).

    The architecture is this machine's: a root filesystem carries no platform of its own, and the
    image is made to run here.
    """
    moment = format_rfc3339(when or datetime.now(timezone.utc))
    return serialize({
        "architecture": host_architecture(),
        "os": "linux",
        "created": moment,
        "comment": comment,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": list(layer_diff_ids)},
        "history": [{"created": moment, "comment": comment}],
    })
