"""Cyclone's HTTP API against graphite-web 1.1.10 reading the same whisper files directly.

graphite-web (standard finder, STANDARD_DIRS = Cyclone's data directory, no
cluster) is the reference: for raw paths and globs, Cyclone's /render in
every format and option (maxDataPoints, noNullPoints, windows across
archives, csv/raw/pickle) and its /metrics/find formats, /metrics/expand
and /metrics/index.json must give the same answers, value for value.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import time

import pytest

from tests.integration.test_http_helpers import GraphiteWeb, HttpCyclone, write_whisper

pytestmark = pytest.mark.timeout(300)

NOW = int(time.time())
T0 = NOW - NOW % 3600 - 5 * 3600
SERIES = {
    # key: (archives, aggregation, xff, points)
    "orc.web1.load": ([(10, 8640), (60, 43200)], "average", 0.0,
                      [(T0 - 86400 * 3 + i * 60, i * 0.75) for i in range(3 * 1440)]
                      + [(T0 + i * 10, (i % 17) * 1.125) for i in range(1800) if i % 9 != 4]),
    "orc.web2.load": ([(10, 8640), (60, 43200)], "average", 0.0,
                      [(T0 + i * 10, 1000.0 / (i + 1)) for i in range(1800) if i % 5 != 0]),
    "orc.web3.load": ([(10, 8640), (60, 43200)], "max", 0.5,
                      [(T0 + i * 10, -float(i)) for i in range(0, 1800, 3)]),
    "orc.db.conns": ([(60, 1440), (300, 2016)], "sum", 0.0,
                     [(T0 + i * 60, float(i % 11)) for i in range(300)]),
    "orc.db.tiny": ([(1, 600), (10, 360)], "last", 0.0, []),
    "orc.deep.a.b.c": ([(10, 8640)], "average", 0.0, [(T0 + i * 10, 1e15 + i) for i in range(100)]),
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oracle")
    srv = HttpCyclone(tmp / "cyclone")
    for key, (archives, agg, xff, points) in SERIES.items():
        write_whisper(srv.data_dir, key, archives, points, xff=xff, agg=agg, now=NOW)
    srv.start()
    gw = GraphiteWeb(tmp / "gw", whisper_dir=srv.data_dir)
    gw.start()
    yield srv, gw
    gw.stop()
    srv.stop()


def both(pair, path: str, params: dict) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    srv, gw = pair
    s1, _h1, b1 = srv.get(path, params)
    s2, _h2, b2 = gw.get(path, params)
    return (s1, b1), (s2, b2)


RENDER_CASES = [
    dict(target="orc.web1.load", **{"from": T0 + 5, "until": T0 + 3605}),
    dict(target="orc.web*.load", **{"from": T0 - 300, "until": T0 + 1000}),
    dict(target=["orc.web2.load", "orc.db.*"], **{"from": T0 + 17, "until": T0 + 7000}),
    dict(target="orc.web1.load", **{"from": T0 - 2 * 86400, "until": T0 - 86400}),   # 60 s archive
    dict(target="orc.db.conns", **{"from": T0 - 3600, "until": T0 + 18000}),
    dict(target="orc.deep.a.b.c", **{"from": T0, "until": T0 + 1000}),
    dict(target="orc.{web1,web3}.load", **{"from": T0 + 3, "until": T0 + 17999}),
]


@pytest.mark.parametrize("case", range(len(RENDER_CASES)))
@pytest.mark.parametrize("options", [
    {},
    {"maxDataPoints": "1"},
    {"maxDataPoints": "2"},
    {"maxDataPoints": "7"},
    {"maxDataPoints": "100"},
    {"maxDataPoints": "5000"},
    {"noNullPoints": "1"},
    {"maxDataPoints": "33", "noNullPoints": "1"},
])
def test_render_json_same_as_graphite_web(pair, case, options):
    params = dict(RENDER_CASES[case], format="json", now=str(NOW), **options)
    (s1, b1), (s2, b2) = both(pair, "/render", params)
    assert s1 == s2 == 200
    assert json.loads(b1) == json.loads(b2)


@pytest.mark.parametrize("case", range(len(RENDER_CASES)))
def test_render_raw_csv_pickle_same_as_graphite_web(pair, case):
    base = dict(RENDER_CASES[case], now=str(NOW), tz="UTC")
    (s1, b1), (s2, b2) = both(pair, "/render", dict(base, format="raw"))
    assert s1 == s2 == 200 and b1 == b2
    (s1, b1), (s2, b2) = both(pair, "/render", dict(base, format="csv"))
    assert s1 == s2 == 200
    assert list(csv.reader(io.StringIO(b1.decode()))) == list(csv.reader(io.StringIO(b2.decode())))
    (s1, b1), (s2, b2) = both(pair, "/render", dict(base, format="pickle"))
    assert s1 == s2 == 200
    assert pickle.loads(b1) == pickle.loads(b2)


@pytest.mark.parametrize("query", ["orc.*", "orc.web*.*", "orc.db.*", "orc.*.load", "orc.{db,deep}.*",
                                   "orc.deep.a.*", "nothing.*"])
@pytest.mark.parametrize("fmt", ["treejson", "completer", "json", "pickle"])
def test_find_same_as_graphite_web(pair, query, fmt):
    params = {"query": query, "format": fmt}
    if fmt == "treejson":
        params["wildcards"] = "1"
    (s1, b1), (s2, b2) = both(pair, "/metrics/find", params)
    assert s1 == s2 == 200
    if fmt == "pickle":
        r1, r2 = pickle.loads(b1), pickle.loads(b2)
    else:
        r1, r2 = json.loads(b1), json.loads(b2)
    if fmt == "completer":  # graphite shuffles nodes, then sorts by name only: ties come in any order
        r1["metrics"].sort(key=lambda n: (n["name"], n.get("path", "")))
        r2["metrics"].sort(key=lambda n: (n["name"], n.get("path", "")))
    if fmt in ("json", "pickle"):  # graphite's whisper intervals end at the file's mtime: compare the rest
        for r in (r1, r2):
            for node in r:
                node.pop("intervals", None)
        if fmt == "pickle":  # graphite keeps its backends' order for pickle; compare as sets
            r1 = sorted(r1, key=lambda n: (n["path"], n["is_leaf"]))
            r2 = sorted(r2, key=lambda n: (n["path"], n["is_leaf"]))
    assert r1 == r2


def test_expand_and_index_same_as_graphite_web(pair):
    for params in ({"query": "orc.*"}, {"query": ["orc.*.load", "orc.db.*"], "groupByExpr": "1"},
                   {"query": "orc.*.*", "leavesOnly": "1"}):
        (s1, b1), (s2, b2) = both(pair, "/metrics/expand", params)
        assert s1 == s2 == 200 and json.loads(b1) == json.loads(b2)
    # graphite-web's own index.json reads an index file built offline: compare with the dataset
    srv, _gw = pair
    assert srv.get_json("/metrics/index.json") == sorted(SERIES)
