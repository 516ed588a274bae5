"""Differential tests for the math / calculate / forecast batch
(cyclone/query/functions/math_transform.py and forecast.py) against
graphite-web 1.1.10, plus argument errors.

Rows work like tests/query/test_differential.py: a target string, or a
`C` row with another window or a different oracle spelling.
"""

from __future__ import annotations

import pytest

from cyclone.query import evaluate
from cyclone.query.errors import QueryError
from tests.query.datasource import T0
from tests.query.oracle import compare
from tests.query.test_differential import WINDOW, WINDOW_ALIGNED, WINDOW_SHORT, C

# absolute times inside WINDOW for timeSlice / linearRegression
T_A = T0 + 1800
T_B = T0 + 7200

CASES: list[str | C] = [
    # -- pow / squareRoot / invert / log -------------------------------------
    "pow(test.gauge.*, 2)",
    "pow(test.gauge.a, 0.5)",
    "pow(test.gauge.c, -1)",
    "pow(test.div.den, -2)",
    "pow(test.gauge.a, factor=3)",
    "pow(test.gauge.a, 1000)",
    "pow(test.empty.e1, 2)",
    "squareRoot(test.gauge.*)",
    "squareRoot(test.mixed.*)",
    "invert(test.div.den)",
    "invert(test.gauge.*)",
    "log(test.gauge.*)",
    "log(test.gauge.a, 2)",
    "log(test.counter.c1, base=3)",
    C("logarithm(test.gauge.a, 10)", oracle="log(test.gauge.a, 10)"),
    # -- isNonNull / offsetToZero / minMax / scaleToSeconds ------------------
    "isNonNull(test.gauge.*)",
    "isNonNull(test.empty.e1)",
    "sumSeries(isNonNull(test.mixed.*))",
    "offsetToZero(test.gauge.*)",
    "offsetToZero(test.empty.e1)",
    "offsetToZero(test.coarse.x)",
    "minMax(test.gauge.*)",
    "minMax(test.const.k)",
    "minMax(test.empty.e1)",
    "scaleToSeconds(test.gauge.*, 1)",
    "scaleToSeconds(test.coarse.x, 30)",
    "scaleToSeconds(test.gauge.a, 2.5)",
    "scaleToSeconds(derivative(test.counter.c1), seconds=60)",
    # -- changed / cumulative / delay / interpolate ----------------------------
    "changed(test.gauge.*)",
    "changed(test.const.k)",
    "changed(test.div.den)",
    "changed(test.sparse.s1)",
    "cumulative(test.gauge.*)",
    "sumSeries(cumulative(test.mixed.*))",
    "delay(test.gauge.a, 1)",
    "delay(test.gauge.*, 5)",
    "delay(test.gauge.a, -3)",
    "delay(test.gauge.a, steps=2000)",
    "delay(test.gauge.a, -2000)",
    "delay(test.gauge.a, 0)",
    "divideSeries(test.gauge.a, delay(test.gauge.a, 1))",
    "interpolate(test.gauge.*)",
    "interpolate(test.sparse.s1)",
    "interpolate(test.gauge.b, 3)",
    "interpolate(test.gauge.b, limit=100)",
    "interpolate(test.gauge.b, 0)",
    "interpolate(test.gauge.b, inf)",
    "interpolate(test.mixed.*)",
    "interpolate(test.empty.e1)",
    # -- integralByInterval / timeSlice / timeStack ----------------------------
    "integralByInterval(test.gauge.*, '1h')",
    "integralByInterval(test.gauge.b, '10min')",
    "integralByInterval(test.coarse.x, '7min')",
    "integralByInterval(test.gauge.a, '-30min')",
    "integralByInterval(test.gauge.a, intervalUnit='1d')",
    "integralByInterval(test.gauge.a, '10s')",
    C("integralByInterval(test.mixed.*, '1h')", window=WINDOW_ALIGNED),
    f"timeSlice(test.gauge.*, '{T_A}', '{T_B}')",
    f"timeSlice(test.coarse.x, '{T_A}', endSliceAt='{T_B}')",
    f"timeSlice(test.gauge.b, startSliceAt='{T_A}', endSliceAt='{T_A + 600}')",
    "timeSlice(test.gauge.a, '22:30_20231114', '23:15_20231114')",
    f"timeSlice(test.gauge.a, '{T_B}', '{T_A}')",
    "timeStack(test.gauge.a)",
    "timeStack(test.gauge.a, '1h', 0, 3)",
    "timeStack(test.gauge.*, '30min', 1, 3)",
    "timeStack(test.mixed.*, '-1h', 0, 2)",
    "timeStack(test.gauge.a, '+1h', -1, 1)",
    "timeStack(test.gauge.a, timeShiftUnit='2h', timeShiftStart=2, timeShiftEnd=4)",
    "timeStack(test.nothing.*, '1h', 0, 2)",
    "averageSeries(timeStack(test.coarse.y, '1d', 0, 3))",
    # -- substr / threshold ----------------------------------------------------
    "substr(test.gauge.*)",
    "substr(test.hosts.*.load, 2)",
    "substr(test.hosts.*.load, 1, 3)",
    "substr(test.hosts.*.load, -2)",
    "substr(scale(test.gauge.a, 2), 1)",
    "substr(test.hosts.*.load, start=0, stop=-1)",
    "threshold(123.456)",
    "threshold(10, 'limit')",
    "threshold(-1.5, 'low', 'red')",
    "threshold(7, label='seven', color='blue')",
    "threshold(7, color='blue')",
    # -- powSeries / divideSeriesLists / percentileOfSeries ---------------------
    "powSeries(test.gauge.a, test.const.k)",
    "powSeries(test.const.k, test.div.den)",
    "powSeries(test.gauge.*)",
    "powSeries(test.mixed.*)",
    "powSeries(test.gauge.a)",
    "powSeries(test.nothing.*)",
    "divideSeriesLists(test.gauge.*, test.gauge.*)",
    "divideSeriesLists(test.gauge.{a,b}, test.div.{den,coarseden})",
    "divideSeriesLists(test.mixed.*, group(test.coarse.x, test.coarse.y, test.gauge.a))",
    "divideSeriesLists(test.nothing.*, test.nothing.*)",
    "percentileOfSeries(test.gauge.*, 50)",
    "percentileOfSeries(test.gauge.*, 95)",
    "percentileOfSeries(test.gauge.*, 50, true)",
    "percentileOfSeries(test.gauge.*, 33.3, interpolate=true)",
    "percentileOfSeries(test.mixed.*, 75)",
    "percentileOfSeries(test.hosts.*.load, 10)",
    "percentileOfSeries(test.hosts.*.load, 100)",
    "percentileOfSeries(test.nothing.*, 50)",
    # -- asPercent --------------------------------------------------------------
    "asPercent(test.gauge.*)",
    "asPercent(test.mixed.*)",
    "asPercent(test.gauge.*, 1500)",
    "asPercent(test.gauge.a, 12.5)",
    "asPercent(test.mixed.*, 100)",
    "asPercent(test.gauge.*, test.gauge.a)",
    "asPercent(test.gauge.*, test.coarse.x)",
    "asPercent(test.gauge.*, test.div.den)",
    "asPercent(test.gauge.{a,b}, test.coarse.*)",
    "asPercent(test.gauge.a, test.coarse.x)",
    "asPercent(test.hosts.*.load, None, 2)",
    "asPercent(test.hosts.*.load, None, 1)",
    "asPercent(test.*.*, None, 1)",
    "asPercent(test.gauge.*, test.coarse.*, 1)",
    "asPercent(test.gauge.*, test.gauge.*, 2)",
    "asPercent(test.gauge.{b,c}, test.gauge.{a,b}, 2)",
    "asPercent(test.hosts.server1.load, test.hosts.*.load, 2)",
    "asPercent(test.mixed.{fine,coarse}, test.mixed.{medium,coarse}, 2)",
    "asPercent(test.mixed.*, test.coarse.x, 0)",
    "asPercent(test.mixed.*, None, 0)",
    "pct(test.gauge.*)",
    "asPercent(test.nothing.*)",
    # -- weightedAverage ------------------------------------------------------------
    "weightedAverage(test.gauge.*, test.gauge.*, 2)",
    "weightedAverage(test.gauge.{a,b}, test.counter.{c1,c2}, 1)",
    "weightedAverage(test.gauge.{a,b}, test.div.{den,num}, 1)",
    "weightedAverage(test.hosts.*.load, test.hosts.*.load, 2)",
    "weightedAverage(test.gauge.{a,b}, test.gauge.{b,c}, 2)",
    "weightedAverage(test.gauge.a, test.coarse.x)",
    "weightedAverage(test.nothing.*, test.nothing.*, 1)",
    # -- aggregateLine / nPercentile / stdev -------------------------------------------
    "aggregateLine(test.gauge.*)",
    "aggregateLine(test.gauge.a, 'max')",
    "aggregateLine(test.gauge.a, 'min', true)",
    "aggregateLine(test.gauge.*, func='sum', keepStep=true)",
    "aggregateLine(test.gauge.b, 'median')",
    "aggregateLine(test.gauge.b, 'count')",
    "aggregateLine(test.gauge.b, 'avg_zero')",
    "aggregateLine(test.gauge.b, 'stddev')",
    "aggregateLine(test.gauge.b, 'range')",
    "aggregateLine(test.gauge.b, 'diff')",
    "aggregateLine(test.gauge.b, 'last')",
    "aggregateLine(test.gauge.b, 'multiply')",
    "aggregateLine(test.const.k, 'multiply')",
    "aggregateLine(test.empty.e1)",
    "aggregateLine(test.empty.e1, 'count')",
    "aggregateLine(test.empty.e1, 'avg_zero', true)",
    "aggregateLine(test.coarse.*, 'avg')",
    "nPercentile(test.gauge.*, 50)",
    "nPercentile(test.gauge.a, 95)",
    "nPercentile(test.gauge.b, 12.5)",
    "nPercentile(test.coarse.*, 100)",
    "nPercentile(test.mixed.*, n=1)",
    "nPercentile(test.empty.e1, 50)",
    "stdev(test.gauge.*, 5)",
    "stdev(test.gauge.b, 30)",
    "stdev(test.gauge.b, 10, 0.0)",
    "stdev(test.gauge.b, 10, 0.95)",
    "stdev(test.sparse.s1, 4, windowTolerance=0.5)",
    "stdev(test.coarse.x, points=3)",
    "stdev(test.const.k, 5)",
    "stdev(test.gauge.a, 5000)",
    "stdev(test.empty.e1, 5)",
    # -- holtWintersForecast / linearRegression ---------------------------------------
    "holtWintersForecast(test.gauge.a)",
    "holtWintersForecast(test.gauge.*, '1d', '1h')",
    "holtWintersForecast(test.coarse.*, '2d')",
    "holtWintersForecast(test.gauge.b, bootstrapInterval='6h', seasonality='30min')",
    "holtWintersForecast(test.mixed.*, '3h', '1h')",
    "holtWintersForecast(test.sparse.s1, '1h', '10min')",
    "holtWintersForecast(test.gauge.a, '95s', '1h')",
    "holtWintersForecast(test.empty.e1, '1h', '10min')",
    C("holtWintersForecast(test.gauge.b, '1d')", window=WINDOW_SHORT),
    "linearRegression(test.gauge.*)",
    "linearRegression(test.counter.c1)",
    "linearRegression(test.mixed.*)",
    f"linearRegression(test.gauge.a, '{T_A}')",
    f"linearRegression(test.gauge.*, '{T_A}', '{T_B}')",
    f"linearRegression(test.coarse.x, startSourceAt='{T0 - 86400}', endSourceAt='{T0}')",
    "linearRegression(test.gauge.a, '20231114')",
    "linearRegression(test.empty.e1)",
    "linearRegression(test.nothing.*)",
    # -- nesting ----------------------------------------------------------------
    "asPercent(pow(test.gauge.a, 2), sumSeries(pow(test.gauge.*, 2)))",
    "stdev(interpolate(test.gauge.b), 6)",
    "log(offsetToZero(test.gauge.c), 2)",
    "minMax(holtWintersForecast(test.coarse.y, '1d', '2h'))",
    "linearRegression(integralByInterval(test.gauge.a, '1h'))",
    "holtWintersForecast(sumSeries(test.gauge.*), '6h', '1h')",
    "timeStack(scale(test.gauge.a, 2), '1h', 0, 2)",
    "interpolate(delay(test.gauge.b, 2))",
    "percentileOfSeries(group(test.sparse.s1, test.gauge.b), 50, true)",
    "weightedAverage(timeStack(test.gauge.a, '1h', 0, 2), timeStack(test.gauge.b, '1h', 0, 2), 4)",
    "changed(pow(test.div.den, 2))",
]


