"""TimeSeries helpers vs graphite-web: consolidation (maxDataPoints, normalize)
and the vectorised aggregation functions, with hypothesis-generated data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cyclone.query import evaluate
from cyclone.query.aggfuncs import AGG_ALIASES, AGG_FUNCS, reduce_rows, reduce_windows
from cyclone.query.series import TimeSeries, apply_max_data_points, consolidate_values, parse_tags
from tests.query.datasource import T0
from tests.query.oracle import graphite_values

values_st = st.lists(
    st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: round(v, 3))),
    min_size=0,
    max_size=60,
)


def as_array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def same(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    assert (np.isnan(a) == np.isnan(b)).all()
    m = ~np.isnan(a)
    assert np.allclose(a[m], b[m], rtol=1e-9, atol=1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=values_st,
    vpp=st.integers(min_value=1, max_value=9),
    func=st.sampled_from(["sum", "average", "avg", "avg_zero", "min", "max", "first", "last"]),
    xff=st.sampled_from([0.0, 0.3, 0.5, 1.0]),
)
def test_consolidate_values_matches_graphite(values, vpp, func, xff, oracle):
    from graphite.render.datalib import TimeSeries as GTimeSeries

    g = GTimeSeries("a", 0, 10 * len(values), 10, values, consolidate=func, xFilesFactor=xff)
    g.consolidate(vpp)
    expected = [np.nan if v is None else v for v in g]
    same(consolidate_values(as_array(values), vpp, func, xff), expected)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(values_st.filter(lambda r: len(r) > 0), min_size=1, max_size=5), func=st.sampled_from(list(AGG_FUNCS) + list(AGG_ALIASES)))
def test_reduce_rows_matches_graphite_aggfuncs(rows, func, oracle):
    from graphite.functions.aggfuncs import getAggFunc

    agg = getAggFunc(func)
    width = max(len(r) for r in rows)
    padded = [r + [None] * (width - len(r)) for r in rows]
    # aggregate()/summarize() pass the Nones; movingWindow passes only non-null values
    expected = []
    for r in padded:
        v = agg(r) if any(x is not None for x in r) else None
        expected.append(np.nan if v is None else v)
    same(reduce_rows(as_array(sum(padded, [])).reshape(len(rows), width), func, nulls_passed=True), expected)
    expected = []
    for r in padded:
        nn = [x for x in r if x is not None]
        v = agg(nn) if nn else None
        expected.append(np.nan if v is None else v)
    same(reduce_rows(as_array(sum(padded, [])).reshape(len(rows), width), func, nulls_passed=False), expected)


@settings(max_examples=200, deadline=None)
@given(values=values_st.filter(lambda r: len(r) > 0), w=st.integers(min_value=1, max_value=12), func=st.sampled_from(list(AGG_FUNCS)))
def test_reduce_windows_matches_row_reduction(values, w, func):
    from numpy.lib.stride_tricks import sliding_window_view

    v = as_array(values)
    if len(v) < w:
        assert len(reduce_windows(v, w, func)) == 0
        return
    expected = reduce_rows(sliding_window_view(v, w), func, nulls_passed=False)
    same(reduce_windows(v, w, func), expected)


def test_py_round_is_pythons_round():
    from cyclone.query.functions._util import py_round

    values = np.array([0.0000125, 2.5e-6, 0.1234565, -0.0000005, 1.0000005, 3.14159265, np.nan, np.inf])
    expected = [round(x, 6) if np.isfinite(x) else x for x in values.tolist()]
    got = py_round(values, 6).tolist()
    assert got[:6] == expected[:6] and np.isnan(got[6]) and got[7] == np.inf


# -- maxDataPoints (graphite-web's JSON renderer is the oracle) --------------------------


def graphite_json(targets, start, end, max_data_points):
    from django.test import RequestFactory
    from graphite.render.views import renderView

    params = {"target": targets, "from": str(start), "until": str(end), "format": "json", "noCache": "1"}
    if max_data_points is not None:
        params["maxDataPoints"] = str(max_data_points)
    response = renderView(RequestFactory().get("/render", params))
    assert response.status_code == 200, response.content
    return json.loads(response.content)


@pytest.mark.parametrize("max_data_points", [None, 1, 2, 7, 50, 100, 299, 300, 1000, 1081, 5000])
@pytest.mark.parametrize("window", [(T0 + 7, T0 + 3 * 3600 + 13), (T0 - T0 % 3600, T0 - T0 % 3600 + 86400)])
def test_max_data_points_like_graphite_json(max_data_points, window, source, oracle):
    targets = [
        "test.gauge.a",
        "consolidateBy(test.gauge.b, 'max')",
        "consolidateBy(test.gauge.c, 'sum')",
        "consolidateBy(test.sparse.s1, 'last')",
        "consolidateBy(test.mixed.*, 'avg_zero')",
        "test.coarse.x",
        "constantLine(100)",
        "summarize(test.gauge.a, '7min')",
    ]
    start, end = window
    expected = graphite_json(targets, start, end, max_data_points)
    got = evaluate(targets, start, end, source, now=end)
    assert [s.name for s in got] == [e["target"] for e in expected]
    apply_max_data_points(got, max_data_points)
    for s, e in zip(got, expected):
        points = s.datapoints()
        assert [t for _, t in points] == [t for _, t in e["datapoints"]], s.name
        same([np.nan if v is None else v for v, _ in points], [np.nan if v is None else v for v, _ in e["datapoints"]])
        assert s.tags == e["tags"]


def test_consolidate_without_time_range_uses_length():
    s = TimeSeries("a", 100, 100 + 10 * 10, 10, np.arange(10.0))
    s.consolidate(20)
    assert s.values_per_point == 1
    s.consolidate(5)
    assert s.values_per_point == 2
    # start nudged to a multiple of 20 (+ start % step), one value dropped less than the nudge spans
    assert s.start == 120
    assert s.consolidated_values().tolist() == [1.5, 3.5, 5.5, 7.5, 9.0]


def test_read_only_inputs_are_not_modified(source):
    start, end = T0 + 7, T0 + 3600
    (raw,) = evaluate(["test.gauge.b"], start, end, source)
    with pytest.raises(ValueError):
        raw.values[0] = 1.0


@pytest.mark.parametrize(
    "name, tags",
    [
        ("a.b.c", {"name": "a.b.c"}),
        ("a.b;dc=east;host=x", {"name": "a.b", "dc": "east", "host": "x"}),
        ("sumSeries(a.b;x=y)", {"name": "sumSeries(a.b;x=y)"}),
        ("a.b;bad", {"name": "a.b;bad"}),
        ("~a.b", {"name": "a.b"}),
    ],
)
def test_parse_tags_like_graphite(name, tags, oracle):
    from graphite.render.datalib import TimeSeries as GTimeSeries

    assert parse_tags(name) == tags
    assert dict(GTimeSeries(name, 0, 10, 10, [1]).tags) == tags
