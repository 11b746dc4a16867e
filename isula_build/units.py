"""Go's notations for sizes and durations, which users and the original's output know.

Pure and import-light (only `re`): the client parses --timeout with it before it loads grpc.
Sizes in configuration files (parse_size) and in messages about disk space (format_binary_size)
use binary units as well, since that is how filesystems and limits are usually counted.
"""

from __future__ import annotations

import re

SIZE_UNITS = ("B", "KB", "MB", "GB", "TB")

# parse_size: decimal units with "B", binary ones with "iB"; a bare letter is binary, as docker's
# --memory 1g and go-units' RAMInBytes read it.
_SIZE_FACTORS = {"": 1, "b": 1,
                 "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
                 "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
                 "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

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


def format_binary_size(size: float) -> str:
    """Binary units with at most one decimal ("1 GiB", "812.3 MiB", "0 B")."""
    unit = 0
    while size >= 1024 and unit < len(_BINARY_UNITS) - 1:
        size /= 1024
        unit += 1
    number = f"{size:.1f}".removesuffix(".0")
    return f"{number} {_BINARY_UNITS[unit]}"


def parse_size(text: str) -> int:
    """Bytes in a size such as "1GiB", "500MB", "2g" or "4096" (units are case-insensitive;
    KB/MB/GB/TB are decimal, KiB/MiB/GiB/TiB and K/M/G/T binary); ValueError when text is not
    one."""
    match = _SIZE.fullmatch(text)
    factor = _SIZE_FACTORS.get(match.group(2).lower()) if match else None
    if match is None or factor is None:
        raise ValueError(text)
    number = match.group(1)
    if "." in number:
        whole, fraction = number.split(".")
        return int(whole) * factor + int(fraction) * factor // 10 ** len(fraction)
    return int(number) * factor


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


def human_duration(seconds: float) -> str:
    """How long ago in go-units' HumanDuration words ("Less than a second", "About a minute",
    "3 hours", "2 weeks"), which docker's listings show."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    for limit, size, word in ((24 * 7 * 2, 24, "days"), (24 * 30 * 2, 24 * 7, "weeks"),
                              (24 * 365 * 2, 24 * 30, "months")):
        if hours < limit:
            return f"{hours // size} {word}"
    return f"{hours // (24 * 365)} years"
