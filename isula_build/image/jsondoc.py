"""Reading a JSON document that must be an object (configs, manifests, indexes)."""

from __future__ import annotations

import json
from typing import Any

from isula_build.errors import InvalidArgument


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    """The document as a dict; InvalidArgument naming `what` when it is not a JSON object."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return document
