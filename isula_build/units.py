"""Go's notations for sizes and durations, which users and the original's output know.

Pure and import-light (only `re`): the client parses --timeout with it before it loads grpc.
"""

from __future__ import annotations

import re

SIZE_UNITS = ("B", "KB", "MB", "GB", "TB")

_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
            "m": 60 * 10**9, "h": 3600 * 10**9}


def format_size(size: float) -> str:
    """Decimal units with three significant digits, as Go's `fmt.Sprintf("%.3g %s")` gives
    ("5.85 MB", "757 MB", "832 B")."""
    unit = 0
    while size >= 1000 and unit < len(SIZE_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.3g} {SIZE_UNITS[unit]}"


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds (``1m30s``, ``500ms``, ``0``); ValueError when
    text is not one."""
    body = text[1:] if text[:1] in "+-" else text
    sign = -1 if text.startswith("-") else 1
    if body == "0":
        return 0
    if not body:
        raise ValueError(text)
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match or match.group(1) in ("", "."):
            raise ValueError(text)
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    return sign * int(total)
