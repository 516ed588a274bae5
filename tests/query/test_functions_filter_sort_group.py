"""Differential tests of the filter / sort / group functions against
graphite-web 1.1.10 (the oracle), plus their error cases.

Each row of CASES is a target string (or a `C` with a different request
window); it is evaluated by Cyclone and by graphite-web over the same
generated data and the results are compared with `tests.query.oracle.compare`
(names, windows, path expressions, tags, display options, values).

The data is the shared differential data set plus a few series these
functions need: tagged names (groupByNode(s) by tag), gap-free pairs for
useSeriesAbove, and equal-valued series to check that sorting is stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cyclone.query import evaluate
from cyclone.query.errors import QueryError
from tests.query.datasource import SPECS, T0, MemorySource, Spec
from tests.query.oracle import compare

WINDOW = (T0 + 7, T0 + 3 * 3600 + 13)
WINDOW_SHORT = (T0 + 1234, T0 + 1234 + 600)
WINDOW_TINY = (T0 + 1234, T0 + 1234 + 25)

EXTRA_SPECS = {
    "test.tagged.cpu;dc=east;host=h1": Spec(10, gap_mod=7),
    "test.tagged.cpu;dc=west;host=h2": Spec(10, scale=-1.0),
    "test.tagged.mem;dc=east;host=h2": Spec(10, gap_mod=3),
    "test.tagged.disk;host=h3": Spec(60),
    "test.use.reqs.a": Spec(10, kind="counter"),
    "test.use.time.a": Spec(10, gap_mod=5),
    "test.use.reqs.b": Spec(10, kind="constant"),
    "test.use.time.b": Spec(10),
    "test.use.gappy.reqs": Spec(10, kind="counter", gap_mod=4),
    "test.tie.t1": Spec(10, kind="constant"),
    "test.tie.t0": Spec(10, kind="constant"),
    "test.tie.t2": Spec(30, kind="constant"),
    "test.neg.n1": Spec(10, scale=-3.0, gap_mod=6),
    "test.neg.n2": Spec(30, kind="divisor"),
}

SOURCE = MemorySource({**SPECS, **EXTRA_SPECS})


@dataclass(frozen=True)
class C:
    target: str
    window: tuple[int, int] = WINDOW


CASES: list[str | C] = [
    # -- threshold filters (filterSeries shortcuts) --------------------------
    "averageAbove(test.gauge.*, 0)",
    "averageAbove(test.gauge.*, -1000)",
    "averageAbove(test.empty.*, -1000)",
    "averageAbove(test.mixed.*, n=0.5)",
    "averageBelow(test.gauge.*, 0)",
    "averageBelow(test.empty.*, 1)",
    "averageBelow(test.neg.*, -1.5)",
    # (no series lists as keyword arguments: graphite-web 1.1.10 does not
    # prefetch paths in keyword arguments)
    "averageBelow(test.gauge.*, n=3)",
    "currentAbove(test.gauge.*, 0)",
    "currentAbove(test.counter.*, 50)",
    "currentAbove(test.sparse.s1, -100)",
    "currentBelow(test.gauge.*, 5.5)",
    "currentBelow(test.empty.*, -1)",
    "currentBelow(test.div.*, n=0)",
    "maximumAbove(test.gauge.*, 20)",
    "maximumAbove(test.hosts.*.load, 0)",
    "maximumBelow(test.gauge.*, 40)",
    "maximumBelow(test.hosts.*.load, 30)",
    "maximumBelow(test.neg.*, 2)",
    "minimumAbove(test.gauge.*, -30)",
    "minimumAbove(test.counter.*, -1)",
    "minimumAbove(test.const.k, 5)",
    "minimumBelow(test.gauge.*, -20)",
    "minimumBelow(test.const.k, 5)",
    "minimumBelow(test.mixed.*, n=-10)",
    C("averageAbove(test.gauge.*, 0)", WINDOW_SHORT),
    C("currentBelow(test.tagged.*, 0)", WINDOW_TINY),
    # -- filterSeries ------------------------------------------------------
    "filterSeries(test.gauge.*, 'max', '>', 20)",
    "filterSeries(test.gauge.*, 'min', '>=', -25)",
    "filterSeries(test.gauge.*, 'average', '<', 0)",
    "filterSeries(test.gauge.*, 'sum', '<=', 0)",
    "filterSeries(test.const.k, 'average', '=', 5)",
    "filterSeries(test.tie.*, 'last', '!=', 5)",
    "filterSeries(test.empty.*, 'max', '!=', 5)",
    "filterSeries(test.empty.*, 'max', '=', 5)",
    "filterSeries(test.empty.*, 'count', '=', 0)",
    "filterSeries(test.empty.*, 'avg_zero', '<=', 0)",
    "filterSeries(test.gauge.*, 'median', '>', 1)",
    "filterSeries(test.gauge.*, 'diff', '>', -100)",
    "filterSeries(test.gauge.*, 'stddev', '>', 10)",
    "filterSeries(test.mixed.*, 'count', '>', 200)",
    "filterSeries(test.gauge.*, 'range', '>=', 40)",
    "filterSeries(test.gauge.*, 'rangeOf', '<', 40)",
    "filterSeries(test.counter.*, 'multiply', '>', 0)",
    "filterSeries(test.gauge.*, 'multiply', '!=', 0)",
    "filterSeries(test.gauge.*, 'avg', '>', 0)",
    "filterSeries(test.gauge.*, 'total', '>', 0)",
    "filterSeries(test.gauge.*, 'current', '<', 0)",
    "filterSeries(test.gauge.*, 'avg_zero', '>', 0)",
    "filterSeries(test.gauge.*, func='max', operator='>', threshold=20)",
    "filterSeries(test.nothing.*, 'max', '>', 1)",
    # -- highest / lowest ----------------------------------------------------
    "highest(test.gauge.*, 2)",
    "highest(test.gauge.*, 1, 'max')",
    "highest(test.gauge.*, 5, 'min')",
    "highest(test.gauge.*, -1)",
    "highest(test.gauge.*, 0)",
    "highest(test.mixed.*, 2, 'sum')",
    "highest(test.empty.*, 1)",
    "highest(group(test.empty.e1, test.gauge.c, test.empty.e2), 3)",
    "highest(test.tie.*, 2)",
    "highest(test.tie.*, 3, 'count')",
    "highest(test.gauge.*, n=2, func='stddev')",
    "highest(test.gauge.*, 3, 'median')",
    "highest(test.gauge.*, 3, 'diff')",
    "highest(test.gauge.*, 3, 'avg_zero')",
    "highest(test.counter.*, 3, 'multiply')",
    "highest(test.gauge.*, 3, 'range')",
    "highest(test.gauge.*, 3, 'last')",
    "lowest(test.gauge.*, 2)",
    "lowest(test.gauge.*, 1, 'max')",
    "lowest(test.tie.*, 2)",
    "lowest(group(test.empty.e1, test.gauge.c, test.empty.e2), 2)",
    "lowest(test.gauge.*, n=2, func='current')",
    "lowest(test.hosts.*.load, 10, 'count')",
    "highestAverage(test.gauge.*, 2)",
    "highestAverage(test.hosts.*.load, 1)",
    "highestCurrent(test.gauge.*, 2)",
    "highestCurrent(test.sparse.s1, 1)",
    "highestMax(test.gauge.*, 2)",
    "highestMax(test.neg.*, n=1)",
    "lowestAverage(test.gauge.*, 2)",
    "lowestAverage(group(test.tie.*, test.const.k), 3)",
    "lowestCurrent(test.gauge.*, 2)",
    "lowestCurrent(test.hosts.*.load, 3)",
    C("highestCurrent(test.gauge.*, 2)", WINDOW_SHORT),
    # -- mostDeviant ----------------------------------------------------------
    "mostDeviant(test.gauge.*, 2)",
    "mostDeviant(test.hosts.*.load, 10)",
    "mostDeviant(test.mixed.*, n=1)",
    "mostDeviant(test.tie.*, 2)",
    "mostDeviant(test.nothing.*, 2)",
    # -- exclude / grep / unique --------------------------------------------------
    "exclude(test.gauge.*, 'a')",
    r"exclude(test.hosts.*.load, 'server1\d')",
    "exclude(test.hosts.*.load, '^test')",
    r"exclude(test.sp-ec:ial.*, '#b@')",
    "exclude(test.gauge.*, pattern='[bc]$')",
    "grep(test.gauge.*, 'a')",
    r"grep(test.hosts.*.load, 'server\d\.')",
    "grep(test.hosts.*.load, 'nomatch')",
    "grep(scale(test.gauge.*, 2), '^scale')",
    "grep(test.gauge.*, pattern='[bc]$')",
    "unique(test.gauge.*, test.gauge.a)",
    "unique(test.gauge.a, test.gauge.*, test.coarse.*)",
    "unique(highest(test.gauge.*, 2), lowest(test.gauge.*, 2))",
    "unique(test.nothing.*)",
    # -- useSeriesAbove ---------------------------------------------------------------
    "useSeriesAbove(test.use.reqs.*, 10, 'reqs', 'time')",
    "useSeriesAbove(test.use.reqs.*, 4, 'reqs', 'time')",
    "useSeriesAbove(test.use.reqs.*, 1000, 'reqs', 'time')",
    r"useSeriesAbove(test.use.reqs.*, 4, 'reqs\.(\w)', 'time.\1')",
    "useSeriesAbove(test.use.reqs.a, 0, 'reqs', 'nothing')",
    "useSeriesAbove(test.use.reqs.*, value=1, search='reqs', replace='time')",
    "useSeriesAbove(test.counter.c*, 1, 'c1', 'c2')",
    # -- Filter Data: remove*Value / remove*Percentile ----------------------------------
    "removeAboveValue(test.gauge.*, 10)",
    "removeAboveValue(test.gauge.a, -5.5)",
    "removeAboveValue(test.empty.e1, 1)",
    "removeAboveValue(test.mixed.*, n=0)",
    "removeBelowValue(test.gauge.*, 10)",
    "removeBelowValue(test.neg.*, -2)",
    "removeBelowValue(test.gauge.a, 1e3)",
    "removeBelowValue(test.gauge.b, n=0.25)",
    "removeAbovePercentile(test.gauge.*, 90)",
    "removeAbovePercentile(test.gauge.*, 50)",
    "removeAbovePercentile(test.gauge.a, 1)",
    "removeAbovePercentile(test.gauge.a, 100)",
    "removeAbovePercentile(test.gauge.a, 150)",
    "removeAbovePercentile(test.gauge.a, 99.9)",
    "removeAbovePercentile(test.gauge.a, -50)",
    "removeAbovePercentile(test.gauge.a, -0.1)",
    "removeAbovePercentile(test.empty.*, 50)",
    "removeAbovePercentile(test.mixed.*, n=75)",
    "removeBelowPercentile(test.gauge.*, 10)",
    "removeBelowPercentile(test.gauge.*, 50)",
    "removeBelowPercentile(test.gauge.a, 100)",
    "removeBelowPercentile(test.gauge.a, 250)",
    "removeBelowPercentile(test.gauge.c, -99.5)",
    "removeBelowPercentile(test.sparse.s1, 33.3)",
    "removeBelowPercentile(test.empty.*, 50)",
    "removeBelowPercentile(test.neg.*, n=25)",
    C("removeAbovePercentile(test.gauge.*, 50)", WINDOW_TINY),
    C("removeBelowPercentile(test.mixed.*, 50)", WINDOW_TINY),
    "removeAbovePercentile(test.nothing.*, 0)",
    # -- sorting ------------------------------------------------------------------------
    "sortBy(test.gauge.*)",
    "sortBy(test.gauge.*, 'max')",
    "sortBy(test.gauge.*, 'max', true)",
    "sortBy(test.gauge.*, 'min', reverse=true)",
    "sortBy(test.mixed.*, func='sum')",
    "sortBy(test.gauge.*, 'last')",
    "sortBy(test.gauge.*, 'median', false)",
    "sortBy(test.gauge.*, 'stddev')",
    "sortBy(test.gauge.*, 'diff')",
    "sortBy(test.gauge.*, 'count')",
    "sortBy(test.gauge.*, 'range', true)",
    "sortBy(test.gauge.*, 'avg_zero')",
    "sortBy(test.counter.*, 'multiply')",
    "sortBy(group(test.tie.*, test.empty.*, test.const.k))",
    "sortBy(group(test.tie.*, test.empty.*, test.const.k), 'average', true)",
    "sortBy(test.nothing.*)",
    "sortByTotal(test.gauge.*)",
    "sortByTotal(test.hosts.*.load)",
    "sortByTotal(group(test.tie.*, test.empty.e1))",
    "sortByMaxima(test.gauge.*)",
    "sortByMaxima(test.hosts.*.load)",
    "sortByMaxima(group(test.tie.*, test.empty.e1, test.neg.n1))",
    "sortByMinima(test.gauge.*)",
    "sortByMinima(test.hosts.*.load)",
    "sortByMinima(group(test.neg.*, test.tie.*, test.empty.e1))",
    "sortByMinima(test.div.*)",
    # -- groupByNode(s) ---------------------------------------------------------------------
    "groupByNode(test.gauge.*, 1)",
    "groupByNode(test.gauge.*, 2)",
    "groupByNode(test.gauge.*, 2, 'sum')",
    "groupByNode(test.*.*, 1, 'sumSeries')",
    "groupByNode(test.*.*, 1, 'max')",
    "groupByNode(test.*.*, 1, 'avg')",
    "groupByNode(test.*.*, 1, 'sum')",
    "groupByNode(test.*.*, 1, 'averageSeries')",
    "groupByNode(test.*.*, 1, 'multiplySeries')",
    "groupByNode(test.*.*, 1, 'median')",
    "groupByNode(test.*.*, 1, 'range')",
    "groupByNode(test.*.*, 1, 'count')",
    "groupByNode(test.*.*, 1, 'last')",
    "groupByNode(test.*.*, 1, 'diffSeries')",
    "groupByNode(test.*.*, 1, 'stddevSeries')",
    "groupByNode(test.*.*, 1, 'rangeOfSeries')",
    "groupByNode(test.*.*, 1, 'countSeries')",
    "groupByNode(test.mixed.*, 0)",
    "groupByNode(test.hosts.*.load, -1, 'sum')",
    "groupByNode(test.gauge.*, 7)",
    "groupByNode(test.tagged.*, 'dc', 'sum')",
    "groupByNode(test.tagged.*, 'host')",
    "groupByNode(test.tagged.*, 2, 'max')",
    "groupByNode(test.tagged.*, 'nope', 'max')",
    "groupByNode(scale(test.gauge.*, 2), 2, 'sum')",
    "groupByNode(sumSeries(test.hosts.*.load), 2)",
    "groupByNode(test.nothing.*, 1)",
    "groupByNode(test.gauge.*, nodeNum=1, callback='min')",
    "groupByNode(test.*.*, 1, 'sumSeriesWithWildcards')",
    "groupByNodes(test.*.*, 'sum', 1)",
    "groupByNodes(test.*.*, 'sum', 0, 1)",
    "groupByNodes(test.*.*, 'average', 2, 1)",
    "groupByNodes(test.*.*, 'max')",
    "groupByNodes(test.hosts.*.load, 'sumSeries', 2, -1)",
    "groupByNodes(test.tagged.*, 'sum', 'dc', 1)",
    "groupByNodes(test.tagged.*, 'average', 'host', 'dc')",
    "groupByNodes(test.mixed.*, 'multiply', 1)",
    "groupByNodes(test.gauge.*, 'diff', 1)",
    "groupByNodes(test.nothing.*, 'sum', 1)",
    # -- *SeriesWithWildcards -----------------------------------------------------------------
    "sumSeriesWithWildcards(test.*.*, 2)",
    "sumSeriesWithWildcards(test.*.*, 1)",
    "sumSeriesWithWildcards(test.*.*, 0, 2)",
    "sumSeriesWithWildcards(test.gauge.*)",
    "sumSeriesWithWildcards(test.hosts.*.load, 2)",
    "sumSeriesWithWildcards(test.hosts.*.load, -1)",
    "sumSeriesWithWildcards(test.mixed.*, 2)",
    "sumSeriesWithWildcards(test.nothing.*, 2)",
    "averageSeriesWithWildcards(test.*.*, 2)",
    "averageSeriesWithWildcards(test.hosts.*.load, 1, 2)",
    "averageSeriesWithWildcards(test.mixed.*, 2)",
    "averageSeriesWithWildcards(test.tagged.*, 2)",
    "multiplySeriesWithWildcards(test.*.*, 2)",
    "multiplySeriesWithWildcards(test.gauge.*, 2)",
    "multiplySeriesWithWildcards(test.gauge.*, 5)",
    "multiplySeriesWithWildcards(test.counter.*, 2)",
    "groupByNodes(test.*.*, 'averageSeriesWithWildcards', 1)",
    # -- drawAsInfinite -----------------------------------------------------------------------
    "drawAsInfinite(test.gauge.*)",
    "drawAsInfinite(test.div.den)",
    "drawAsInfinite(scale(test.gauge.a, 2))",
    "drawAsInfinite(test.nothing.*)",
    # -- combinations ---------------------------------------------------------------------------
    "highest(groupByNode(test.*.*, 1, 'sum'), 2)",
    "sortByMaxima(removeAboveValue(test.gauge.*, 10))",
    "exclude(sortBy(test.hosts.*.load, 'max'), 'server2')",
    "averageAbove(removeBelowPercentile(test.gauge.*, 20), 0)",
    "test.gauge.*|highestMax(2)|drawAsInfinite()",
    "group(removeAboveValue(test.gauge.a, 0), test.gauge.a)",
    "group(removeBelowPercentile(test.gauge.a, 50), test.gauge.a)",
    "sortBy(group(test.tie.t2, test.tie.t1, test.tie.t0), 'sum')",
    "sortByTotal(group(test.tie.t2, test.tie.t1, test.tie.t0))",
    "groupByNode(group(test.gauge.a, test.coarse.x, test.gauge.b), 1, 'sum')",
    "groupByNodes(group(test.hosts.server1.load, test.gauge.a, test.hosts.server2.load), 'max', 0, 1)",
    "unique(groupByNode(test.*.*, 0, 'sum'), sumSeriesWithWildcards(test.*.*, 1, 2))",
    C("groupByNode(test.*.*, 1, 'sum')", WINDOW_SHORT),
    C("sumSeriesWithWildcards(test.mixed.*, 2)", WINDOW_TINY),
    C("mostDeviant(test.*.*, 5)", WINDOW_TINY),
    C("sortByMinima(test.*.*)", WINDOW_SHORT),
    C("sortBy(group(test.const.k, test.tie.t2), 'multiply')", WINDOW_TINY),
    C("highest(group(test.tie.t2, test.const.k, test.div.den), 2, 'multiply')", WINDOW_TINY),
]


def _case(row: str | C) -> C:
    return row if isinstance(row, C) else C(row)


def _str_tags(series_list):
    # graphite-web keeps tag values as set (drawAsInfinite's 1 is an int);
    # Cyclone's are strings, graphite's own tag syntax.
    for s in series_list:
        s.tags = {k: str(v) for k, v in s.tags.items()}
    return series_list


@pytest.fixture(scope="module")
def my_oracle():
    from tests.query.oracle import GraphiteOracle

    oracle = GraphiteOracle(SOURCE)
    yield oracle


def _graphite(oracle, target: str, start: int, end: int):
    # (the shared oracle fixture of other modules points graphite at its own source)
    from tests.query import graphite_finder

    graphite_finder.SOURCE = SOURCE
    return oracle.evaluate(target, start, end, now=end)


@pytest.mark.parametrize(
    "row",
    CASES,
    ids=[_case(r).target + ("" if _case(r).window == WINDOW else f"@{_case(r).window[1] - _case(r).window[0]}s") for r in CASES],
)
def test_matches_graphite(row: str | C, my_oracle) -> None:
    case = _case(row)
    start, end = case.window
    expected = _str_tags(_graphite(my_oracle, case.target, start, end))
    got = evaluate([case.target], start, end, SOURCE, now=end)
    compare(got, expected, case.target)


# -- errors: Cyclone raises QueryError where graphite-web fails too --------------

ERROR_CASES = [
    "averageAbove(test.gauge.*, 'x')",
    "averageAbove(test.gauge.*)",
    "averageAbove(test.gauge.*, n=test.gauge.a)",
    "currentBelow(test.gauge.*, 1, 2)",
    "maximumAbove(5, 5)",
    "highest(test.gauge.*, 'x')",
    "highest(test.gauge.*, 2, 'nosuch')",
    "highest(test.gauge.*, 2, 'sumSeries')",
    "highestMax(test.gauge.*)",
    "mostDeviant(test.gauge.*, 'a')",
    "filterSeries(test.gauge.*, 'max', '~', 1)",
    "filterSeries(test.gauge.*, 'nosuch', '>', 1)",
    "filterSeries(test.gauge.*, 'max', '>')",
    "filterSeries(test.gauge.*, 'max', '>', 'x')",
    "exclude(test.gauge.*, 5)",
    "exclude(test.gauge.*, '(')",
    "grep(test.gauge.*)",
    "grep(test.gauge.*, '[a')",
    "removeAboveValue(test.gauge.*, 'x')",
    "removeBelowPercentile(test.gauge.*)",
    "removeAbovePercentile(test.gauge.*, 0)",
    "removeBelowPercentile(test.empty.e1, 0)",
    "useSeriesAbove(test.use.reqs.*, 'x', 'reqs', 'time')",
    "useSeriesAbove(test.use.reqs.*, 1, 'reqs')",
    "useSeriesAbove(test.use.gappy.reqs, 1, 'reqs', 'time')",
    "useSeriesAbove(test.gauge.*, 1, 'gauge', 'coarse')",
    "useSeriesAbove(test.counter.*, 1, 'c1', 'c2')",
    "useSeriesAbove(test.empty.e1, 1, 'e1', 'e2')",
    "sortBy(test.gauge.*, 'nosuch')",
    "sortBy(test.gauge.*, 'max', 'maybe')",
    "sortByMaxima(test.gauge.*, 1)",
    "sortByTotal()",
    "groupByNode(test.gauge.*)",
    "groupByNode(test.gauge.*, 1, 'nosuch')",
    "groupByNode(test.gauge.*, 1, 'scale')",
    "groupByNodes(test.gauge.*)",
    "multiplySeriesWithWildcards(3)",
    "drawAsInfinite(test.gauge.*, 1)",
    "drawAsInfinite('x')",
    "unique(1)",
]


#: Rejected by Cyclone's argument checking; graphite-web 1.1.10 only logs a
#: validation warning and goes on (int(1.5) == 1, a float node index fails
#: later or not at all).
STRICTER_CASES = [
    "highest(test.gauge.*)",  # graphite falls back to the Python default n=1
    "highest(test.gauge.*, 1.5)",
    "lowestCurrent(test.gauge.*, 2.5)",
    "mostDeviant(test.gauge.*, 1.0)",
    "groupByNode(test.gauge.*, 1.5)",
    "groupByNodes(test.gauge.*, 'sum', 1.5)",
    "sumSeriesWithWildcards(test.gauge.*, 'a')",
    "averageSeriesWithWildcards(test.gauge.*, 1.5)",
]


@pytest.mark.parametrize("target", STRICTER_CASES)
def test_stricter_argument_checks(target: str) -> None:
    start, end = WINDOW
    with pytest.raises(QueryError):
        evaluate([target], start, end, SOURCE, now=end)


@pytest.mark.parametrize("target", ERROR_CASES)
def test_errors(target: str, my_oracle) -> None:
    start, end = WINDOW
    with pytest.raises(QueryError):
        evaluate([target], start, end, SOURCE, now=end)
    with pytest.raises(Exception):
        _graphite(my_oracle, target, start, end)


def test_inputs_are_not_modified() -> None:
    start, end = WINDOW
    targets = ["test.gauge.*", "removeAboveValue(test.gauge.*, 0)", "removeBelowPercentile(test.gauge.*, 50)",
               "drawAsInfinite(test.gauge.*)", "sortBy(test.gauge.*, 'max')", "test.gauge.*"]
    first, *_, last = (evaluate([t], start, end, SOURCE, now=end) for t in targets)
    for a, b in zip(first, last):
        assert a.name == b.name and a.values.tobytes() == b.values.tobytes() and a.options == b.options == {}


def test_functions_metadata_matches_graphite(my_oracle) -> None:
    from graphite.render.functions import SeriesFunctions

    from cyclone.query.registry import all_functions

    ours = all_functions()
    for name in [
        "averageAbove", "averageBelow", "currentAbove", "currentBelow", "maximumAbove", "maximumBelow",
        "minimumAbove", "minimumBelow", "highest", "highestAverage", "highestCurrent", "highestMax", "lowest",
        "lowestAverage", "lowestCurrent", "mostDeviant", "exclude", "grep", "filterSeries",
        "removeAbovePercentile", "removeAboveValue", "removeBelowPercentile", "removeBelowValue",
        "useSeriesAbove", "unique", "sortBy", "sortByMaxima", "sortByMinima", "sortByTotal", "groupByNode",
        "groupByNodes", "averageSeriesWithWildcards", "sumSeriesWithWildcards", "multiplySeriesWithWildcards",
        "drawAsInfinite",
    ]:
        g = SeriesFunctions[name]
        f = ours[name]
        assert f.group == g.group, name
        assert f.aggregator == bool(getattr(g, "aggregator", False)), name
        theirs = [(p.name, p.type.name, bool(p.required), p.default, bool(p.multiple)) for p in g.params]
        mine = [(p.name, p.type.value, p.required, p.default, p.multiple) for p in f.params]
        assert mine == theirs, name


def test_series_agg_equals_graphite_safe_functions_exactly(my_oracle) -> None:
    # Per-series aggregates decide filters and rankings, so they must be
    # graphite's exactly (not just within 1e-9): sums left to right, None rules.
    import numpy as np
    from graphite.functions.aggfuncs import aggFuncAliases, aggFuncs

    from cyclone.query.functions.filtering import series_agg
    from cyclone.query.series import TimeSeries

    rng = np.random.default_rng(7)
    arrays = [np.array([]), np.array([np.nan]), np.array([np.nan, np.nan]), np.array([0.1, 0.2, 0.3]), np.array([-0.0])]
    for _ in range(60):
        n = int(rng.integers(1, 40))
        a = rng.normal(0, 1e3, n) * 10.0 ** rng.integers(-3, 6)
        a[rng.random(n) < rng.random()] = np.nan
        arrays.append(a)
    series = [TimeSeries(f"s{i}", 0, 10 * len(a), 10, a) for i, a in enumerate(arrays)]
    for name, fn in {**aggFuncs, **aggFuncAliases}.items():
        got = series_agg(series, name)
        for a, g in zip(arrays, got.tolist()):
            row = [None if v != v else v for v in a.tolist()]
            try:
                want = fn(row)
            except TypeError:  # graphite's multiply of an empty series
                want = None
            if want is None:
                assert g != g, (name, row, g)
            else:
                assert g == want, (name, row, g, want)
