"""graphite-web 1.1.10 as a frontend of Cyclone (CLUSTER_SERVERS = ['127.0.0.1:<http port>']).

A dataset goes in through Cyclone's line protocol; graphite-web (the PyPI
package in the venv, served by wsgiref on 127.0.0.1, remote finder only)
must find and render it, and its own functions (sumSeries, averageSeries,
movingAverage, scale, summarize) computed on data fetched from Cyclone must
give exactly the values computed here from the dataset. Three webapp
setups: GET + pickle (the default), REMOTE_STORE_USE_POST (multipart POST),
and `?format=msgpack` in the CLUSTER_SERVERS entry (with the webapp's
bundled umsgpack, since PyPI msgpack >= 1.0 cannot decode for it).
"""

from __future__ import annotations

import time

import pytest

from tests.integration.test_http_helpers import GraphiteWeb, HttpCyclone

pytestmark = pytest.mark.timeout(300)

STEP = 10
NOW = int(time.time())
BASE = NOW - NOW % 3600 - 2 * 3600          # 2-3 hours ago, an hour boundary
N_POINTS = 360                               # one hour at 10 s
HOSTS = ["web1", "web2", "web3"]
FROM, UNTIL = BASE + 605, BASE + 1805        # 20 minutes inside the hour, unaligned


def value(host: str, ts: int) -> float | None:
    """The dataset: web2 has a gap every 4th point, web3 every 7th."""
    i = (ts - BASE) // STEP
    if not 0 <= i < N_POINTS:
        return None
    h = HOSTS.index(host)
    if (h == 1 and i % 4 == 0) or (h == 2 and i % 7 == 3):
        return None
    return 1.5 * i + 10 * h + 0.25


def load_value(ts: int) -> float | None:
    i = (ts - BASE) // STEP
    return float(i % 13) if 0 <= i < N_POINTS else None


def aligned(t: int) -> int:
    return t - t % STEP + STEP


def window(frm: int, until: int) -> list[int]:
    """Timestamps whisper's fetch returns for [frm, until] at 10 s."""
    start, end = aligned(frm), aligned(until)
    return list(range(start, end, STEP))


def expected_raw(host: str, frm: int = FROM, until: int = UNTIL) -> list[list]:
    return [[value(host, t), t] for t in window(frm, until)]


def safe_sum(vals):
    known = [v for v in vals if v is not None]
    return sum(known) if known else None


def safe_avg(vals):
    known = [v for v in vals if v is not None]
    return sum(known) / len(known) if known else None


