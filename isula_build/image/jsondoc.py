"""Reading JSON that comes from outside: configs, manifests, indexes, registry answers.

Python's JSON parser recurses once per level of nesting, so a document of arrays nested
100,000 deep (a hostile registry, a crafted archive) would exhaust the stack and surface as an
internal error. `loads` refuses a document nested deeper than MAX_JSON_DEPTH first, with the
JSONDecodeError callers already turn into their "is not valid JSON" message. Real image
documents nest a handful of levels.
"""

from __future__ import annotations

import json
import re
from typing import Any

from isula_build.errors import InvalidArgument

MAX_JSON_DEPTH = 100
# A string (brackets inside it do not count) or a bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[][{}]', re.DOTALL)


def loads(data: bytes | str) -> Any:
    """json.loads, refusing arrays and objects nested more than MAX_JSON_DEPTH deep."""
    text = data if isinstance(data, str) else data.decode(json.detect_encoding(data), "surrogatepass")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        _check_depth(text)
    return json.loads(text)


def _check_depth(text: str) -> None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise json.JSONDecodeError(f"arrays and objects nested more than {MAX_JSON_DEPTH} "
                                           "deep", text, match.start())
        elif token in ("]", "}"):
            depth -= 1


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    """The document as a dict; InvalidArgument naming `what` when it is not a JSON object."""
    try:
        document = loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return document
