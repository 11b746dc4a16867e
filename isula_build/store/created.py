"""Parsing the config's "created" time (RFC 3339, nanoseconds allowed) into a UTC datetime."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from isula_build.errors import InvalidArgument

_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")


def parse_created(value: str) -> datetime:
    """UTC datetime of an RFC 3339 time; fractions beyond microseconds are dropped."""
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        raise InvalidArgument(f'invalid "created" time "{value}" in image config: want RFC 3339')
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                         micro, tzinfo=timezone(offset))
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(f'invalid "created" time "{value}" in image config: {exc}') from None