@pytest.fixture(scope="module")
def cyclone(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gw_cluster")
    srv = HttpCyclone(tmp)
    srv.start()
    lines = []
    for host in HOSTS:
        for i in range(N_POINTS):
            ts = BASE + i * STEP
            v = value(host, ts)
            if v is not None:
                lines.append(f"gw.{host}.cpu.user {v!r} {ts}")
            lines.append(f"gw.{host}.cpu.system {float(i % 5)!r} {ts}")
    lines.extend(f"gw.db.load {load_value(BASE + i * STEP)!r} {BASE + i * STEP}" for i in range(N_POINTS))
    srv.send_lines(lines)

    def all_visible():
        got = srv.get_json("/render", {"target": ["gw.*.cpu.*", "gw.db.load"],
                                       "from": BASE - 5, "until": BASE + N_POINTS * STEP - 5, "format": "json"})
        counts = {s["target"]: sum(v is not None for v, _t in s["datapoints"]) for s in got}
        want = {f"gw.{h}.cpu.user": sum(value(h, BASE + i * STEP) is not None for i in range(N_POINTS))
                for h in HOSTS}
        want.update({f"gw.{h}.cpu.system": N_POINTS for h in HOSTS})
        want["gw.db.load"] = N_POINTS
        return counts == want

    srv.wait_for(all_visible, timeout=30, interval=0.2)
    yield srv
    srv.stop()


WEBAPPS = {
    "get-pickle": dict(use_post=False, fmt=None),
    "post-pickle": dict(use_post=True, fmt=None),
    "get-msgpack": dict(use_post=False, fmt="msgpack"),
}


@pytest.fixture(scope="module", params=list(WEBAPPS))
def webapp(request, cyclone, tmp_path_factory):
    cfg = WEBAPPS[request.param]
    entry = f"127.0.0.1:{cyclone.http_port}" + (f"?format={cfg['fmt']}" if cfg["fmt"] else "")
    gw = GraphiteWeb(tmp_path_factory.mktemp(f"gw_{request.param}"), cluster_servers=[entry],
                     use_post=cfg["use_post"], hide_msgpack=cfg["fmt"] == "msgpack")
    before = stats_of(cyclone)
    gw.start()
    yield gw
    out = gw.stop()
    assert "Error response" not in out and "Error requesting" not in out, out[-3000:]
    # the webapp really talked to Cyclone the way this setup says
    after = stats_of(cyclone)
    grew = {k for k in after if after[k] > before.get(k, 0)}
    fmt = cfg["fmt"] or "pickle"
    assert {f"http.render_format_{fmt}", f"http.find_format_{fmt}"} <= grew, grew
    if cfg["use_post"]:
        assert "http.post_multipart_requests" in grew, grew


def stats_of(srv: HttpCyclone) -> dict[str, int]:
    _s, _h, body = srv.get("/y/stats")
    return {line.split(" ")[0]: int(line.split(" ")[1]) for line in body.decode().splitlines()}


def render(gw: GraphiteWeb, *targets: str, frm: int = FROM, until: int = UNTIL, **extra):
    return gw.get_json("/render", {"target": list(targets), "from": frm, "until": until, "format": "json",
                                   **extra})


# ---------------------------------------------------------------------------


def test_find_through_graphite_web(webapp):
    got = webapp.get_json("/metrics/find", {"query": "gw.*"})
    assert [(n["id"], n["leaf"]) for n in got] == [("gw.db", 0), ("gw.web1", 0), ("gw.web2", 0), ("gw.web3", 0)]
    got = webapp.get_json("/metrics/find", {"query": "gw.web1.cpu.*"})
    assert [(n["id"], n["leaf"]) for n in got] == [("gw.web1.cpu.system", 1), ("gw.web1.cpu.user", 1)]
    got = webapp.get_json("/metrics/find", {"query": "gw.*.cpu.user", "format": "json"})
    assert [(n["path"], n["is_leaf"]) for n in got] == [(f"gw.{h}.cpu.user", True) for h in HOSTS]
    got = webapp.get_json("/metrics/expand", {"query": "gw.web*.cpu.*", "leavesOnly": "1"})
    assert got == {"results": sorted(f"gw.{h}.cpu.{m}" for h in HOSTS for m in ("system", "user"))}
    assert webapp.get_json("/metrics/find", {"query": "nothing.here.*"}) == []


def test_index_json_through_graphite_web(webapp):
    got = webapp.get_json("/metrics/index.json")
    assert sorted(k for k in got if k.startswith("gw.")) == sorted(
        [f"gw.{h}.cpu.{m}" for h in HOSTS for m in ("system", "user")] + ["gw.db.load"])


def test_raw_series(webapp):
    got = render(webapp, "gw.web2.cpu.user")
    assert got == [{"target": "gw.web2.cpu.user", "tags": {"name": "gw.web2.cpu.user"},
                    "datapoints": expected_raw("web2")}]


def test_wildcards(webapp):
    got = render(webapp, "gw.web*.cpu.user", "gw.db.load")
    assert [s["target"] for s in got] == ["gw.web1.cpu.user", "gw.web2.cpu.user", "gw.web3.cpu.user",
                                          "gw.db.load"]
    for s, host in zip(got[:3], HOSTS):
        assert s["datapoints"] == expected_raw(host)
    assert got[3]["datapoints"] == [[load_value(t), t] for t in window(FROM, UNTIL)]
    got = render(webapp, "gw.{web1,web3}.cpu.*")
    assert sorted(s["target"] for s in got) == ["gw.web1.cpu.system", "gw.web1.cpu.user",
                                                "gw.web3.cpu.system", "gw.web3.cpu.user"]


def test_sum_and_average_series(webapp):
    ts = window(FROM, UNTIL)
    got = render(webapp, "sumSeries(gw.web*.cpu.user)", "averageSeries(gw.web*.cpu.user)")
    assert [s["target"] for s in got] == ["sumSeries(gw.web*.cpu.user)", "averageSeries(gw.web*.cpu.user)"]
    assert got[0]["datapoints"] == [[safe_sum([value(h, t) for h in HOSTS]), t] for t in ts]
    assert got[1]["datapoints"] == [[safe_avg([value(h, t) for h in HOSTS]), t] for t in ts]


def test_scale(webapp):
    got = render(webapp, "scale(gw.web3.cpu.user,10)")
    assert got[0]["target"] == "scale(gw.web3.cpu.user,10)"
    assert got[0]["datapoints"] == [[None if v is None else v * 10, t] for v, t in expected_raw("web3")]


def test_moving_average(webapp):
    # graphite refetches from - 3 steps; the value at t averages the points at t-20, t-10, t
    got = render(webapp, "movingAverage(gw.web2.cpu.user,3)")
    assert got[0]["target"] == "movingAverage(gw.web2.cpu.user,3)"
    expected = [[safe_avg([value("web2", t - 20), value("web2", t - 10), value("web2", t)]), t]
                for t in window(FROM, UNTIL)]
    assert got[0]["datapoints"] == expected


def graphite_summarize(ts: list[int], vals: list, start: int, end: int, interval: int):
    """graphite-web's _summarizeValues with func=sum, alignToFrom=False (xFilesFactor 0)."""
    new_start = start - start % interval
    new_end = end - end % interval + interval
    out = []
    i = 0
    t = new_start
    while t < new_end:
        s = i
        non_null = 0
        while i < len(ts) and ts[i] < t + interval:
            if ts[i] <= t:
                s = i
            if ts[i] >= t and vals[i] is not None:
                non_null += 1
            i += 1
        out.append([safe_sum(vals[s:i]) if non_null else None, t])
        t += interval
    return out


def test_summarize(webapp):
    got = render(webapp, 'summarize(gw.web2.cpu.user,"1min","sum")')
    assert got[0]["target"] == 'summarize(gw.web2.cpu.user, "1min", "sum")'
    ts = window(FROM, UNTIL)
    vals = [value("web2", t) for t in ts]
    expected = graphite_summarize(ts, vals, ts[0], ts[-1] + STEP, 60)
    assert got[0]["datapoints"] == expected


def test_max_data_points_through_graphite_web(webapp):
    got = render(webapp, "gw.db.load", maxDataPoints="13")
    # graphite's consolidation of 120 points into <= 13: vpp 10, nudged start
    ts = window(FROM, UNTIL)
    start, end = ts[0], ts[-1] + STEP
    vpp = 10
    nudge = vpp * STEP + (start % STEP) - (start % (vpp * STEP))
    vals = [load_value(t) for t in ts][max(0, nudge // STEP - 1):]
    buckets = [vals[i:i + vpp] for i in range(0, len(vals), vpp)]
    expected = [[safe_avg(b), t] for b, t in zip(buckets, range(start + nudge, end + 1, STEP * vpp))]
    assert got[0]["datapoints"] == expected


def test_empty_results_do_not_fail_the_backend(webapp):
    assert render(webapp, "no.such.series") == []
    assert render(webapp, "sumSeries(no.such.*)") == []
    # the backend is still in use afterwards (a failure would disable it for 60 s)
    assert render(webapp, "gw.web1.cpu.user")[0]["datapoints"] == expected_raw("web1")
