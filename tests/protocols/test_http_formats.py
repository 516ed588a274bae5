"""Render and find formatters: graphite's consolidation, the numpy JSON fast path, JSON safety."""

from __future__ import annotations

import json
import math
import pickle

import msgpack
import numpy as np
import pytest

from cyclone.protocols import http_formats as fmt

pytestmark = pytest.mark.timeout(60)


def graphite_consolidate(values, vpp, func, xff):
    """A literal copy of graphite-web 1.1.10's TimeSeries.__consolidatingGenerator."""
    funcs = {
        "sum": sum,
        "average": lambda u: sum(u) / len(u),
        "avg_zero": lambda u: sum(u) / len(u),
        "max": max,
        "min": min,
        "first": lambda u: u[0],
        "last": lambda u: u[-1],
    }
    cf = funcs[func]
    buf, valcnt, non_null = [], 0, 0
    for x in values:
        valcnt += 1
        if x is not None:
            buf.append(x)
            non_null += 1
        elif func == "avg_zero":
            buf.append(0)
        if valcnt == vpp:
            yield cf(buf) if non_null and non_null / vpp >= xff else None
            buf, valcnt, non_null = [], 0, 0
    if valcnt > 0:
        yield cf(buf) if non_null and non_null / vpp >= xff else None


def as_list(a: np.ndarray) -> list:
    return [None if v != v else v for v in a.tolist()]


@pytest.mark.parametrize("func", ["sum", "average", "avg_zero", "max", "min", "first", "last"])
@pytest.mark.parametrize("vpp", [1, 2, 3, 7, 64, 1000])
@pytest.mark.parametrize("xff", [0.0, 0.5, 1.0])
def test_consolidate_matches_graphite(func, vpp, xff):
    rng = np.random.default_rng(vpp * 31 + int(xff * 10))
    for n in (0, 1, 5, 99, 500):
        values = rng.normal(1e6, 1e5, n)
        values[rng.random(n) < 0.3] = np.nan
        if n > 20:
            values[:15] = np.nan  # a bucket with nothing known
        expected = list(graphite_consolidate(as_list(values), vpp, func, xff))
        got = as_list(fmt.consolidate(values, vpp, func, xff)) if vpp > 1 else as_list(values)
        assert got == expected, (func, vpp, xff, n)


def test_consolidate_sums_left_to_right_like_python():
    values = np.array([1e16, 1.0, 1.0, -1e16, 0.5] * 7)
    got = fmt.consolidate(values, len(values), "sum")
    assert got.tolist() == [sum(values.tolist())]


def test_consolidate_unknown_function():
    with pytest.raises(ValueError):
        fmt.consolidate(np.arange(4.0), 2, "median")


@pytest.mark.parametrize("n", [1, 2, 3, 17, 8640])
@pytest.mark.parametrize("start,step", [(1700000000, 10), (1700000005, 60), (10, 1)])
def test_json_fast_path_equals_slow_path(n, start, step):
    rng = np.random.default_rng(n)
    values = rng.random(n) * 10.0 ** rng.integers(-8, 20, n)
    values[rng.random(n) < 0.25] = np.nan
    values[rng.random(n) < 0.05] = -0.0
    fast = fmt.json_datapoints(values, start, step)
    slow = fmt._points_slow(values, start, step)
    assert json.loads(fast) == json.loads(slow)
    assert json.loads(fast) == [[None if v != v else v, start + i * step] for i, v in enumerate(values.tolist())]


def test_json_timestamps_of_different_widths():
    values = np.arange(30.0)
    got = json.loads(fmt.json_datapoints(values, 9999999900, 10))  # crosses 10 digits -> 11
    assert [t for _v, t in got] == [9999999900 + 10 * i for i in range(30)]


def test_json_infinity_like_graphite():
    values = np.array([1.0, np.inf, -np.inf, np.nan])
    body = fmt.json_datapoints(values, 100, 10)
    assert body == b"[[1.0,100],[1e9999,110],[-1e9999,120],[null,130]]"
    assert json.loads(body)[1][0] == math.inf


