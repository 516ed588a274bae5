"""Graphite's "Combine" group: functions that merge several series into one.

Series of different steps are first put on a common step exactly as
graphite-web's ``normalize`` does (lcm of the steps, each series
consolidated with its own consolidation function and xFilesFactor, chunks
starting at its first value), then combined point by point; missing values
at the end of shorter series count as None.
"""

from __future__ import annotations

import numpy as np

from cyclone.query.aggfuncs import reduce_rows, resolve_agg_func
from cyclone.query.errors import QueryError
from cyclone.query.evaluator import Context
from cyclone.query.functions._util import format_path_expressions, lcm_steps
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, TimeSeries, consolidate_values, normalize, stack_rows, xff_ok

SERIES_LISTS = [Param("seriesLists", T.seriesList, required=True, multiple=True)]


def _aggregate(ctx: Context, series_lists: list[SeriesList], func: str, x_files_factor: float | None = None) -> SeriesList:
    """graphite's ``aggregate``: one series, func applied across series at each point."""
    raw_func = func
    if func.endswith("Series"):
        func = func[:-6]
    try:
        resolve_agg_func(func)
    except QueryError:
        raise QueryError(f"unsupported aggregation function: {raw_func}") from None
    norm = normalize(series_lists)
    if norm is None:
        return []
    flat, arrays, start, end, step = norm
    xff = x_files_factor if x_files_factor is not None else ctx.x_files_factor
    m = stack_rows(arrays)
    n = len(flat)
    non_null = (~np.isnan(m)).sum(axis=0)
    values = reduce_rows(m.T, func, nulls_passed=True)
    values[~xff_ok(non_null, n, xff)] = np.nan
    name = f"{func}Series({format_path_expressions(flat)})"
    tags = dict(flat[0].tags)
    for s in flat[1:]:
        tags = {k: v for k, v in tags.items() if s.tags.get(k) == v}
    tags.setdefault("name", name)
    tags["aggregatedBy"] = func
    return [TimeSeries(name, start, end, step, values, tags=tags, x_files_factor=xff)]


@function(
    "aggregate",
    group="Combine",
    params=[
        Param("seriesList", T.seriesList, required=True),
        Param("func", T.aggFunc, required=True),
        Param("xFilesFactor", T.float),
    ],
)
def aggregate(ctx: Context, series_list: SeriesList, func: str, x_files_factor: float | None) -> SeriesList:
    """Aggregate series using the specified function, point by point.

    ``aggregate(host.cpu-[0-7].cpu-{user,system}.value, "sum")`` is the same
    as ``sumSeries(host.cpu-[0-7].cpu-{user,system}.value)``. Functions:
    average (avg), avg_zero, median, sum (total), min, max, diff, stddev,
    count, range (rangeOf), multiply, last (current); the result is named
    ``<func>Series(<path expressions>)``. A point is None unless the
    fraction of non-null inputs reaches xFilesFactor (default: the
    request's, else 0).
    """
    return _aggregate(ctx, [series_list], func, x_files_factor)


@function("sumSeries", group="Combine", params=SERIES_LISTS, aliases=("sum",), aggregator=True)
def sum_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """Short form: sum(). Adds the series together point by point.

    ``sumSeries(company.server.application*.requestsHandled)``. Series of
    different resolutions are consolidated to the coarsest common step first.
    Alias for ``aggregate(seriesList, 'sum')``.
    """
    return _aggregate(ctx, series_lists, "sum")


@function("averageSeries", group="Combine", params=SERIES_LISTS, aliases=("avg",), aggregator=True)
def average_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """Short form: avg(). The average of the non-null values of all series at each point.

    ``averageSeries(company.server.*.threads.busy)``. Alias for
    ``aggregate(seriesList, 'average')``.
    """
    return _aggregate(ctx, series_lists, "average")


@function("maxSeries", group="Combine", params=SERIES_LISTS, aggregator=True)
def max_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """The maximum of all series at each point. ``maxSeries(Server*.connections.total)``.
    Alias for ``aggregate(seriesList, 'max')``."""
    return _aggregate(ctx, series_lists, "max")


@function("minSeries", group="Combine", params=SERIES_LISTS, aggregator=True)
def min_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """The minimum of all series at each point. ``minSeries(Server*.connections.total)``.
    Alias for ``aggregate(seriesList, 'min')``."""
    return _aggregate(ctx, series_lists, "min")


