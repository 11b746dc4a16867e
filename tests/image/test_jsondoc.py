"""JSON from outside: nesting bounded before Python's recursive parser sees it."""

from __future__ import annotations

import json

import pytest

from isula_build.errors import InvalidArgument
from isula_build.image.jsondoc import MAX_JSON_DEPTH, load_json_object, loads


def test_documents_within_the_bound_parse_as_json_does() -> None:
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads(deep) == json.loads(deep)
    # Brackets inside strings are not nesting; many siblings are not nesting either.
    wide = json.dumps({"s": "[[[{{{" * 1000, "h": [{"a": [1]} for _ in range(2000)]})
    assert loads(wide.encode()) == json.loads(wide)
    assert loads('"\\\\"') == "\\"
    assert loads(b'\xef\xbb\xbf{"bom": 1}') == {"bom": 1}  # json.loads' encodings, as before


@pytest.mark.parametrize("text", [
    "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
    "[" * 1_000_000,
    '{"a":' * 200_000 + "1" + "}" * 200_000,
])
def test_deeper_documents_are_refused_as_invalid_json(text: str) -> None:
    with pytest.raises(json.JSONDecodeError, match=f"nested more than {MAX_JSON_DEPTH} deep"):
        loads(text)
    with pytest.raises(InvalidArgument, match="^manifest is not valid JSON: arrays and objects"):
        load_json_object(text.encode(), "manifest")
