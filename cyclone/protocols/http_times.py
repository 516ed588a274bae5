"""Graphite time expressions for `from`, `until` and `now` (graphite-web's parseATTime).

Accepted, as in graphite-web 1.1.10: epoch seconds (`1700000000`), `now`,
relative offsets (`-1h`, `-7d`, `-5min`, `-1mon`, `-1y`, `+30s`; units s,
min, h, d, w, mon = 30 d, y = 365 d, any prefix of the unit name as graphite
reads it), a reference plus an offset (`now-1h`, `yesterday+3h`,
`12:00_20240101-1d`), `YYYYMMDD`, `HH:MM_YYYYMMDD`, `MM/DD/YY[YY]`,
`today`, `yesterday`, `tomorrow`, `noon`, `midnight`, `teatime`, `3pm`,
month names with a day (`jan15`) and weekday names (`monday`).

Wall-clock references are read in the `tz` time zone (an IANA name; the
server's local zone by default). Offsets are added to the absolute instant,
like graphite-web's pytz `normalize`, so `-1d` is always 86400 seconds.
"""

from __future__ import annotations

from cyclone.query.errors import QueryError
from cyclone.query.timeparse import unit_seconds

import time
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


class TimeParseError(ValueError):
    """A time expression graphite would not accept; the message is user-facing."""


def get_timezone(name: str | None) -> tzinfo | None:
    """The zone called `name`, or None (the server's local zone) for no name.

    An unknown zone is ignored like graphite-web does (falls back to local).
    """
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _localize(dt: datetime, tz: tzinfo | None) -> float:
    """Epoch of a naive wall-clock time in `tz` (None: local), like pytz's localize(is_dst=False).

    An ambiguous or skipped time (a DST change) takes the standard-time
    offset, as graphite-web does.
    """
    stamps = []
    for fold in (0, 1):
        candidate = dt.replace(fold=fold)
        if tz is not None:
            aware = candidate.replace(tzinfo=tz)
            stamps.append((aware.timestamp(), not aware.dst()))
        else:
            ts = candidate.timestamp()
            stamps.append((ts, time.localtime(ts).tm_isdst == 0))
    for ts, standard in stamps:
        if standard:
            return ts
    return stamps[0][0]


def _wall_clock(epoch: float, tz: tzinfo | None) -> datetime:
    if tz is None:
        return datetime.fromtimestamp(epoch)
    return datetime.fromtimestamp(epoch, tz)


def parse_time(text: str, now: float | None = None, tz: tzinfo | None = None) -> int:
    """Epoch seconds of a graphite time expression; TimeParseError if invalid."""
    if now is None:
        now = time.time()
    raw = text
    s = text.strip().lower().replace("_", "").replace(",", "").replace(" ", "")
    if not s:
        raise TimeParseError(f"empty time value {raw!r}")
    if s.isdigit():
        if len(s) == 8 and int(s[:4]) > 1900 and int(s[4:6]) < 13 and int(s[6:]) < 32:
            pass  # YYYYMMDD, not a timestamp
        else:
            return int(s)
    if s.startswith("-") and s[1:].isdigit():
        raise TimeParseError(f"invalid time {raw!r}: negative timestamps are not supported")
    if "+" in s:
        ref, offset = s.split("+", 1)
        offset = "+" + offset
    elif "-" in s:
        ref, offset = s.split("-", 1)
        offset = "-" + offset
    else:
        ref, offset = s, ""
    try:
        base = _parse_reference(ref, now, tz)
        delta = parse_offset(offset)
    except TimeParseError as e:
        raise TimeParseError(f"invalid time {raw!r}: {e}") from None
    except (ValueError, OverflowError) as e:
        raise TimeParseError(f"invalid time {raw!r}: {e}") from None
    return int(base + delta.total_seconds())