def _case(row: str | C) -> C:
    return row if isinstance(row, C) else C(row)


def _id(row: str | C) -> str:
    c = _case(row)
    return c.target + ("" if c.window == WINDOW else f"@{c.window[0]}")


@pytest.mark.parametrize("row", CASES, ids=[_id(r) for r in CASES])
def test_matches_graphite(row: str | C, source, oracle) -> None:
    case = _case(row)
    start, end = case.window
    expected = oracle.evaluate(case.oracle or case.target, start, end, now=end)
    got = evaluate([case.target], start, end, source, now=end)
    compare(got, expected, case.target)


ERRORS = [
    "pow(test.gauge.a, 'x')",
    "pow(test.gauge.a)",
    "log(test.gauge.a, 2.5)",
    "log(test.gauge.a, 1)",
    "log(test.gauge.a, 0)",
    "delay(test.gauge.a, '1h')",
    "delay(test.gauge.a, 1.5)",
    "scaleToSeconds(test.gauge.a, 'x')",
    "interpolate(test.gauge.a, 'x')",
    "integralByInterval(test.gauge.a, 5)",
    "integralByInterval(test.gauge.a, '0s')",
    "integralByInterval(test.gauge.a, 'xyz')",
    "timeSlice(test.gauge.a)",
    "timeSlice(test.gauge.a, 'notatime')",
    "timeStack(test.gauge.a, 5)",
    "timeStack(test.gauge.a, '1d', 'a')",
    "substr(test.gauge.a, 'x')",
    "threshold('x')",
    "threshold(test.gauge.a)",
    "powSeries(1)",
    "divideSeriesLists(test.gauge.*, test.gauge.a)",
    "divideSeriesLists(test.gauge.a)",
    "percentileOfSeries(test.gauge.*, 0)",
    "percentileOfSeries(test.gauge.*, -5)",
    "percentileOfSeries(test.gauge.*, 'x')",
    "asPercent(test.gauge.*, test.gauge.{a,b})",
    "asPercent(test.gauge.*, 'x')",
    "asPercent(test.gauge.*, 100, 1)",
    "weightedAverage(test.gauge.*, test.gauge.a, 1)",
    "weightedAverage(test.gauge.a)",
    "aggregateLine(test.gauge.a, 'bogus')",
    "aggregateLine(test.gauge.a, 'sumSeries')",
    "aggregateLine(test.gauge.a, 'avg', 'maybe')",
    "nPercentile(test.gauge.a, 0)",
    "nPercentile(test.gauge.a)",
    "stdev(test.gauge.a, '5')",
    "stdev(test.gauge.a, -1)",
    "stdev(test.gauge.a, 5, 'x')",
    "holtWintersForecast(test.gauge.a, 7)",
    "holtWintersForecast(test.gauge.a, '1d', '10s')",
    "linearRegression(test.gauge.a, 'garbage')",
    "changed(1)",
    "cumulative('x')",
    "isNonNull(test.gauge.a, 1)",
]


