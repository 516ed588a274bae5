"""Graphite's "Filter Series" and "Filter Data" functions: dropping series
(removeEmptySeries, limit), ranking or thresholding whole series
(averageAbove, highest, mostDeviant, filterSeries, exclude/grep, unique,
useSeriesAbove, ...) and blanking out points
(removeAboveValue, removeBelowPercentile, ...), plus drawAsInfinite.

Per-series aggregates are computed by `series_agg`, which reproduces
graphite-web's ``safe*`` helpers over one series' values exactly --
including left-to-right summation, so a threshold test or a ranking never
flips on a rounding difference -- but for all series at once.

Ranking follows graphite's ``keyFunc``: a series whose aggregate is None
sorts as -infinity, and sorting is stable (ties keep input order, also
when reversed).
"""

from __future__ import annotations

import math
import re

import numpy as np

from cyclone.query.aggfuncs import reduce_rows, resolve_agg_func
from cyclone.query.errors import QueryError
from cyclone.query.evaluator import Context
from cyclone.query.functions._util import fmt_g
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, stack_rows, xff_ok

__all__ = ["series_agg", "rank_order"]

SERIES_LIST = Param("seriesList", T.seriesList, required=True)


def _seq_sum(z: np.ndarray) -> np.ndarray:
    """Row sums added strictly left to right (Python's ``sum``), not pairwise."""
    if z.shape[1] == 0:
        return np.zeros(z.shape[0])
    return np.cumsum(z, axis=1)[:, -1]


