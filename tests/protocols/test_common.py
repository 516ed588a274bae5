"""Shared protocol helpers: key columns and grouping them, listen specs, rate-limited logs, shell times."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cyclone.protocols.common import (
    RateLimitedLog,
    decode_keys,
    describe_listen,
    parse_listen,
)
from cyclone.series import group_columns
from cyclone.protocols.shell import ShellError, parse_time, split_options
from cyclone.stats import StatsRegistry, sanitize_name, store_stat_names


def test_group_columns_keeps_order_per_key() -> None:
    keys = ["a", "b", "a", "c", "a", "b"]
    ts = np.array([1, 2, 3, 4, 5, 6], dtype=np.int64)
    vals = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    out = group_columns(keys, ts, vals)
    assert list(out) == ["a", "b", "c"]
    assert out["a"].timestamps.tolist() == [1, 3, 5] and out["a"].values.tolist() == [10, 30, 50]
    assert out["b"].timestamps.tolist() == [2, 6]
    assert out["c"].values.tolist() == [40.0]


def test_group_columns_unique_keys_fast_path() -> None:
    keys = [f"k{i}" for i in range(1000)]
    out = group_columns(keys, np.arange(1000, dtype=np.int64), np.arange(1000.0))
    assert len(out) == 1000 and out["k999"].timestamps.tolist() == [999]
    assert out["k5"].timestamps.dtype == np.int64 and out["k5"].values.tolist() == [5.0]


def test_decode_keys_marks_undecodable_keys() -> None:
    out, bad = decode_keys([b"ok", b"\xff", b"ok", b"\xfe\xff", b"\xff"])
    assert out == ["ok", None, "ok", None, None]
    assert bad == [b"\xff", b"\xfe\xff", b"\xff"]


def test_decode_keys_str_and_bytes_of_one_key_are_one_key() -> None:
    out, bad = decode_keys(["x", b"x"])
    assert out == ["x", "x"] and bad == []


def test_decode_keys_with_newline_in_a_key_falls_back() -> None:
    out, bad = decode_keys([b"a\nb", b"c"])
    assert out == ["a\nb", "c"] and bad == []


def test_listen_specs() -> None:
    assert parse_listen(2003) == ("tcp", ("", 2003))
    assert parse_listen("127.0.0.1:2001") == ("tcp", ("127.0.0.1", 2001))
    assert parse_listen("[::1]:2001") == ("tcp", ("::1", 2001))
    assert parse_listen("/tmp/x.sock") == ("unix", "/tmp/x.sock")
    assert describe_listen(2003) == "*:2003"
    assert describe_listen("/tmp/x.sock") == "unix:/tmp/x.sock"


def test_rate_limited_log(caplog) -> None:
    logger = logging.getLogger("test.ratelimit")
    rl = RateLimitedLog(logger, logging.WARNING, burst=3, interval=3600)
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for i in range(100):
            rl("bad thing %d", i)
    assert [r.getMessage() for r in caplog.records] == ["bad thing 0", "bad thing 1", "bad thing 2"]
    assert rl._suppressed == 97


def test_parse_time() -> None:
    now = 1_000_000
    assert parse_time("now", now) == now
    assert parse_time("-24h", now) == now - 86400
    assert parse_time("-30d", now) == now - 30 * 86400
    assert parse_time("-5m", now) == now - 300
    assert parse_time("-5min", now) == now - 300
    assert parse_time("-10", now) == now - 10
    assert parse_time("+1w", now) == now + 7 * 86400
    assert parse_time("-1y", now) == now - 365 * 86400
    assert parse_time("123456", now) == 123456
    assert parse_time("123456.9", now) == 123456
    with pytest.raises(ShellError):
        parse_time("yesterday-ish", now)


def test_split_options() -> None:
    opts, args = split_options(["+count", "a.*", "+start=-1h"], {"count": False, "start": True})
    assert opts == {"count": True, "start": "-1h"} and args == ["a.*"]
    with pytest.raises(ShellError, match="unknown option"):
        split_options(["+nope"], {"count": False})
    with pytest.raises(ShellError, match="needs a value"):
        split_options(["+start"], {"start": True})
    with pytest.raises(ShellError, match="takes no value"):
        split_options(["+count=1"], {"count": False})
    # a negative number is an argument, not an option
    assert split_options(["+5"], {})[1] == ["+5"]


def test_stats_registry_and_names() -> None:
    reg = StatsRegistry()
    reg.group("line_tcp").add("points", 5)
    reg.group("http", ("requests",)).add("requests")
    reg.add_gauge("ingest.queued_points", lambda: 7)
    snap = reg.snapshot()
    assert snap["line_tcp.points"] == 5 and snap["http.requests"] == 1
    assert snap["ingest.queued_points"] == 7 and snap["pickle.refused_pickles"] == 0
    assert sanitize_name("store.('host', 'a').x y") == "store.host_a.x_y"


def test_store_positions(tmp_path) -> None:
    from cyclone.store.autocreate import AutocreateRules
    from cyclone.store.factory import build_store

    node = {"type": "query", "substore": {"type": "multi", "stores": {
        "one": {"type": "cached_disk", "directory": str(tmp_path / "a")},
        "two": {"type": "disk", "directory": str(tmp_path / "b")}}}}
    from cyclone.store.factory import validate_store_config

    store = build_store(validate_store_config("s", node, str(tmp_path)), AutocreateRules())
    try:
        assert [p for p, _ in store_stat_names(store)] == ["query", "query.multi", "query.multi.one",
                                                            "query.multi.two"]
    finally:
        store.close()