@pytest.mark.parametrize("target", ERRORS)
def test_bad_arguments_raise_query_error(target: str, source) -> None:
    start, end = WINDOW
    with pytest.raises(QueryError):
        evaluate([target], start, end, source, now=end)


def test_inputs_are_not_modified(source) -> None:
    start, end = WINDOW
    before = evaluate(["test.gauge.*"], start, end, source, now=end)
    snapshot = [(s.name, s.values.copy(), dict(s.tags)) for s in before]
    targets = [
        "pow(test.gauge.*, 2)", "changed(test.gauge.*)", "interpolate(test.gauge.*)", "delay(test.gauge.*, 2)",
        "minMax(test.gauge.*)", "stdev(test.gauge.*, 5)", "asPercent(test.gauge.*)", "timeSlice(test.gauge.*, '-1h')",
        "test.gauge.*",
    ]
    got = evaluate(targets, start, end, source, now=end)
    for name, values, tags in snapshot:
        same = [s for s in got if s.name == name]
        assert same, name
        assert same[0].tags == tags
        assert ((same[0].values == values) | ((same[0].values != same[0].values) & (values != values))).all()


def test_as_percent_missing_without_a_window_uses_its_own(source) -> None:
    # graphite-web raises UnboundLocalError here (no normalize ran before the
    # first MISSING series); Cyclone gives the series' own window.
    start, end = WINDOW
    got = evaluate(["asPercent(test.gauge.{a,b}, test.gauge.{b,c}, 2)"], start, end, source, now=end)
    assert [s.name for s in got] == [
        "asPercent(test.gauge.a,MISSING)", "asPercent(test.gauge.b,test.gauge.b)", "asPercent(MISSING,test.gauge.c)"
    ]
    assert all(s.step == 10 for s in got)
    assert (got[0].values != got[0].values).all() and (got[2].values != got[2].values).all()


def test_time_slice_and_linear_regression_use_the_request_now(source) -> None:
    # graphite-web parses these dates against the wall clock; Cyclone uses
    # the request's now (the same thing unless the request sets &now=).
    start, end = WINDOW
    [s] = evaluate(["timeSlice(test.gauge.a, '-1h')"], start, end, source, now=end)
    assert s.name == f"timeSlice(test.gauge.a, {end - 3600}, {end})"
    [r] = evaluate(["linearRegression(test.gauge.a, '-2h', 'now')"], start, end, source, now=end)
    assert r.name == f"linearRegression(test.gauge.a, {end - 7200}, {end})"