@function("rangeOfSeries", group="Combine", params=SERIES_LISTS, aliases=("range",), aggregator=True)
def range_of_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """Short form: range(). Max minus min of all series at each point.

    ``rangeOfSeries(Server*.connections.total)``. Alias for
    ``aggregate(seriesList, 'rangeOf')``. (``range`` is a Cyclone
    shorthand; graphite-web 1.1.10 does not have it.)
    """
    return _aggregate(ctx, series_lists, "rangeOf")


@function("diffSeries", group="Combine", params=SERIES_LISTS, aggregator=True)
def diff_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """Subtracts series 2 through n from series 1, point by point.

    ``diffSeries(service.connections.total,service.connections.failed)``.
    At each point the first non-null value is the minuend. To subtract a
    constant use ``offset``. Alias for ``aggregate(seriesList, 'diff')``.
    """
    return _aggregate(ctx, series_lists, "diff")


@function("stddevSeries", group="Combine", params=SERIES_LISTS, aggregator=True)
def stddev_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """The (population) standard deviation of all series at each point.

    ``stddevSeries(company.server.*.threads.busy)``. Alias for
    ``aggregate(seriesList, 'stddev')``.
    """
    return _aggregate(ctx, series_lists, "stddev")


@function("multiplySeries", group="Combine", params=SERIES_LISTS, aggregator=True)
def multiply_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """Multiplies the series point by point; a None anywhere makes the point None.

    ``multiplySeries(Series.dividends,Series.divisors)``. To multiply by a
    constant use ``scale``. A single series is returned unchanged (name
    included), as graphite does. Alias for ``aggregate(seriesList, 'multiply')``.
    """
    if len(series_lists) == 1 and len(series_lists[0]) == 1:
        return list(series_lists[0])
    return _aggregate(ctx, series_lists, "multiply")


@function("countSeries", group="Combine", params=[Param("seriesLists", T.seriesList, multiple=True)], aggregator=True)
def count_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """A horizontal line: the number of series in the series lists.

    ``countSeries(carbon.agents.*.*)``. Without arguments, a line at 0
    across the request window.
    """
    if not series_lists:
        from cyclone.query.functions.special import constant_line_series

        s = constant_line_series(ctx, 0)
        s.path_expression = "countSeries()"
        return [s]
    norm = normalize(series_lists)
    if norm is None:
        return []
    flat, arrays, start, end, step = norm
    length = max((len(a) for a in arrays), default=0)
    name = f"countSeries({format_path_expressions(flat)})"
    return [TimeSeries(name, start, end, step, np.full(length, float(len(flat))), x_files_factor=ctx.x_files_factor)]


@function(
    "divideSeries",
    group="Combine",
    params=[
        Param("dividendSeriesList", T.seriesList, required=True),
        Param("divisorSeries", T.seriesList, required=True),
    ],
)
def divide_series(ctx: Context, dividends: SeriesList, divisor_list: SeriesList) -> SeriesList:
    """Divides each dividend series by one divisor series, point by point.

    ``divideSeries(Series.dividends,Series.divisors)``. The divisor must be
    exactly one series; division by zero or None gives None. With no
    divisor series at all, every dividend becomes
    ``divideSeries(<name>,MISSING)`` full of None. To divide by a constant,
    use ``scale`` with the inverse.
    """
    if len(divisor_list) == 0:
        out = []
        for s in dividends:
            name = f"divideSeries({s.name},MISSING)"
            out.append(s.evolve(name=name, path_expression=name, values=np.full(len(s), np.nan)))
        return out
    if len(divisor_list) > 1:
        raise QueryError(
            f"divideSeries second argument must reference exactly 1 series (got {len(divisor_list)})"
        )
    divisor = divisor_list[0]
    out = []
    for s in dividends:
        step = lcm_steps([s.step, divisor.step])
        a = consolidate_values(s.values, step // s.step, s.consolidation_func, s.x_files_factor)
        b = consolidate_values(divisor.values, step // divisor.step, divisor.consolidation_func, divisor.x_files_factor)
        start = min(s.start, divisor.start)
        end = max(s.end, divisor.end)
        end -= (end - start) % step
        m = stack_rows([a, b])
        num, den = m[0], m[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where((den == 0) | np.isnan(den), np.nan, num / den)
        name = f"divideSeries({s.name},{divisor.name})"
        out.append(TimeSeries(name, start, end, step, values, x_files_factor=ctx.x_files_factor))
    return out


@function("group", group="Combine", params=[Param("seriesLists", T.seriesList, multiple=True)])
def group(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """Joins several series lists into one, e.g. to pass them to a function
    that takes a single series list: ``group(a.b.c, d.e.*)``."""
    return [s for lst in series_lists for s in lst]
