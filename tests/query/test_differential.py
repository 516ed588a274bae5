"""Differential tests: Cyclone's evaluator vs graphite-web 1.1.10 (the oracle).

Every row of CASES is a target string. The test evaluates it with
``cyclone.query.evaluate`` and with graphite-web's own ``evaluateTarget``
over the same generated data (tests/query/datasource.py: gaps, negative
values, 10 s / 30 s / 60 s steps, several series per wildcard) and
compares names, start/end/step, pathExpression, tags, consolidation
attributes, display options and values (None == NaN, 1e-9 relative).

To cover a new function, add one line per argument variant::

    "myFunction(test.gauge.*, 3)",
    C("myAlias(test.gauge.*)", oracle="myFunction(test.gauge.*)"),   # graphite spells it differently
    C("timeShift(test.gauge.a, '1d')", window=WINDOW_ALIGNED),       # another request window

Series available: test.gauge.{a,b,c} (10 s, gaps; b has a 10 min hole; c
is scaled by -2), test.coarse.{x,y} (60 s), test.mixed.{fine,medium,coarse}
(10/30/60 s), test.counter.{c1,c2} (10 s counters with resets, no gaps),
test.counter.gappy, test.wrap.w1 (wraps at 1000), test.div.{num,den,coarseden}
(den has zeros), test.empty.{e1,e2} (no data), test.sparse.s1 (every other
point), test.const.k, test.sp-ec:ial.* (odd path characters),
test.hosts.server{1,2,10,11}.load (60 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cyclone.query import evaluate
from tests.query.datasource import T0
from tests.query.oracle import compare

#: (from, until) of the request: deliberately not aligned to any step.
WINDOW = (T0 + 7, T0 + 3 * 3600 + 13)
WINDOW_ALIGNED = (T0 - T0 % 3600, T0 - T0 % 3600 + 6 * 3600)
WINDOW_SHORT = (T0 + 1234, T0 + 1234 + 600)


@dataclass(frozen=True)
class C:
    """A case that needs more than a target string."""

    target: str
    oracle: str | None = None  # what graphite-web is asked instead (a function it spells differently)
    window: tuple[int, int] = WINDOW
    xff: float | None = None  # the request's xFilesFactor parameter
    tz: str | None = None  # the request's timezone (default UTC)


CASES: list[str | C] = [
    # -- Combine ------------------------------------------------------------
    "sumSeries(test.gauge.*)",
    "sumSeries(test.gauge.a, test.gauge.b)",
    "sumSeries(test.gauge.a,test.coarse.*)",
    "sumSeries(test.mixed.*)",
    "sumSeries(test.gauge.a)",
    "sumSeries(test.nothing.*)",
    "sumSeries(test.nothing.*, test.gauge.c)",
    "sumSeries(test.empty.*)",
    "sum(test.gauge.*)",
    "sum(test.sp-ec:ial.*)",
    "averageSeries(test.gauge.*)",
    "averageSeries(test.mixed.*)",
    "avg(test.gauge.{a,c}, test.coarse.y)",
    "maxSeries(test.gauge.*)",
    "maxSeries(test.mixed.*)",
    "minSeries(test.gauge.*)",
    "minSeries(test.gauge.b, test.sparse.s1)",
    "rangeOfSeries(test.gauge.*)",
    "rangeOfSeries(test.mixed.*)",
    C("range(test.gauge.*)", oracle="rangeOfSeries(test.gauge.*)"),
    "countSeries(test.gauge.*)",
    "countSeries(test.mixed.*)",
    "countSeries(test.gauge.*, test.coarse.*)",
    "countSeries()",
    "countSeries(test.nothing.*)",
    "diffSeries(test.gauge.a, test.gauge.b)",
    "diffSeries(test.gauge.*)",
    "diffSeries(test.mixed.fine, test.mixed.coarse)",
    "diffSeries(test.sparse.s1, test.gauge.*)",
    "multiplySeries(test.gauge.a, test.gauge.c)",
    "multiplySeries(test.gauge.*)",
    "multiplySeries(test.gauge.a)",
    "multiplySeries(test.mixed.*)",
    "stddevSeries(test.gauge.*)",
    "stddevSeries(test.mixed.*)",
    "divideSeries(test.div.num, test.div.den)",
    "divideSeries(test.gauge.*, test.div.den)",
    "divideSeries(test.gauge.*, test.div.coarseden)",
    "divideSeries(test.gauge.a, test.nothing.x)",
    "divideSeries(test.nothing.x, test.div.den)",
    # (no keyword-only calls and no series lists in keyword arguments here:
    # graphite-web 1.1.10 cannot parse the former and never fetches the
    # latter; see the tests at the end)
    "aggregate(test.gauge.*, 'sum')",
    "aggregate(test.gauge.*, 'average')",
    "aggregate(test.gauge.*, 'avg')",
    "aggregate(test.gauge.*, 'avg_zero')",
    "aggregate(test.mixed.*, 'avg_zero')",
    "aggregate(test.gauge.*, 'median')",
    "aggregate(test.hosts.*.load, 'median')",
    "aggregate(test.gauge.*, 'min')",
    "aggregate(test.gauge.*, 'max')",
    "aggregate(test.gauge.*, 'diff')",
    "aggregate(test.gauge.*, 'stddev')",
    "aggregate(test.gauge.*, 'count')",
    "aggregate(test.mixed.*, 'count')",
    "aggregate(test.gauge.*, 'range')",
    "aggregate(test.gauge.*, 'rangeOf')",
    "aggregate(test.gauge.*, 'multiply')",
    "aggregate(test.gauge.*, 'last')",
    "aggregate(test.gauge.*, 'current')",
    "aggregate(test.gauge.*, 'total')",
    "aggregate(test.gauge.*, 'sumSeries')",
    "aggregate(test.gauge.*, 'average', 0.5)",
    "aggregate(test.gauge.*, 'sum', 1)",
    "aggregate(test.mixed.*, func='max', xFilesFactor=0.7)",
    "aggregate(test.nothing.*, 'sum')",
    "group(test.gauge.a, test.coarse.*)",
    "group(test.gauge.*, test.nothing.*, test.empty.e1)",
    "group()",
    # -- Transform ----------------------------------------------------------
    "absolute(test.gauge.*)",
    "absolute(test.empty.e1)",
    "scale(test.gauge.*, 2)",
    "scale(test.gauge.a, -0.5)",
    "scale(test.gauge.a, 1e3)",
    "scale(test.gauge.a, 1234567.5)",
    "test.gauge.a|scale(3)",
    "offset(test.gauge.*, 10)",
    "offset(test.gauge.a, -2.5)",
    "offset(test.gauge.a, factor=1e-3)",
    "derivative(test.gauge.*)",
    "derivative(test.counter.*)",
    "derivative(test.mixed.*)",
    "nonNegativeDerivative(test.counter.*)",
    "nonNegativeDerivative(test.gauge.*)",
    "nonNegativeDerivative(test.wrap.w1)",
    "nonNegativeDerivative(test.wrap.w1, 1000)",
    "nonNegativeDerivative(test.wrap.w1, 999, 5)",
    "nonNegativeDerivative(test.counter.c1, minValue=3)",
    "nonNegativeDerivative(test.counter.c1, maxValue=200)",
    "perSecond(test.counter.*)",
    "perSecond(test.gauge.*)",
    "perSecond(test.mixed.*)",
    "perSecond(test.wrap.w1, 1000)",
    "perSecond(test.wrap.w1, maxValue=999, minValue=5)",
    "perSecond(test.counter.c2, minValue=10)",
    "integral(test.gauge.*)",
    "integral(test.coarse.x)",
    "integral(test.empty.e1)",
    "keepLastValue(test.gauge.*)",
    "keepLastValue(test.gauge.b, 3)",
    "keepLastValue(test.gauge.b, 100)",
    "keepLastValue(test.sparse.s1, 1)",
    "keepLastValue(test.gauge.b, limit=0)",
    "keepLastValue(test.gauge.b, inf)",
    "keepLastValue(test.empty.e1)",
    "transformNull(test.gauge.*)",
    "transformNull(test.gauge.b, -1)",
    "transformNull(test.gauge.b, 0)",
    "transformNull(test.gauge.a, 2.5)",
    "transformNull(test.empty.e1, default=7)",
    "transformNull(test.gauge.b, -1, test.gauge.a)",
    "transformNull(test.gauge.*, 3, test.sparse.s1)",
    "transformNull(test.gauge.b, 1, test.coarse.x)",
    "transformNull(test.gauge.b, 1, test.nothing.x)",
    "summarize(test.gauge.*, '1h')",
    "summarize(test.gauge.a, '15min', 'avg')",
    "summarize(test.gauge.a, '15min', 'average')",
    "summarize(test.gauge.b, '10min', 'max')",
    "summarize(test.gauge.b, '10min', 'min')",
    "summarize(test.gauge.b, '7min', 'last')",
    "summarize(test.gauge.b, '7min', 'median')",
    "summarize(test.gauge.b, '7min', 'count')",
    "summarize(test.gauge.b, '7min', 'avg_zero')",
    "summarize(test.gauge.b, '7min', 'multiply')",
    "summarize(test.gauge.b, '7min', 'diff')",
    "summarize(test.gauge.b, '7min', 'stddev')",
    "summarize(test.gauge.b, '7min', 'range')",
    "summarize(test.gauge.a, '1h', 'sum', true)",
    "summarize(test.gauge.b, '25min', 'avg', alignToFrom=true)",
    "summarize(test.coarse.*, '45s')",
    "summarize(test.mixed.*, '2min', 'avg')",
    "summarize(test.gauge.a, '1d')",
    C("summarize(test.gauge.*, '1h')", window=WINDOW_ALIGNED),
    C("summarize(test.gauge.a, '1h', 'sum', true)", window=WINDOW_ALIGNED),
    "summarize(test.empty.e1, '10min')",
    "hitcount(test.gauge.*, '1h')",
    "hitcount(test.gauge.a, '7min')",
    "hitcount(test.coarse.*, '45s')",
    "hitcount(test.coarse.x, '25s')",
    "hitcount(test.mixed.*, '5min')",
    "hitcount(test.gauge.b, '15min', true)",
    "hitcount(test.gauge.b, '1h', alignToInterval=true)",
    "hitcount(test.gauge.b, '1d', true)",
    "hitcount(test.coarse.y, '90s', true)",
    "hitcount(test.gauge.a, '30s', true)",
    C("hitcount(test.gauge.a, '1h', true)", window=WINDOW_ALIGNED),
    C("hitcount(test.gauge.a, '1h', true)", tz="Asia/Kolkata"),
    C("hitcount(test.gauge.a, '1d', true)", tz="America/New_York"),
    C("hitcount(test.coarse.x, '2min', true)", tz="Asia/Kathmandu"),
    "timeShift(test.gauge.*, '1h')",
    "timeShift(test.gauge.a, '-30min')",
    "timeShift(test.gauge.a, '+15min')",
    "timeShift(test.coarse.x, '1d')",
    "timeShift(test.gauge.a, '7min', false)",
    "timeShift(test.gauge.a, '-1h', resetEnd=false)",
    "timeShift(test.gauge.a, timeShift='2h')",
    "timeShift(test.mixed.*, '1h')",
    "timeShift(sumSeries(test.gauge.*), '1h')",
    "timeShift(test.nothing.*, '1h')",
    "sumSeries(timeShift(test.gauge.*, '10min'))",
    C("timeShift(test.gauge.a, '1h')", window=WINDOW_SHORT),
    # -- Calculate ----------------------------------------------------------
    "movingAverage(test.gauge.*, 5)",
    "movingAverage(test.gauge.b, 30)",
    "movingAverage(test.gauge.a, '5min')",
    "movingAverage(test.gauge.a, '-5min')",
    "movingAverage(test.mixed.*, 5)",
    "movingAverage(test.mixed.*, '10min')",
    "movingAverage(test.gauge.b, 10, 0.5)",
    "movingAverage(test.gauge.b, '2min', xFilesFactor=1)",
    "movingAverage(test.gauge.a, '5s')",
    "movingAverage(test.empty.e1, 5)",
    "movingAverage(test.nothing.x, 5)",
    "movingAverage(scale(test.gauge.a, 2), 4)",
    "movingSum(test.gauge.*, 5)",
    "movingSum(test.coarse.x, '1h')",
    "movingMin(test.gauge.*, 7)",
    "movingMin(test.gauge.b, '3min')",
    "movingMax(test.gauge.*, 7)",
    "movingMax(test.mixed.*, '90s')",
    "movingMedian(test.gauge.*, 5)",
    "movingMedian(test.gauge.a, 6)",
    "movingMedian(test.gauge.b, '10min', 0.3)",
    "movingWindow(test.gauge.a, 5)",
    "movingWindow(test.gauge.*, 5, 'sum')",
    "movingWindow(test.gauge.a, '5min', 'median', 0.5)",
    "movingWindow(test.gauge.b, 6, 'avg')",
    "movingWindow(test.gauge.b, 6, 'avg_zero')",
    "movingWindow(test.gauge.b, 6, 'multiply')",
    "movingWindow(test.gauge.b, 6, 'diff')",
    "movingWindow(test.gauge.b, 6, 'stddev')",
    "movingWindow(test.gauge.b, 6, 'count')",
    "movingWindow(test.gauge.b, 6, 'range')",
    "movingWindow(test.gauge.b, 6, 'last')",
    "movingWindow(test.mixed.*, 3, func='max', xFilesFactor=0.6)",
    "movingAverage(timeShift(test.gauge.a, '1h'), 5)",
    "timeShift(movingAverage(test.gauge.a, '5min'), '1h')",
    # -- Alias --------------------------------------------------------------
    "alias(test.gauge.a, 'Gauge A')",
    'alias(test.gauge.*, "all")',
    "alias(sumSeries(test.gauge.*), 'total')",
    "sumSeries(alias(test.gauge.*, 'x'))",
    "aliasByMetric(test.gauge.*)",
    "aliasByMetric(scale(test.gauge.a, 2))",
    "aliasByMetric(movingAverage(test.gauge.a, '5min'))",
    "aliasByMetric(sumSeries(test.gauge.a, test.gauge.b))",
    "aliasByMetric(test.sp-ec:ial.*)",
    "aliasByNode(test.gauge.*, 2)",
    "aliasByNode(test.hosts.*.load, 2, 3)",
    "aliasByNode(test.hosts.*.load, -2)",
    "aliasByNode(test.hosts.*.load, 1, 'name')",
    "aliasByNode(test.hosts.*.load, 7)",
    "aliasByNode(scale(test.hosts.*.load, 2), 2)",
    "aliasByNode(sumSeries(test.gauge.*), 1)",
    "aliasByNode(movingAverage(test.hosts.*.load, 5), 2)",
    r'aliasSub(test.gauge.*, "^test\.gauge\.(\w)$", "g-\1")',
    r"aliasSub(test.hosts.*.load, 'server(\d+)', 'srv\1')",
    r'aliasSub(test.gauge.a, "(^.*$)", "\1 A")',
    r'aliasSub(sumSeries(test.gauge.*), "(^.*$)", "\1 B")',
    r"aliasSub(test.gauge.a, 'nomatch', 'x')",
    r"aliasSub(test.gauge.a, search='gauge', replace='')",
    # -- Graph (display only) ------------------------------------------------
    "color(test.gauge.*, 'red')",
    "color(test.gauge.a, '6464ffaa')",
    "lineWidth(test.gauge.*, 3)",
    "lineWidth(test.gauge.a, 0.5)",
    "alpha(test.gauge.a, 0.3)",
    "dashed(test.gauge.*)",
    "dashed(test.gauge.a, 3)",
    "secondYAxis(test.gauge.*)",
    "stacked(test.gauge.*)",
    "stacked(test.gauge.*, 'tx')",
    "stacked(test.mixed.*)",
    "alias(color(test.gauge.a, 'blue'), 'x')",
    "scale(lineWidth(test.gauge.a, 2), 2)",
    "derivative(color(test.gauge.a, 'blue'))",
    # -- Filter / sort ------------------------------------------------------
    "removeEmptySeries(test.*.*)",
    "removeEmptySeries(test.hosts.*.load)",
    "removeEmptySeries(test.gauge.*, 0.9)",
    "removeEmptySeries(test.sparse.s1, 0.5)",
    "removeEmptySeries(test.sparse.s1, xFilesFactor=0.51)",
    "limit(test.gauge.*, 2)",
    "limit(test.gauge.*, 0)",
    "limit(test.gauge.*, 10)",
    "limit(test.gauge.*, -1)",
    "sortByName(test.hosts.*.load)",
    "sortByName(test.hosts.*.load, true)",
    "sortByName(test.hosts.*.load, true, true)",
    "sortByName(test.hosts.*.load, natural=false, reverse=true)",
    "sortByName(group(test.gauge.c, test.coarse.*, test.gauge.a))",
    # -- Special ------------------------------------------------------------
    "constantLine(100)",
    "constantLine(-1.5)",
    "constantLine(1e3)",
    C("constantLine(100)", window=WINDOW_SHORT),
    "consolidateBy(test.gauge.*, 'sum')",
    "consolidateBy(test.gauge.a, 'max')",
    "consolidateBy(test.gauge.a, 'first')",
    "consolidateBy(test.gauge.a, consolidationFunc='avg_zero')",
    "sumSeries(consolidateBy(test.mixed.*, 'max'))",
    "sumSeries(consolidateBy(test.mixed.*, 'last'))",
    "sumSeries(consolidateBy(test.mixed.*, 'first'))",
    "sumSeries(consolidateBy(test.mixed.*, 'sum'))",
    "sumSeries(consolidateBy(test.mixed.*, 'min'))",
    "sumSeries(consolidateBy(test.mixed.*, 'avg_zero'))",
    "divideSeries(consolidateBy(test.gauge.a, 'sum'), test.div.coarseden)",
    # -- Syntax forms and nesting --------------------------------------------
    "test.gauge.a",
    "test.gauge.{a,c}",
    "test.gauge.[ab]",
    "test.hosts.server[0-9].load",
    "test.hosts.server?.load",
    "test.hosts.server1*.load",
    "test.sp-ec:ial.a#b@c%d=e",
    "test.gauge.a|scale(2)|offset(-1)|alias('x')",
    "test.gauge.*|sumSeries()",
    "sumSeries(test.gauge.a|scale(2), test.gauge.b)",
    "test.gauge.* | movingAverage(5) | aliasByNode(2)",
    "  sumSeries( test.gauge.a , test.gauge.b )  ",
    "template(test.gauge.$1, 'a')",
    "template(sumSeries(test.$type.*), type='gauge')",
    "template(scale(test.gauge.a, $f), f=2)",
    "absolute(derivative(integral(test.gauge.b)))",
    "sumSeries(movingAverage(test.gauge.*, 5), test.coarse.x)",
    "nonNegativeDerivative(sumSeries(test.counter.*))",
    "keepLastValue(perSecond(test.counter.gappy))",
    "summarize(derivative(test.gauge.a), '10min', 'max')",
    "hitcount(scale(test.gauge.a, 2), '10min')",
    "perSecond(summarize(test.counter.c1, '5min', 'last'))",
    "divideSeries(sumSeries(test.gauge.*), test.coarse.y)",
    "transformNull(movingSum(test.gauge.b, '1min'), 0)",
    # -- the request's xFilesFactor ------------------------------------------
    C("sumSeries(test.gauge.*)", xff=0.5),
    C("averageSeries(test.mixed.*)", xff=0.5),
    C("test.mixed.fine|sumSeries(test.mixed.coarse)", xff=0.9),
    C("movingAverage(test.gauge.b, 10)", xff=0.8),
    C("summarize(test.gauge.b, '10min', 'avg')", xff=0.95),
    C("divideSeries(test.mixed.fine, test.mixed.coarse)", xff=1.0),
    C("countSeries(test.gauge.*)", xff=0.5),
    C("constantLine(1)", xff=0.5),
    C("aggregate(test.gauge.*, 'sum', 0.1)", xff=1.0),
]


def _case(row: str | C) -> C:
    return row if isinstance(row, C) else C(row)


def _id(row: str | C) -> str:
    case = _case(row)
    out = case.target.strip()
    if case.window != WINDOW:
        out += f"@{case.window[0]}-{case.window[1]}"
    if case.xff is not None:
        out += f"@xff={case.xff}"
    if case.tz is not None:
        out += f"@{case.tz}"
    return out


@pytest.mark.parametrize("row", CASES, ids=[_id(r) for r in CASES])
def test_matches_graphite(row: str | C, source, oracle) -> None:
    case = _case(row)
    start, end = case.window
    expected = oracle.evaluate(case.oracle or case.target, start, end, now=end, x_files_factor=case.xff, tz=case.tz)
    got = evaluate([case.target], start, end, source, now=end, x_files_factor=case.xff, tz=case.tz)
    compare(got, expected, case.target)


RANDOM_WINDOW_TARGETS = [
    "sumSeries(test.mixed.*)",
    "divideSeries(test.gauge.a, test.div.coarseden)",
    "movingAverage(test.mixed.*, 4)",
    "movingMax(test.gauge.b, '3min')",
    "summarize(test.mixed.*, '5min', 'avg')",
    "summarize(test.gauge.b, '13min', 'last', true)",
    "hitcount(test.mixed.*, '4min')",
    "hitcount(test.coarse.x, '1h', true)",
    "timeShift(test.mixed.*, '17min')",
    "perSecond(test.counter.gappy)",
    "keepLastValue(test.gauge.b, 5)",
    "constantLine(3)",
    "countSeries(test.mixed.*)",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.integers(min_value=T0 - 86400, max_value=T0 + 86400),
    length=st.integers(min_value=1, max_value=4 * 3600),
    target=st.sampled_from(RANDOM_WINDOW_TARGETS),
)
def test_random_windows_match_graphite(start, length, target, source, oracle) -> None:
    end = start + length
    compare(evaluate([target], start, end, source, now=end), oracle.evaluate(target, start, end, now=end), target)


def test_all_targets_of_a_request_are_fetched_in_one_read(source) -> None:
    start, end = WINDOW
    before = len(source.reads)
    evaluate(["sumSeries(test.gauge.*)", "scale(test.coarse.x, 2)", "test.gauge.a|alias('x')"], start, end, source)
    reads = source.reads[before:]
    assert len(reads) == 1
    assert sorted(reads[0][0]) == ["test.coarse.x", "test.gauge.*", "test.gauge.a"]


def test_functions_needing_another_window_fetch_it_once_more(source) -> None:
    start, end = WINDOW
    before = len(source.reads)
    evaluate(["movingAverage(test.gauge.*, '5min')", "timeShift(test.gauge.a, '1h')"], start, end, source)
    reads = source.reads[before:]
    assert reads[0][1:] == (start, end)
    assert sorted((r[1], r[2]) for r in reads[1:]) == sorted([(start - 300, end), (start - 3600, end - 3600)])


# -- Where Cyclone deliberately differs from graphite-web 1.1.10 ---------------
# (graphite-web crashes or returns garbage there; these pin down our answer)


def test_series_list_keyword_arguments_are_fetched(source, oracle) -> None:
    # graphite-web never prefetches paths given as keyword arguments (they come
    # out empty); Cyclone fetches them like positional ones.
    start, end = WINDOW
    by_kw = evaluate(["transformNull(test.gauge.b, 1, referenceSeries=test.gauge.a)"], start, end, source)
    positional = evaluate(["transformNull(test.gauge.b, 1, test.gauge.a)"], start, end, source)
    assert [s.name for s in by_kw] == [s.name for s in positional] == ["transformNull(test.gauge.b,1,referenceSeries)"]
    assert by_kw[0].values.tobytes() == positional[0].values.tobytes()
    graphite = oracle.evaluate("transformNull(test.gauge.b, 1, referenceSeries=test.gauge.a)", start, end)
    assert [s.name for s in graphite] == ["transformNull(test.gauge.b,1)"]


def test_keyword_only_calls_evaluate(source, oracle) -> None:
    # graphite-web parses "f(kw=...)" as the path "f" and returns nothing.
    start, end = WINDOW
    by_kw = evaluate(["divideSeries(dividendSeriesList=test.div.num, divisorSeries=test.div.den)"], start, end, source)
    positional = evaluate(["divideSeries(test.div.num, test.div.den)"], start, end, source)
    assert [s.name for s in by_kw] == [s.name for s in positional] == ["divideSeries(test.div.num,test.div.den)"]
    assert by_kw[0].values.tobytes() == positional[0].values.tobytes()
    assert oracle.evaluate("scale(seriesList=test.gauge.a, factor=2)", start, end) == []


def test_transform_null_with_a_longer_reference_keeps_the_series_length(source) -> None:
    start, end = WINDOW
    (s,) = evaluate(["transformNull(test.coarse.x, 1, test.gauge.a)"], start, end, source)
    (raw,) = evaluate(["test.coarse.x"], start, end, source)
    assert len(s) == len(raw)
    present = ~__import__("numpy").isnan(raw.values)
    assert (s.values[present] == raw.values[present]).all()


def test_non_negative_derivative_with_max_value_handles_gaps(source, oracle) -> None:
    # graphite-web raises TypeError (None > maxValue) on a gap when maxValue is set.
    start, end = WINDOW
    (s,) = evaluate(["nonNegativeDerivative(test.counter.gappy, 1000)"], start, end, source)
    (plain,) = evaluate(["nonNegativeDerivative(test.counter.gappy)"], start, end, source)
    import numpy as np

    both = ~np.isnan(plain.values)
    assert (s.values[both] == plain.values[both]).all()
    with pytest.raises(TypeError):
        oracle.evaluate("nonNegativeDerivative(test.counter.gappy, 1000)", start, end)
