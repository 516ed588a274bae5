"""The HTTP API over real sockets against a running Cyclone process.

One server per module (started by `HttpCyclone`: `python -m cyclone conf.json`,
free ports under tmp). Data comes from whisper files written with the
`whisper` package before the start and from the line protocol. Expected
values come from `whisper.fetch` on the same files (the oracle for window
and values), or are written out by hand.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import msgpack
import pytest
import whisper

from tests.integration.test_http_helpers import HttpCyclone, http_request, multipart, write_whisper

pytestmark = pytest.mark.timeout(120)

ARCHIVES = [(10, 8640), (60, 14400)]
NOW = int(time.time())
T0 = NOW - NOW % 3600 - 3 * 3600  # an hour boundary, 3-4 h ago: inside archive 0


def c1_points() -> list[tuple[int, float]]:
    return [(T0 + i * 10, i * 0.5) for i in range(720) if i % 7 != 3]


def c2_points() -> list[tuple[int, float]]:
    return [(T0 + i * 10, 100.0 - i) for i in range(720) if i % 5 != 0]


def c3_points() -> list[tuple[int, float]]:
    return [(T0 + i * 10, 1e6 + i / 3) for i in range(720)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("http_api")
    srv = HttpCyclone(tmp)
    d = srv.data_dir
    write_whisper(d, "test.a.b.c1", ARCHIVES, c1_points(), now=NOW)
    write_whisper(d, "test.a.b.c2", ARCHIVES, c2_points(), now=NOW)
    write_whisper(d, "test.a.b.c3", ARCHIVES, c3_points(), now=NOW)
    write_whisper(d, "test.a.x.c1", ARCHIVES, [(T0 + i * 60, 42.25) for i in range(120)], now=NOW)
    write_whisper(d, "test.coarse", [(60, 1440)], [(T0 + i * 60, float(i)) for i in range(120)], now=NOW)
    write_whisper(d, "test.bad.good", ARCHIVES, [(T0 + i * 10, 7.0) for i in range(360)], now=NOW)
    (d / "test" / "bad" / "corrupt.wsp").write_bytes(b"not a whisper file")
    srv.start()
    yield srv
    srv.stop()


def wsp(server: HttpCyclone, key: str) -> str:
    return str(Path(server.data_dir, *key.split(".")).with_suffix(".wsp"))


def oracle(server: HttpCyclone, key: str, frm: int, until: int):
    """(start, end, step, values) exactly as whisper.fetch returns them."""
    (start, end, step), values = whisper.fetch(wsp(server, key), frm, until)
    return start, end, step, values


def json_points(values, start: int, step: int) -> list[list]:
    return [[v, start + i * step] for i, v in enumerate(values)]


def render(server: HttpCyclone, **params):
    params.setdefault("format", "json")
    status, headers, body = server.get("/render", params)
    assert status == 200, (status, body[:300])
    return headers, body


# --------------------------------------------------------------------------- index, version, admin


def test_index_links_every_endpoint(server):
    status, headers, body = server.get("/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    page = body.decode()
    for endpoint in ("/render", "/metrics/find", "/metrics/expand", "/metrics/index.json", "/functions",
                     "/version", "/tags/autoComplete/tags", "/events/get_data", "/y/stats", "/y/config"):
        assert f'href="{endpoint}' in page, endpoint


def test_version(server):
    status, headers, body = server.get("/version")
    assert (status, body) == (200, b"1.1.10")
    assert server.get("/version/")[2] == b"1.1.10"


def test_y_config_is_the_config_file(server):
    status, headers, body = server.get("/y/config")
    assert status == 200
    assert body.decode() == server.config_path.read_text()


def test_y_stats_lines(server):
    render(server, target="test.a.b.c1", **{"from": T0, "until": T0 + 600})
    status, headers, body = server.get("/y/stats")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    stats = {}
    for line in body.decode().splitlines():
        name, value = line.split(" ")
        stats[name] = int(value)
    assert stats["http.requests"] >= 1
    assert stats["http.render_requests"] >= 1
    assert any(name.startswith("store.") for name in stats)


# --------------------------------------------------------------------------- render: raw series, exact windows


@pytest.mark.parametrize("frm,until", [
    (T0 + 5, T0 + 605),        # unaligned
    (T0, T0 + 600),            # aligned: whisper starts one step later
    (T0 + 3000, T0 + 3009),    # less than a step
    (T0 - 1000, T0 + 120),     # before the first point
])
def test_render_json_window_and_values_match_whisper_fetch(server, frm, until):
    _h, body = render(server, target="test.a.b.c1", **{"from": frm, "until": until})
    start, end, step, values = oracle(server, "test.a.b.c1", frm, until)
    assert json.loads(body) == [{"target": "test.a.b.c1", "tags": {"name": "test.a.b.c1"},
                                 "datapoints": json_points(values, start, step)}]


def test_render_coarse_archive_selected_by_from(server):
    frm, until = NOW - 5 * 86400, NOW - 4 * 86400 + 3600  # beyond archive 0 of c1: 60 s archive
    _h, body = render(server, target="test.a.b.c1", **{"from": frm, "until": until})
    start, end, step, values = oracle(server, "test.a.b.c1", frm, until)
    assert step == 60
    (series,) = json.loads(body)
    assert series["datapoints"] == json_points(values, start, step)


def test_render_glob_sorted_with_path_expression(server):
    frm, until = T0 + 100, T0 + 1300
    _h, body = render(server, target="test.a.b.*", format="pickle", **{"from": frm, "until": until})
    got = pickle.loads(body)
    assert [s["name"] for s in got] == ["test.a.b.c1", "test.a.b.c2", "test.a.b.c3"]
    for s in got:
        start, end, step, values = oracle(server, s["name"], frm, until)
        assert s == {"name": s["name"], "pathExpression": "test.a.b.*", "start": start, "end": end,
                     "step": step, "values": values, "valuesPerPoint": 1,
                     "consolidationFunc": "average", "xFilesFactor": 0.0}
        assert len(s["values"]) == (s["end"] - s["start"]) // s["step"]


def test_render_pickle_is_builtin_types_only(server):
    _h, body = render(server, target=["test.a.b.c1", "test.a.*.c1"], format="pickle",
                      **{"from": T0, "until": T0 + 600})

    class Strict(pickle.Unpickler):
        def find_class(self, module, name):
            raise AssertionError(f"pickle refers to {module}.{name}")

    got = Strict(io.BytesIO(body)).load()
    assert [(s["name"], s["pathExpression"]) for s in got] == [
        ("test.a.b.c1", "test.a.b.c1"), ("test.a.b.c1", "test.a.*.c1"), ("test.a.x.c1", "test.a.*.c1")]


def test_render_msgpack(server):
    headers, body = render(server, target="test.a.*.c1", format="msgpack", **{"from": T0, "until": T0 + 900})
    assert headers["content-type"] == "application/x-msgpack"
    got = msgpack.unpackb(body, raw=False)
    assert [s["name"] for s in got] == ["test.a.b.c1", "test.a.x.c1"]
    for s in got:
        start, end, step, values = oracle(server, s["name"], T0, T0 + 900)
        assert (s["start"], s["end"], s["step"], s["values"]) == (start, end, step, values)
        assert s["pathExpression"] == "test.a.*.c1"
        assert all(isinstance(k, str) for k in s)


def test_render_csv(server):
    headers, body = render(server, target="test.a.b.c2", format="csv", tz="UTC",
                           **{"from": T0, "until": T0 + 60})
    assert headers["content-type"] == "text/csv"
    start, end, step, values = oracle(server, "test.a.b.c2", T0, T0 + 60)
    rows = list(csv.reader(io.StringIO(body.decode())))
    expected = [["test.a.b.c2", datetime.fromtimestamp(start + i * step, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                 "" if v is None else repr(v)] for i, v in enumerate(values)]
    assert rows == expected
    assert body.endswith(b"\r\n")


def test_render_raw(server):
    headers, body = render(server, target="test.a.b.c*", format="raw", **{"from": T0 + 20, "until": T0 + 80})
    lines = body.decode().splitlines()
    assert len(lines) == 3
    for line, key in zip(lines, ["test.a.b.c1", "test.a.b.c2", "test.a.b.c3"]):
        start, end, step, values = oracle(server, key, T0 + 20, T0 + 80)
        assert line == "%s,%d,%d,%d|%s" % (key, start, end, step, ",".join(repr(v) for v in values))


def test_render_raw_example_exact(server):
    # c2 = 100 - i at T0 + 10 i, no point where i % 5 == 0
    _h, body = render(server, target="test.a.b.c2", format="raw", **{"from": T0 + 15, "until": T0 + 65})
    assert body == (f"test.a.b.c2,{T0 + 20},{T0 + 70},10|98.0,97.0,96.0,None,94.0\n").encode()


def test_render_json_example_exact(server):
    _h, body = render(server, target="test.a.b.c1", **{"from": T0 + 15, "until": T0 + 55})
    assert json.loads(body) == [{"target": "test.a.b.c1", "tags": {"name": "test.a.b.c1"},
                                 "datapoints": [[1.0, T0 + 20], [None, T0 + 30], [2.0, T0 + 40],
                                                [2.5, T0 + 50]]}]


def test_render_trailing_slash_and_default_format_json(server):
    status, headers, body = server.get("/render/", {"target": "test.a.b.c1", "from": T0 + 15, "until": T0 + 55})
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)[0]["datapoints"][0] == [1.0, T0 + 20]


def test_render_post_form_merges_query_string(server):
    status, headers, body = server.post(
        f"/render?format=json&target=test.a.b.c1&from={T0 + 15}",
        {"target": "test.a.b.c2", "until": str(T0 + 55)})
    assert status == 200
    got = json.loads(body)
    assert [s["target"] for s in got] == ["test.a.b.c1", "test.a.b.c2"]
    assert got[1]["datapoints"] == [[98.0, T0 + 20], [97.0, T0 + 30], [96.0, T0 + 40], [None, T0 + 50]]


def test_render_post_multipart_like_graphite_web(server):
    fields = [("format", "pickle"), ("local", "1"), ("noCache", "1"), ("from", str(T0 + 15)),
              ("until", str(T0 + 55)), ("target", "test.a.b.c1"), ("target", "test.a.x.*"),
              ("now", str(int(time.time())))]
    body, ctype = multipart(fields)
    status, headers, data = server.post("/render/", body, ctype)
    assert status == 200 and headers["content-type"] == "application/pickle"
    got = pickle.loads(data)
    assert [(s["name"], s["pathExpression"]) for s in got] == [("test.a.b.c1", "test.a.b.c1"),
                                                               ("test.a.x.c1", "test.a.x.*")]
    assert got[0]["values"] == [1.0, None, 2.0, 2.5]


def test_render_target_brackets_form(server):
    _h, body = render(server, **{"target[]": "test.a.b.c1", "from": T0 + 15, "until": T0 + 55})
    assert json.loads(body)[0]["target"] == "test.a.b.c1"


def test_render_max_data_points_graphite_consolidation(server):
    # 60 points (T0+10 .. T0+600) into 7: vpp = ceil(60/7) = 9; seconds per point 90;
    # nudge = 90 + (start % 10) - (start % 90); graphite drops nudge/10 - 1 values first
    frm, until = T0, T0 + 600
    _h, body = render(server, target="test.a.b.c3", maxDataPoints=7, **{"from": frm, "until": until})
    start, end, step, values = oracle(server, "test.a.b.c3", frm, until)
    vpp = 9
    nudge = 90 + (start % 10) - (start % 90)
    new_start = start + nudge
    vals = values[max(0, nudge // 10 - 1):]
    buckets = [vals[i:i + vpp] for i in range(0, len(vals), vpp)]
    expected_vals = []
    for b in buckets:
        known = [v for v in b if v is not None]
        expected_vals.append(sum(known) / len(known) if known else None)
    ts = list(range(new_start, end + 1, step * vpp))
    expected = [[v, t] for v, t in zip(expected_vals, ts)]
    assert json.loads(body)[0]["datapoints"] == expected


def test_render_max_data_points_one(server):
    _h, body = render(server, target="test.a.b.c2", maxDataPoints=1, **{"from": T0 + 15, "until": T0 + 55})
    assert json.loads(body)[0]["datapoints"] == [[(98.0 + 97.0 + 96.0) / 3, T0 + 20]]


def test_render_no_null_points(server):
    _h, body = render(server, target=["test.a.b.c2", "test.a.b.c1"], noNullPoints="1",
                      **{"from": T0 - 100, "until": T0 + 55})
    got = json.loads(body)
    assert [s["target"] for s in got] == ["test.a.b.c2", "test.a.b.c1"]
    assert got[0]["datapoints"] == [[99.0, T0 + 10], [98.0, T0 + 20], [97.0, T0 + 30], [96.0, T0 + 40]]
    assert got[1]["datapoints"] == [[0.0, T0], [0.5, T0 + 10], [1.0, T0 + 20], [2.0, T0 + 40], [2.5, T0 + 50]]
    # a series with no points at all is left out
    _h, body = render(server, target="test.a.b.c1", noNullPoints="1", **{"from": T0 - 300, "until": T0 - 100})
    assert json.loads(body) == []


def test_render_jsonp(server):
    headers, body = render(server, target="test.a.b.c1", jsonp="cb_1", **{"from": T0 + 15, "until": T0 + 35})
    assert headers["content-type"] == "text/javascript"
    m = re.fullmatch(rb"cb_1\((.*)\)", body, re.S)
    assert m and json.loads(m.group(1))[0]["datapoints"] == [[1.0, T0 + 20], [None, T0 + 30]]


def test_render_large_json_matches_whisper(server):
    # the numpy fast path over a whole day of one series
    frm, until = NOW - 86000, NOW - 100
    _h, body = render(server, target="test.a.b.*", **{"from": frm, "until": until})
    got = json.loads(body)
    assert len(got) == 3
    for s in got:
        start, end, step, values = oracle(server, s["target"], frm, until)
        assert s["datapoints"] == json_points(values, start, step)


# --------------------------------------------------------------------------- render: times


def window_of(server, **params):
    _h, body = render(server, format="raw", target="test.a.b.c3", **params)
    head = body.decode().split("|")[0]
    _name, start, end, step = head.split(",")
    return int(start), int(end), int(step)


def aligned(t: int, step: int = 10) -> int:
    return t - t % step + step


@pytest.mark.parametrize("frm,until,delta", [
    ("-1h", "now", 3600),
    ("-60min", "-0s", 3600),
    ("now-2h", "now-1h", None),
    ("-1d", "now", 86400),
])
def test_render_relative_times(server, frm, until, delta):
    before = int(time.time())
    start, end, step = window_of(server, **{"from": frm, "until": until})
    after = int(time.time())
    if delta is not None:
        assert aligned(before - delta) <= start <= aligned(after - delta)
    else:
        assert aligned(before - 7200) <= start <= aligned(after - 7200)
        assert aligned(before - 3600) <= end <= aligned(after - 3600)


def test_render_now_parameter(server):
    now = T0 + 3600
    start, end, step = window_of(server, now=str(now), **{"from": "-10min", "until": "now"})
    assert (start, end, step) == (aligned(now - 600), aligned(now), 10)


def test_render_absolute_forms(server):
    day = datetime.fromtimestamp(T0, timezone.utc)
    ymd = day.strftime("%Y%m%d")
    hhmm = day.strftime("%H:%M")
    start, end, _ = window_of(server, tz="UTC", **{"from": f"{hhmm}_{ymd}", "until": T0 + 100})
    assert start == aligned(T0)
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    if NOW - midnight < 86400:  # today's midnight still inside archive 0
        start, _end, _ = window_of(server, tz="UTC", **{"from": ymd, "until": T0 + 100})
        assert start == aligned(midnight)
        start, _end, _ = window_of(server, tz="UTC", **{"from": "today", "until": T0 + 100})
        assert start == aligned(midnight)


def test_render_from_after_until_is_swapped(server):
    assert window_of(server, **{"from": T0 + 600, "until": T0}) == window_of(server, **{"from": T0, "until": T0 + 600})


# --------------------------------------------------------------------------- render: nothing found, errors


def test_render_nothing_found_is_200_empty(server):
    for fmt_ in ("json", "pickle", "msgpack", "raw", "csv"):
        status, headers, body = server.get("/render", {"target": "no.such.*", "format": fmt_})
        assert status == 200
        if fmt_ == "json":
            assert json.loads(body) == []
        elif fmt_ == "pickle":
            assert pickle.loads(body) == []
        elif fmt_ == "msgpack":
            assert msgpack.unpackb(body) == []
        else:
            assert body == b""


def test_render_outside_retention_is_absent(server):
    status, _h, body = server.get("/render", {"target": "test.coarse", "from": NOW - 10 * 86400,
                                              "until": NOW - 9 * 86400})
    assert status == 200 and json.loads(body) == []


def test_render_no_targets(server):
    assert server.get_json("/render", {"format": "json"}) == []


def assert_400(resp, *fragments):
    status, headers, body = resp
    assert status == 400, (status, body)
    assert headers["content-type"].startswith("text/plain")
    assert headers.get("connection") == "close"
    text = body.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    for f in fragments:
        assert f in text, (f, text)
    return text


def test_render_errors_are_400_one_line(server):
    assert_400(server.get("/render", {"target": "a..b"}), "a..b")
    assert_400(server.get("/render", {"target": "a b"}), "invalid target")
    assert_400(server.get("/render", {"target": "x", "from": "-1x"}), "-1x")
    assert_400(server.get("/render", {"target": "x", "from": "tomorrowish"}), "tomorrowish")
    assert_400(server.get("/render", {"target": "x", "from": "100", "until": "100"}), "empty time range")
    assert_400(server.get("/render", {"target": "x", "format": "png"}), "png")
    assert_400(server.get("/render", {"target": "x", "maxDataPoints": "many"}), "maxDataPoints")
    assert_400(server.get("/render", {"target": "x", "maxDataPoints": "0"}), "maxDataPoints")
    assert_400(server.get("/render", {"target": "x", "xFilesFactor": "2"}), "xFilesFactor")
    assert_400(server.get("/render", {"target": "x", "jsonp": "alert(1)"}), "jsonp")
    assert_400(server.get("/render", {"target": ["t%d" % i for i in range(1001)]}), "too many targets")


def test_invalid_pattern_in_cluster_format_matches_nothing(server):
    # a 400 would make graphite-web mark this backend failed for everyone
    status, _h, body = server.get("/render", {"target": ["a b", "test.a.b.c1"], "format": "pickle",
                                              "from": T0 + 15, "until": T0 + 35})
    assert status == 200 and [s["name"] for s in pickle.loads(body)] == ["test.a.b.c1"]
    status, _h, body = server.get("/metrics/find", {"query": "a b", "format": "pickle"})
    assert status == 200 and pickle.loads(body) == []


def test_non_200_closes_the_connection(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        # two pipelined requests: the server must answer the first and close
        sock.sendall(b"GET /render?target=a..b HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"connection: close" in head.lower()
    assert b"1.1.10" not in body  # the second request was not served on this connection


def test_keep_alive_on_200(server):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/version")
            resp = conn.getresponse()
            assert resp.read() == b"1.1.10"
            assert resp.getheader("connection") != "close"
    finally:
        conn.close()


def test_unknown_endpoint_and_method(server):
    status, headers, _b = server.get("/nope")
    assert status == 404 and headers["connection"] == "close"
    status, headers, _b = http_request(server.http_port, "PUT", "/render", body=b"")
    assert status == 405


def test_corrupt_file_fails_only_its_series(server):
    before = stats_of(server).get("http.render_read_errors", 0)
    _h, body = render(server, target="test.bad.*", **{"from": T0 + 15, "until": T0 + 35})
    assert json.loads(body) == [{"target": "test.bad.good", "tags": {"name": "test.bad.good"},
                                 "datapoints": [[7.0, T0 + 20], [7.0, T0 + 30]]}]
    assert stats_of(server)["http.render_read_errors"] == before + 1


def test_body_too_large_is_413(server):
    from cyclone.protocols.http import MAX_BODY_BYTES

    status, headers, body = server.post("/render", b"target=" + b"x" * MAX_BODY_BYTES,
                                        "application/x-www-form-urlencoded", timeout=60)
    assert status == 413 and headers["connection"] == "close"


def stats_of(server) -> dict[str, int]:
    _s, _h, body = server.get("/y/stats")
    return {line.split(" ")[0]: int(line.split(" ")[1]) for line in body.decode().splitlines()}


# --------------------------------------------------------------------------- buffered points (line protocol)


def test_points_written_by_line_protocol_render_immediately(server):
    now = int(time.time())
    base = now - now % 10 - 300
    server.send_lines([f"test.line.k1 {i * 1.25} {base + i * 10}" for i in range(20)])

    def got():
        status, _h, body = server.get("/render", {"target": "test.line.k1", "format": "json",
                                                  "from": base - 5, "until": base + 195})
        series = json.loads(body)
        return series if series and all(v is not None for v, _t in series[0]["datapoints"]) else None

    series = server.wait_for(got)
    assert series[0]["datapoints"] == [[i * 1.25, base + i * 10] for i in range(20)]
    assert server.get_json("/metrics/find", {"query": "test.line.*", "format": "json"})[0]["path"] == "test.line.k1"


# --------------------------------------------------------------------------- find


def test_find_treejson_default(server):
    got = server.get_json("/metrics/find", {"query": "test.a.*"})
    assert got == [
        {"text": "b", "id": "test.a.b", "allowChildren": 1, "expandable": 1, "leaf": 0},
        {"text": "x", "id": "test.a.x", "allowChildren": 1, "expandable": 1, "leaf": 0},
    ]
    got = server.get_json("/metrics/find/", {"query": "test.*", "wildcards": "1"})
    assert got[0] == {"text": "*", "id": "test.*", "allowChildren": 1, "expandable": 1, "leaf": 0}
    texts = [n["text"] for n in got[1:]]
    # branches first, then leaves
    assert texts == ["a", "bad", "line", "coarse"] or texts == ["a", "bad", "coarse"]


def test_find_json_pickle_msgpack_with_intervals(server):
    before = int(time.time())
    got = server.get_json("/metrics/find", {"query": "test.a.b.*", "format": "json"})
    after = int(time.time())
    assert [n["path"] for n in got] == ["test.a.b.c1", "test.a.b.c2", "test.a.b.c3"]
    for n in got:
        assert n["is_leaf"] is True
        (iv,) = n["intervals"]
        assert before <= iv["end"] <= after + 1 and iv["end"] - iv["start"] == 60 * 14400

    status, headers, body = server.get("/metrics/find/", {"query": "test.*", "format": "pickle", "local": "1",
                                                          "from": T0, "until": T0 + 600})
    assert status == 200 and headers["content-type"] == "application/pickle"
    nodes = {n["path"]: n for n in pickle.loads(body)}
    assert nodes["test.a"] == {"path": "test.a", "is_leaf": False}
    leaf = nodes["test.coarse"]
    assert leaf["is_leaf"] is True and leaf["intervals"][0][1] - leaf["intervals"][0][0] == 86400

    status, headers, body = server.get("/metrics/find", {"query": "test.a.*.c1", "format": "msgpack"})
    assert headers["content-type"] == "application/x-msgpack"
    nodes = msgpack.unpackb(body, raw=False)
    assert [n["path"] for n in nodes] == ["test.a.b.c1", "test.a.x.c1"]
    assert all(isinstance(n["intervals"][0], list) and len(n["intervals"][0]) == 2 for n in nodes)


def test_find_completer_and_html(server):
    got = server.get_json("/metrics/find", {"query": "test.a.b.c", "format": "completer"})
    assert got == {"metrics": [{"path": "test.a.b.c1", "name": "c1", "is_leaf": "1"},
                               {"path": "test.a.b.c2", "name": "c2", "is_leaf": "1"},
                               {"path": "test.a.b.c3", "name": "c3", "is_leaf": "1"}]}
    got = server.get_json("/metrics/find", {"query": "test.a.", "format": "completer"})
    assert got == {"metrics": [{"path": "test.a.b.", "name": "b", "is_leaf": "0"},
                               {"path": "test.a.x.", "name": "x", "is_leaf": "0"}]}
    status, headers, body = server.get("/metrics/find", {"query": "test.a.*", "format": "html"})
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"test.a.b.*" in body and b"test.a.x.*" in body


def test_find_post_raw_body_like_grafana(server):
    status, _h, body = server.post(f"/metrics/find?from={T0}&until={T0 + 600}", "query=test.a.{b,x}.c1",
                                   "application/x-www-form-urlencoded")
    assert status == 200
    assert json.loads(body) == [
        {"text": "c1", "id": "test.a.{b,x}.c1", "allowChildren": 0, "expandable": 0, "leaf": 1}]
    # multipart, several queries, leaves only
    body, ctype = multipart([("query", "test.a.b.c1"), ("query", "test.*"), ("format", "pickle"),
                             ("leavesOnly", "1")])
    status, _h, data = server.post("/metrics/find", body, ctype)
    assert [n["path"] for n in pickle.loads(data)] == ["test.a.b.c1", "test.coarse"]


def test_find_nothing_and_errors(server):
    assert server.get_json("/metrics/find", {"query": "nothing.*"}) == []
    assert assert_400(server.get("/metrics/find", {}), "query")
    assert_400(server.get("/metrics/find", {"query": "test.*", "format": "yaml"}), "format")
    assert_400(server.get("/metrics/find", {"query": "a..b"}), "a..b")
    assert_400(server.get("/metrics/find", {"query": "test.*", "from": "whenever"}), "whenever")


def test_expand_and_index(server):
    assert server.get_json("/metrics/expand", {"query": "test.a.*"}) == {"results": ["test.a.b", "test.a.x"]}
    got = server.get_json("/metrics/expand/", {"query": ["test.a.*.c1", "test.coarse"], "groupByExpr": "1"})
    assert got == {"results": {"test.a.*.c1": ["test.a.b.c1", "test.a.x.c1"], "test.coarse": ["test.coarse"]}}
    got = server.get_json("/metrics/expand", {"query": "test.*", "leavesOnly": "1"})
    assert got == {"results": ["test.coarse"]}
    index = server.get_json("/metrics/index.json", {"local": "1"})
    expected = {"test.a.b.c1", "test.a.b.c2", "test.a.b.c3", "test.a.x.c1", "test.coarse",
                "test.bad.good", "test.bad.corrupt"}
    assert expected <= set(index) and index == sorted(index)
    assert all(not k.endswith("*") for k in index)


# --------------------------------------------------------------------------- Grafana endpoints


def test_tags_and_events_are_empty_lists(server):
    assert server.get_json("/tags/autoComplete/tags", {"expr": "name=~test.*", "tagPrefix": "", "limit": "100"}) == []
    assert server.get_json("/tags/autoComplete/values",
                           {"expr[]": ["a=b", "c=d"], "tag": "name", "valuePrefix": "x"}) == []
    assert server.get_json("/tags") == []
    assert server.get_json("/tags/findSeries", {"expr": "a=b"}) == []
    assert server.get_json("/events/get_data", {"from": "-1h", "until": "now", "tags": "deploy"}) == []


def test_functions_is_valid_json(server):
    status, headers, body = server.get("/functions")
    assert status == 200 and headers["content-type"] == "application/json"
    assert b"Infinity" not in body and b"NaN" not in body
    funcs = json.loads(body)
    for name in ("sumSeries", "aliasSub", "constantLine"):
        info = funcs[name]
        assert info["name"] == name and isinstance(info["params"], list)
    one = server.get_json(f"/functions/sumSeries")
    assert one["name"] == "sumSeries"
    grouped = server.get_json("/functions", {"grouped": "true"})
    assert all(isinstance(v, dict) for v in grouped.values())
    status, headers, _b = server.get("/functions/noSuchFunction")
    assert status == 404


# --------------------------------------------------------------------------- expressions (function evaluator)


def test_render_expressions(server):
    frm, until = T0 + 15, T0 + 55
    got = server.get_json("/render", {"target": "sumSeries(test.a.b.c1,test.a.b.c2)", "from": frm, "until": until,
                                      "format": "json"})
    assert got[0]["target"] == "sumSeries(test.a.b.c1,test.a.b.c2)"
    assert got[0]["datapoints"] == [[99.0, T0 + 20], [97.0, T0 + 30], [98.0, T0 + 40], [2.5, T0 + 50]]
    got = server.get_json("/render", {"target": "scale(test.a.b.c2,2)", "from": frm, "until": until})
    assert got[0]["datapoints"] == [[196.0, T0 + 20], [194.0, T0 + 30], [192.0, T0 + 40], [None, T0 + 50]]


def test_render_grafana_style(server):
    # Grafana 11.6+: aliasSub(<target>, "(^.*$)", "\1 A"), POST form, maxDataPoints
    status, _h, body = server.post("/render", {
        "target": 'aliasSub(test.a.b.c1, "(^.*$)", "\\1 A")', "from": str(T0 + 15), "until": str(T0 + 55),
        "format": "json", "maxDataPoints": "100", "cacheTimeout": "0"})
    assert status == 200, body
    (s,) = json.loads(body)
    assert s["target"] == "test.a.b.c1 A" and s["target"].split(" ")[-1] == "A"
    assert s["datapoints"] == [[1.0, T0 + 20], [None, T0 + 30], [2.0, T0 + 40], [2.5, T0 + 50]]
    # the datasource health check
    status, _h, body = server.post("/render", {"target": "constantLine(100)", "from": "-1h", "until": "now",
                                               "format": "json", "maxDataPoints": "300"})
    assert status == 200, body
    (s,) = json.loads(body)
    assert s["datapoints"] and all(v == 100 for v, _t in s["datapoints"])


def test_render_bad_expression_is_400(server):
    text = assert_400(server.get("/render", {"target": "sumSeries(test.a.*"}), "sumSeries")
    assert "\n" == text[-1]
    assert_400(server.get("/render", {"target": "noSuchFunction(test.a.b.c1)"}), "noSuchFunction")


def test_series_by_tag_matches_nothing_for_the_cluster(server):
    status, _h, body = server.get("/render", {"target": 'seriesByTag("name=test.a.b.c1")', "format": "pickle",
                                              "from": T0, "until": T0 + 60})
    assert status == 200
    assert isinstance(pickle.loads(body), list)