def test_render_json_shape_and_tags():
    s = fmt.RenderSeries("a.b", 100, 130, 10, np.array([1.0, np.nan, 3.5]), tags={"name": "a.b", "x": 1})
    body, ctype = fmt.render_json([s])
    assert ctype == "application/json"
    assert json.loads(body) == [{"target": "a.b", "tags": {"name": "a.b", "x": "1"},
                                 "datapoints": [[1.0, 100], [None, 110], [3.5, 120]]}]
    body, ctype = fmt.render_json([s], jsonp="cb")
    assert ctype == "text/javascript" and body.startswith(b"cb([") and body.endswith(b"])")
    assert fmt.render_json([])[0] == b"[]"


def test_render_json_max_data_points_like_graphite():
    # 60 values from 1000 at 10 s into 7 points (graphite: vpp 9, start nudged to 1080, 7 values dropped)
    values = np.arange(60.0)
    s = fmt.RenderSeries("a", 1000, 1600, 10, values)
    got = json.loads(fmt.render_json([s], max_data_points=7)[0])[0]["datapoints"]
    vals = values.tolist()[7:]
    buckets = [vals[i:i + 9] for i in range(0, len(vals), 9)]
    assert got == [[sum(b) / len(b), 1080 + 90 * i] for i, b in enumerate(buckets)]


def test_pickle_and_msgpack_cluster_shape():
    s = fmt.RenderSeries("a.b", 100, 130, 10, np.array([1.0, np.nan, 3.5]), path_expression="a.*")
    info = {"name": "a.b", "start": 100, "end": 130, "step": 10, "values": [1.0, None, 3.5],
            "pathExpression": "a.*", "valuesPerPoint": 1, "consolidationFunc": "average", "xFilesFactor": 0.0}
    body, ctype = fmt.render_pickle([s])
    assert ctype == "application/pickle" and pickle.loads(body) == [info]
    body, ctype = fmt.render_msgpack([s])
    assert ctype == "application/x-msgpack" and msgpack.unpackb(body, raw=False) == [info]


def test_find_formats():
    nodes = [fmt.FindNode("a.b", False), fmt.FindNode("a.c", True, [(10, 20)])]
    assert pickle.loads(fmt.find_pickle(nodes)[0]) == [
        {"path": "a.b", "is_leaf": False}, {"path": "a.c", "is_leaf": True, "intervals": [(10, 20)]}]
    assert msgpack.unpackb(fmt.find_msgpack(nodes)[0], raw=False) == [
        {"path": "a.b", "is_leaf": False}, {"path": "a.c", "is_leaf": True, "intervals": [[10, 20]]}]
    assert fmt.find_json(nodes)[1] == {"path": "a.c", "is_leaf": True, "intervals": [{"start": 10, "end": 20}]}
    tree = fmt.find_treejson(nodes, "a.", wildcards=True)
    assert tree == [
        {"text": "*", "id": "a.*", "allowChildren": 1, "expandable": 1, "leaf": 0},
        {"text": "b", "id": "a.b", "allowChildren": 1, "expandable": 1, "leaf": 0},
        {"text": "c", "id": "a.c", "allowChildren": 0, "expandable": 0, "leaf": 1},
    ]
    assert fmt.find_completer(nodes, wildcards=True) == {"metrics": [
        {"path": "a.b.", "name": "b", "is_leaf": "0"}, {"path": "a.c", "name": "c", "is_leaf": "1"},
        {"name": "*"}]}


def test_dumps_sanitized_is_valid_json():
    body = fmt.dumps_sanitized({"f": {"params": [{"default": math.inf}, {"default": -math.inf},
                                                  {"default": math.nan}, {"default": "Infinity"}]}})
    assert json.loads(body) == {"f": {"params": [{"default": math.inf}, {"default": -math.inf},
                                                 {"default": None}, {"default": "Infinity"}]}}
    assert b"Infinity," not in body and b"NaN" not in body