def _parse_reference(ref: str, now: float, tz: tzinfo | None) -> float:
    if not ref or ref == "now":
        return now
    raw = ref
    hour = minute = 0
    i = ref.find(":")
    if 0 < i < 3:
        hour = int(ref[:i])
        minute = int(ref[i + 1:i + 3])
        ref = ref[i + 3:]
        if ref[:2] == "am":
            ref = ref[2:]
        elif ref[:2] == "pm":
            hour = (hour + 12) % 24
            ref = ref[2:]
    i = ref.find("am")
    if 0 < i < 3:
        hour = int(ref[:i])
        ref = ref[i + 2:]
    i = ref.find("pm")
    if 0 < i < 3:
        hour = (int(ref[:i]) + 12) % 24
        ref = ref[i + 2:]
    if ref.startswith("noon"):
        hour, minute = 12, 0
        ref = ref[4:]
    elif ref.startswith("midnight"):
        hour, minute = 0, 0
        ref = ref[8:]
    elif ref.startswith("teatime"):
        hour, minute = 16, 0
        ref = ref[7:]

    ref_date = _wall_clock(now, tz).replace(hour=hour, minute=minute, second=0, microsecond=0,
                                             tzinfo=None)
    if ref in ("yesterday", "today", "tomorrow"):
        if ref == "yesterday":
            ref_date -= timedelta(days=1)
        elif ref == "tomorrow":
            ref_date += timedelta(days=1)
    elif ref.count("/") == 2:  # MM/DD/YY[YY]
        m, d, y = map(int, ref.split("/"))
        if y < 1900:
            y += 1900
        if y < 1970:
            y += 100
        ref_date = datetime(year=y, month=m, day=d, hour=hour, minute=minute)
    elif len(ref) == 8 and ref.isdigit():  # YYYYMMDD
        ref_date = datetime(year=int(ref[:4]), month=int(ref[4:6]), day=int(ref[6:8]),
                            hour=hour, minute=minute)
    elif ref[:3] in MONTHS:  # MonthName DayOfMonth
        if ref[-2:].isdigit():
            d = int(ref[-2:])
        elif ref[-1:].isdigit():
            d = int(ref[-1:])
        else:
            raise TimeParseError("day of month required after month name")
        ref_date = datetime(year=ref_date.year, month=MONTHS.index(ref[:3]) + 1, day=d,
                            hour=hour, minute=minute)
    elif ref[:3] in WEEKDAYS:  # DayOfWeek: the most recent one (today counts)
        today = WEEKDAYS.index(ref_date.strftime("%a").lower()[:3])
        day_offset = today - WEEKDAYS.index(ref[:3])
        if day_offset < 0:
            day_offset += 7
        ref_date -= timedelta(days=day_offset)
    elif ref:
        raise TimeParseError(f"unknown day reference {raw!r}")
    return _localize(ref_date, tz)


def _unit_seconds(unit: str) -> int:
    """Seconds in one offset unit; the table is the query layer's (one for both)."""
    try:
        return unit_seconds(unit)
    except QueryError:
        raise TimeParseError(f"invalid offset unit {unit!r} (use s, min, h, d, w, mon or y)") from None


def parse_offset(offset: str) -> timedelta:
    """`-1h`, `+2d3h`, `5min` -> timedelta (graphite's parseTimeOffset)."""
    if not offset:
        return timedelta()
    sign = 1
    if offset[0] in "+-":
        sign = -1 if offset[0] == "-" else 1
        offset = offset[1:]
    elif not offset[0].isdigit():
        raise TimeParseError(f"invalid offset {offset!r}")
    if not offset:
        raise TimeParseError("offset has no amount")
    total = 0
    while offset:
        i = 0
        while i < len(offset) and offset[i].isdigit():
            i += 1
        if i == 0:
            raise TimeParseError(f"expected a number in offset at {offset!r}")
        num = int(offset[:i])
        offset = offset[i:]
        j = 0
        while j < len(offset) and offset[j].isalpha():
            j += 1
        unit = offset[:j]
        offset = offset[j:]
        if not unit:
            raise TimeParseError(f"offset {num} has no unit (use s, min, h, d, w, mon or y)")
        total += num * _unit_seconds(unit)
    return timedelta(seconds=sign * total)


def parse_now(text: str | None, tz: tzinfo | None = None) -> int:
    """The request's reference time: the `now` parameter, or the current time."""
    if text is None or text == "":
        return int(time.time())
    return parse_time(text, time.time(), tz)


def resolve_window(from_text: str | None, until_text: str | None, now: int,
                   tz: tzinfo | None = None, default_from: str = "-1h") -> tuple[int, int]:
    """(start, end) of a render request; swapped if given backwards, like graphite-web.

    Raises TimeParseError for unparseable values and for an empty range.
    """
    until = parse_time(until_text, now, tz) if until_text not in (None, "") else now
    start = parse_time(from_text if from_text not in (None, "") else default_from, now, tz)
    start, end = min(start, until), max(start, until)
    if start == end:
        raise TimeParseError("invalid empty time range: from and until are equal")
    return start, end