def series_agg(series_list: SeriesList, func: str) -> np.ndarray:
    """graphite's ``getAggFunc(func)(series)`` for every series: one float per
    series, NaN where graphite's answer is None.

    Like graphite: ``count`` is 0 (never None) for a series without values,
    ``avg_zero`` counts gaps as 0 (None only for a zero-length series),
    ``multiply`` is None as soon as the series has a gap.
    """
    try:
        func = resolve_agg_func(func)
    except QueryError:
        raise QueryError(f"Unsupported aggregation function: {func}") from None
    if not series_list:
        return np.zeros(0)
    lengths = np.array([len(s) for s in series_list])
    m = stack_rows([s.values for s in series_list])
    valid = ~np.isnan(m)
    count = valid.sum(axis=1)
    has = count > 0
    z = np.where(valid, m, 0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if func == "sum":
            res = _seq_sum(z)
        elif func == "average":
            res = _seq_sum(z) / count
        elif func == "avg_zero":
            res = _seq_sum(z) / lengths
            return np.where(lengths > 0, res, np.nan)
        elif func == "count":
            return count.astype(np.float64)
        elif func == "stddev":
            avg = _seq_sum(z) / count
            dev = np.where(valid, m - avg[:, None], 0.0)
            res = np.sqrt(_seq_sum(dev * dev) / count)
        elif func == "diff":
            rows = np.arange(len(m))
            first_idx = np.argmax(valid, axis=1)
            neg = -z
            neg[rows, first_idx] = z[rows, first_idx]
            res = _seq_sum(neg)
        elif func == "multiply":
            if m.shape[1] == 0:
                return np.full(len(m), np.nan)
            res = np.cumprod(np.where(valid, m, 1.0), axis=1)[:, -1]
            poisoned = (~valid & (np.arange(m.shape[1])[None, :] < lengths[:, None])).any(axis=1)
            res = np.where(poisoned | (lengths == 0), np.nan, res)
            return res
        else:  # median, min, max, range, last: exact regardless of order
            res = reduce_rows(m, func)
    return np.where(has, res, np.nan)


def rank_order(keys: np.ndarray, reverse: bool = False) -> list[int]:
    """Indices in graphite's ``sort(key=keyFunc(...), reverse=...)`` order:
    None (NaN) ranks as -inf; stable, also when reversed."""
    k = np.where(np.isnan(keys), -math.inf, keys).tolist()
    return sorted(range(len(k)), key=k.__getitem__, reverse=reverse)


# -- filterSeries and the threshold shortcuts --------------------------------

_OPERATORS = ("!=", "<", "<=", "=", ">", ">=")


def _compare(values: np.ndarray, operator: str, threshold: float) -> np.ndarray:
    """graphite's operatorFuncs: None fails =, >, >= and passes !=, <, <=."""
    none = np.isnan(values)
    with np.errstate(invalid="ignore"):
        if operator == "=":
            return ~none & (values == threshold)
        if operator == "!=":
            return none | (values != threshold)
        if operator == ">":
            return ~none & (values > threshold)
        if operator == ">=":
            return ~none & (values >= threshold)
        if operator == "<":
            return none | (values < threshold)
        if operator == "<=":
            return none | (values <= threshold)
    raise QueryError(f"Unsupported operator: {operator}")


def _filter(series_list: SeriesList, func: str, operator: str, threshold: float) -> SeriesList:
    keys = series_agg(series_list, func)
    keep = _compare(keys, operator, threshold)
    return [s for s, k in zip(series_list, keep.tolist()) if k]


@function(
    "filterSeries",
    group="Filter Series",
    params=[
        SERIES_LIST,
        Param("func", T.aggFunc, required=True),
        Param("operator", T.string, required=True, options=_OPERATORS),
        Param("threshold", T.float, required=True),
    ],
)
def filter_series(ctx: Context, series_list: SeriesList, func: str, operator: str, threshold: float) -> SeriesList:
    """Keeps the series whose aggregate (func over the whole series) passes
    ``<aggregate> <operator> <threshold>``.

    ``filterSeries(system.interface.eth*.packetsSent, 'max', '>', 1000)``.
    Functions: average, avg_zero, median, sum, min, max, diff, stddev,
    count, range, multiply, last (and their aliases). Operators: =, !=, >,
    >=, <, <=. A series whose aggregate is None (no values) passes !=, <
    and <= and fails the others, as in graphite.
    """
    return _filter(series_list, func, operator, threshold)


def _threshold(name: str, func: str, operator: str, doc: str):
    def impl(ctx: Context, series_list: SeriesList, n: float) -> SeriesList:
        return _filter(series_list, func, operator, n)

    impl.__doc__ = doc
    impl.__name__ = impl.__qualname__ = name
    return function(name, group="Filter Series", params=[SERIES_LIST, Param("n", T.float, required=True)])(impl)


for _name, _func, _op, _what in (
    ("averageAbove", "average", ">", "an average value above n"),
    ("averageBelow", "average", "<=", "an average value below or equal to n (or no values at all)"),
    ("currentAbove", "last", ">", "a last non-null value above n"),
    ("currentBelow", "last", "<=", "a last non-null value below or equal to n (or no values at all)"),
    ("maximumAbove", "max", ">", "a maximum value above n"),
    ("maximumBelow", "max", "<=", "a maximum value below or equal to n (or no values at all)"),
    ("minimumAbove", "min", ">", "a minimum value above n"),
    ("minimumBelow", "min", "<=", "a minimum value below or equal to n (or no values at all)"),
):
    # Function docstrings are the /functions descriptions.
    _threshold(
        _name, _func, _op,
        f"Keeps only the series with {_what} over the time range.\n\n"
        f"``{_name}(server*.instance*.threads.busy,25)``. Same as "
        f"``filterSeries(seriesList, '{_func}', '{_op}', n)``.",
    )


# -- highest / lowest / mostDeviant -------------------------------------------


def _top(series_list: SeriesList, n: int, func: str, reverse: bool) -> SeriesList:
    keys = series_agg(series_list, func)
    ordered = [series_list[i] for i in rank_order(keys, reverse)]
    return ordered[: int(n)]


@function(
    "highest",
    group="Filter Series",
    params=[SERIES_LIST, Param("n", T.integer, required=True), Param("func", T.aggFunc, default="average")],
)
def highest(ctx: Context, series_list: SeriesList, n: int, func: str) -> SeriesList:
    """The n series with the highest aggregate (func over the whole series;
    default average). ``highest(server*.instance*.threads.busy,5,'max')``.
    Series without values rank last; ties keep their input order."""
    return _top(series_list, n, func, True)


@function(
    "lowest",
    group="Filter Series",
    params=[SERIES_LIST, Param("n", T.integer, required=True), Param("func", T.aggFunc, default="average")],
)
def lowest(ctx: Context, series_list: SeriesList, n: int, func: str) -> SeriesList:
    """The n series with the lowest aggregate (func over the whole series;
    default average). ``lowest(server*.instance*.threads.busy,5,'min')``.
    Series without values rank first; ties keep their input order."""
    return _top(series_list, n, func, False)


def _top_alias(name: str, func: str, reverse: bool, doc: str):
    def impl(ctx: Context, series_list: SeriesList, n: int) -> SeriesList:
        return _top(series_list, n, func, reverse)

    impl.__doc__ = doc
    impl.__name__ = impl.__qualname__ = name
    return function(name, group="Filter Series", params=[SERIES_LIST, Param("n", T.integer, required=True)])(impl)


for _name, _func, _rev, _what in (
    ("highestAverage", "average", True, "highest average value"),
    ("highestCurrent", "current", True, "highest last non-null value"),
    ("highestMax", "max", True, "highest maximum value"),
    ("lowestAverage", "average", False, "lowest average value"),
    ("lowestCurrent", "current", False, "lowest last non-null value"),
):
    _top_alias(
        _name, _func, _rev,
        f"The n series with the {_what} over the time range.\n\n"
        f"``{_name}(server*.instance*.threads.busy,5)``. Same as "
        f"``{'highest' if _rev else 'lowest'}(seriesList, n, '{_func}')``.",
    )


@function("mostDeviant", group="Filter Series", params=[SERIES_LIST, Param("n", T.integer, required=True)])
def most_deviant(ctx: Context, series_list: SeriesList, n: int) -> SeriesList:
    """The n series whose values deviate most from their own mean.

    ``mostDeviant(server*.instance*.memory.free, 5)``. Series are ranked by
    the sum of squared deviations from their mean divided by their number
    of non-null values (graphite's "sigma", a variance); series without
    values are left out.
    """
    if not series_list:
        return []
    m = stack_rows([s.values for s in series_list])
    valid = ~np.isnan(m)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = _seq_sum(np.where(valid, m, 0.0)) / count
        dev = np.where(valid, m - mean[:, None], 0.0)
        sigma = _seq_sum(dev * dev) / count
    kept = np.nonzero(count > 0)[0]
    order = rank_order(sigma[kept], reverse=True)
    return [series_list[kept[i]] for i in order][: int(n)]


# -- exclude / grep / unique ------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise QueryError(f"invalid regular expression {pattern!r}: {e}") from None


@function("exclude", group="Filter Series", params=[SERIES_LIST, Param("pattern", T.string, required=True)])
def exclude(ctx: Context, series_list: SeriesList, pattern: str) -> SeriesList:
    """Drops the series whose name matches the regular expression (searched
    anywhere in the name). ``exclude(servers*.instance*.threads.busy,"server02")``"""
    regex = _regex(pattern)
    return [s for s in series_list if not regex.search(s.name)]


@function("grep", group="Filter Series", params=[SERIES_LIST, Param("pattern", T.string, required=True)])
def grep(ctx: Context, series_list: SeriesList, pattern: str) -> SeriesList:
    """Keeps only the series whose name matches the regular expression
    (searched anywhere in the name). ``grep(servers*.instance*.threads.busy,"server02")``"""
    regex = _regex(pattern)
    return [s for s in series_list if regex.search(s.name)]


@function("unique", group="Filter Series", params=[Param("seriesLists", T.seriesList, required=True, multiple=True)])
def unique(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """All series of all the lists, without repeating a name (the first series
    of each name is kept).

    ``unique(mostDeviant(server.*.disk_free,5),lowestCurrent(server.*.disk_free,5))``
    """
    seen: set[str] = set()
    out = []
    for lst in series_lists:
        for s in lst:
            if s.name not in seen:
                seen.add(s.name)
                out.append(s)
    return out


# -- useSeriesAbove ---------------------------------------------------------------


@function(
    "useSeriesAbove",
    group="Filter Series",
    params=[
        SERIES_LIST,
        Param("value", T.float, required=True),
        Param("search", T.string, required=True),
        Param("replace", T.string, required=True),
    ],
)
def use_series_above(ctx: Context, series_list: SeriesList, value: float, search: str, replace: str) -> SeriesList:
    """For each series whose maximum is above `value`, draws the related
    series named by the regular expression replacement of `search` with
    `replace` in its name.

    ``useSeriesAbove(ganglia.metric1.reqs,10,"reqs","time")`` draws the
    response time only when the request rate went above 10. As in
    graphite-web 1.1.10 (whose ``max`` fails on None under Python 3), a
    series with a gap -- or without any point -- is an error.
    """
    regex = _regex(search)
    new_names = []
    for s in series_list:
        try:
            new_name = regex.sub(replace, s.name)
        except (re.error, IndexError) as e:
            raise QueryError(f"useSeriesAbove(): invalid replacement {replace!r}: {e}") from None
        if len(s) == 0 or np.isnan(s.values).any():
            raise QueryError(
                f"useSeriesAbove(): series {s.name!r} has no values or has gaps "
                "(graphite-web cannot take its maximum)"
            )
        if float(np.max(s.values)) > value:
            new_names.append(new_name)
    if not new_names:
        return []
    from cyclone.query.evaluator import _eval, _flatten, _prefetch
    from cyclone.query.parser import parse

    expr = parse("group(%s)" % ",".join(new_names))
    sub = ctx.with_window(ctx.start, ctx.end)
    _prefetch(sub, [expr])
    return [s for s in _flatten(_eval(sub, expr)) if s is not None and len(s) > 0]


# -- Filter Data: blank out points -------------------------------------------------


def _percentile(sorted_values: np.ndarray, n: float) -> float | None:
    """graphite's ``_getPercentile`` (no interpolation) on sorted non-null
    values, None where graphite's indexing fails (IndexError)."""
    length = len(sorted_values)
    fractional_rank = (n / 100.0) * (length + 1)
    rank = int(fractional_rank)
    rank += int(math.ceil(fractional_rank - rank))
    if rank == 0:
        return float(sorted_values[0])
    if rank - 1 == length:
        return float(sorted_values[-1])
    i = rank - 1
    if i >= length or i < -length:
        return None
    return float(sorted_values[i])


def _remove_percentile(series_list: SeriesList, n: float, fname: str, above: bool) -> SeriesList:
    if series_list and not n:
        # graphite's nPercentile asserts n (once per series, so only when there is one).
        raise QueryError(f"{fname}(): the requested percent is required to be greater than 0")
    if series_list and not math.isfinite(n):
        raise QueryError(f"{fname}(): n must be a finite number, got {n!r}")
    out = []
    for s in series_list:
        name = f"{fname}({s.name}, {fmt_g(n)})"
        values = s.values
        present = values[~np.isnan(values)]
        p = _percentile(np.sort(present), n) if len(present) else None
        new = s.evolve(name=name, path_expression=name)
        if p is not None:
            # graphite's nPercentile tags the input series itself (its copy
            # shares the tags dict) -- even when it then finds no point to
            # compare with (end - start < step) and leaves the values alone.
            new.with_tag("nPercentile", float(n))
            if int((s.end - s.start) / s.step) > 0:
                with np.errstate(invalid="ignore"):
                    drop = values > p if above else ~(values >= p)
                new.values = np.where(drop, np.nan, values)
        out.append(new)
    return out


def _remove_value(series_list: SeriesList, n: float, fname: str, above: bool) -> SeriesList:
    out = []
    for s in series_list:
        name = f"{fname}({s.name}, {fmt_g(n)})"
        with np.errstate(invalid="ignore"):
            drop = s.values > n if above else ~(s.values >= n)
        out.append(s.evolve(name=name, path_expression=name, values=np.where(drop, np.nan, s.values)))
    return out


@function("removeAbovePercentile", group="Filter Data", params=[SERIES_LIST, Param("n", T.float, required=True)])
def remove_above_percentile(ctx: Context, series_list: SeriesList, n: float) -> SeriesList:
    """Sets the values above the series' nth percentile (nearest rank) to None.
    ``removeAbovePercentile(server*.latency, 95)``"""
    return _remove_percentile(series_list, n, "removeAbovePercentile", True)


@function("removeAboveValue", group="Filter Data", params=[SERIES_LIST, Param("n", T.float, required=True)])
def remove_above_value(ctx: Context, series_list: SeriesList, n: float) -> SeriesList:
    """Sets the values above n to None. ``removeAboveValue(server*.latency, 1000)``"""
    return _remove_value(series_list, n, "removeAboveValue", True)


@function("removeBelowPercentile", group="Filter Data", params=[SERIES_LIST, Param("n", T.float, required=True)])
def remove_below_percentile(ctx: Context, series_list: SeriesList, n: float) -> SeriesList:
    """Sets the values below the series' nth percentile (nearest rank) to None.
    ``removeBelowPercentile(server*.latency, 5)``"""
    return _remove_percentile(series_list, n, "removeBelowPercentile", False)


@function("removeBelowValue", group="Filter Data", params=[SERIES_LIST, Param("n", T.float, required=True)])
def remove_below_value(ctx: Context, series_list: SeriesList, n: float) -> SeriesList:
    """Sets the values below n to None. ``removeBelowValue(server*.requests, 0)``"""
    return _remove_value(series_list, n, "removeBelowValue", False)


# -- Graph -----------------------------------------------------------------------------


@function("drawAsInfinite", group="Graph", params=[SERIES_LIST])
def draw_as_infinite(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Draws a vertical line wherever the value is above zero (at zero where
    it is zero; nothing where it is None or negative): for on/off metrics
    such as exit codes. ``drawAsInfinite(Testing.script.exitCode)``"""
    return [
        s.evolve(name=f"drawAsInfinite({s.name})", options={**s.options, "drawAsInfinite": True}).with_tag(
            "drawAsInfinite", 1
        )
        for s in series_list
    ]


@function("removeEmptySeries", group="Filter Series", params=[SERIES_LIST, Param("xFilesFactor", T.float)])
def remove_empty_series(ctx: Context, series_list: SeriesList, x_files_factor: float | None) -> SeriesList:
    """Drops the series without any value (with xFilesFactor: whose share of
    non-null values is below it; default 0).

    ``removeEmptySeries(server*.instance*.threads.busy)``
    """
    xff = x_files_factor if x_files_factor is not None else 0.0
    return [
        s for s in series_list
        if len(s) and bool(xff_ok(np.count_nonzero(~np.isnan(s.values)), len(s), xff))
    ]


@function("limit", group="Filter Series", params=[SERIES_LIST, Param("n", T.integer, required=True)])
def limit(ctx: Context, series_list: SeriesList, n: int) -> SeriesList:
    """Only the first n series. ``limit(server*.instance*.memory.free,5)``"""
    return list(series_list[0:n])
