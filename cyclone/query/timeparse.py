"""Graphite's relative time offsets ("5min", "-1h", "+2d", "1h30min").

`parse_time_offset` reproduces graphite-web 1.1's `parseTimeOffset`: an
optional sign (no sign means +), then one or more <number><unit> groups.
A unit is recognised by its prefix: s (seconds), min (minutes), h (hours),
d (days), w (weeks), mon (30 days), y (365 days). Note that a bare "m" is
not a unit. The result is whole seconds, signed.
"""

from __future__ import annotations

from cyclone.query.errors import QueryError

_UNIT_SECONDS: tuple[tuple[str, int], ...] = (
    ("s", 1),
    ("min", 60),
    ("h", 3600),
    ("d", 86400),
    ("w", 7 * 86400),
    ("mon", 30 * 86400),
    ("y", 365 * 86400),
)


def unit_seconds(unit: str) -> int:
    """Seconds in one `unit` (matched by prefix, in graphite's order)."""
    for prefix, seconds in _UNIT_SECONDS:
        if unit.startswith(prefix):
            return seconds
    raise QueryError(f"invalid time unit {unit!r} (use s, min, h, d, w, mon or y)")


def parse_time_offset(offset: str) -> int:
    """Signed whole seconds of a graphite offset string; '' is 0."""
    if not isinstance(offset, str):
        raise QueryError(f"invalid interval {offset!r}: expected a string like '5min'")
    if not offset:
        return 0
    sign = 1
    rest = offset
    if not rest[0].isdigit():
        if rest[0] == "+":
            sign = 1
        elif rest[0] == "-":
            sign = -1
        else:
            raise QueryError(f"invalid interval {offset!r}")
        rest = rest[1:]
    total = 0
    while rest:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        if i == 0:
            raise QueryError(f"invalid interval {offset!r}: expected a number before the unit")
        num = int(rest[:i])
        rest = rest[i:]
        j = 0
        while j < len(rest) and rest[j].isalpha():
            j += 1
        unit = rest[:j]
        rest = rest[j:]
        try:
            total += num * unit_seconds(unit)
        except QueryError:
            raise QueryError(
                f"invalid interval {offset!r}: unknown unit {unit!r} (use s, min, h, d, w, mon or y)"
            ) from None
    return sign * total


def is_valid_offset(offset: object) -> bool:
    try:
        parse_time_offset(offset)  # type: ignore[arg-type]
    except QueryError:
        return False
    return True
