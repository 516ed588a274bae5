"""Graphite time expressions: Cyclone's parser against graphite-web 1.1.10's parseATTime."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cyclone.protocols.http_times import TimeParseError, parse_offset, parse_time, resolve_window

pytz = pytest.importorskip("pytz")
attime = pytest.importorskip("graphite.render.attime")

pytestmark = pytest.mark.timeout(60)

# a Wednesday, 14:37:23 UTC; Berlin is in summer time
NOW = int(datetime(2024, 7, 17, 14, 37, 23, tzinfo=timezone.utc).timestamp())
# near a DST change in Berlin (2024-10-27 03:00 CEST -> 02:00 CET)
NOW_DST = int(datetime(2024, 10, 27, 12, 0, 0, tzinfo=timezone.utc).timestamp())

EXPRESSIONS = [
    "now", "-1h", "-7d", "-5min", "-1mon", "-1y", "-30s", "-2w", "+1h", "now-1h", "now+30min",
    "-1d2h", "-90seconds", "-3hours", "-1minute",
    "today", "yesterday", "tomorrow", "midnight", "noon", "teatime", "yesterday-1h", "today+3h",
    "20240101", "12:00_20240101", "09:30_20230615", "3pm", "11am", "6pm_yesterday", "noon+1d",
    "07/04/24", "12/31/1999", "jan15", "march3", "monday", "fri", "sunday-1w",
    "1700000000", "1", "  -1h ", "19991231",
]


def graphite(expr: str, now: int, zone: str) -> int:
    tz = pytz.timezone(zone)
    now_dt = datetime.fromtimestamp(now, tz)
    return int(attime.parseATTime(expr, tz, now_dt).timestamp())


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Kolkata"])
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_same_as_graphite(expr, zone):
    from zoneinfo import ZoneInfo

    assert parse_time(expr, NOW, ZoneInfo(zone)) == graphite(expr, NOW, zone)


@pytest.mark.parametrize("expr", ["-1d", "-1h", "yesterday", "midnight", "today+3h", "02:30_20241027"])
def test_same_as_graphite_around_dst(expr):
    from zoneinfo import ZoneInfo

    assert parse_time(expr, NOW_DST, ZoneInfo("Europe/Berlin")) == graphite(expr, NOW_DST, "Europe/Berlin")


def test_offsets_are_absolute_seconds():
    assert parse_offset("-1d").total_seconds() == -86400
    assert parse_offset("-1mon").total_seconds() == -30 * 86400
    assert parse_offset("-1y").total_seconds() == -365 * 86400
    assert parse_offset("5min").total_seconds() == 300
    assert parse_offset("+1h30min").total_seconds() == 5400


def test_local_zone_default():
    # no tz: the server's local zone; epoch seconds never depend on it
    assert parse_time("1700000000", NOW) == 1700000000
    assert parse_time("-1h", NOW) == NOW - 3600
    assert parse_time("now", NOW) == NOW


@pytest.mark.parametrize("bad", ["", "soon", "-1x", "-1m", "-h", "now-", "-1", "13:00_2024", "jan", "-5mo"])
def test_invalid(bad):
    with pytest.raises(TimeParseError) as e:
        parse_time(bad, NOW)
    assert "\n" not in str(e.value)


def test_window():
    assert resolve_window("-1h", None, NOW) == (NOW - 3600, NOW)
    assert resolve_window(None, None, NOW) == (NOW - 3600, NOW)  # the seed's default: the last hour
    assert resolve_window(str(NOW), str(NOW - 60), NOW) == (NOW - 60, NOW)  # swapped like graphite
    with pytest.raises(TimeParseError, match="empty time range"):
        resolve_window("100", "100", NOW)


@pytest.mark.parametrize("expr", ["02:30_20240331", "02:30_20241027", "01:59_20241027", "03:00_20240331"])
@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_ambiguous_and_skipped_times_take_standard_time(expr, zone):
    from zoneinfo import ZoneInfo

    assert parse_time(expr, NOW_DST, ZoneInfo(zone)) == graphite(expr, NOW_DST, zone)


@pytest.fixture
def berlin_local_time():
    import os
    import time

    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize("expr", ["midnight", "yesterday", "12:00_20240101", "02:30_20241027", "monday", "-1d"])
def test_server_local_zone(berlin_local_time, expr):
    assert parse_time(expr, NOW) == graphite(expr, NOW, "Europe/Berlin")
    assert parse_time(expr, NOW_DST) == graphite(expr, NOW_DST, "Europe/Berlin")
