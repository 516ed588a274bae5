"""Graphite's "Transform" group: functions that change each series' values.

Each function mirrors graphite-web 1.1.10: the result names (``%g`` for
numeric arguments, quoted intervals), the tags each one adds, and whether
the result keeps its ``path_expression`` (in-place edits in graphite:
scale, offset, absolute, transformNull, keepLastValue, timeShift) or takes
the new name as its path expression (graphite's ``copy``: derivative,
perSecond, integral, summarize, hitcount, ...).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np

from cyclone.query.aggfuncs import reduce_rows
from cyclone.query.errors import QueryError
from cyclone.query.evaluator import Context
from cyclone.query.functions._util import fmt_g, py_round
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, TimeSeries, stack_rows, xff_ok
from cyclone.query.timeparse import parse_time_offset

SERIES_LIST = Param("seriesList", T.seriesList, required=True)
INTERVAL_SUGGESTIONS = ("10min", "1h", "1d")


def _renamed(s: TimeSeries, name: str, values: np.ndarray | None = None) -> TimeSeries:
    """graphite's in-place edit: new name, path expression = name, rest kept."""
    if values is None:
        return s.evolve(name=name, path_expression=name)
    return s.evolve(name=name, path_expression=name, values=values)


@function("scale", group="Transform", params=[SERIES_LIST, Param("factor", T.float, required=True)])
def scale(ctx: Context, series_list: SeriesList, factor: float) -> SeriesList:
    """Multiplies each value by a constant.

    ``scale(Server.instance01.threads.busy,10)``
    """
    return [
        _renamed(s, f"scale({s.name},{fmt_g(factor)})", s.values * factor).with_tag("scale", factor)
        for s in series_list
    ]


@function("offset", group="Transform", params=[SERIES_LIST, Param("factor", T.float, required=True)])
def offset(ctx: Context, series_list: SeriesList, factor: float) -> SeriesList:
    """Adds a constant to each value.

    ``offset(Server.instance01.threads.busy,10)``
    """
    return [
        _renamed(s, f"offset({s.name},{fmt_g(factor)})", s.values + factor).with_tag("offset", factor)
        for s in series_list
    ]


@function("absolute", group="Transform", params=[SERIES_LIST])
def absolute(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Replaces each value by its absolute value.

    ``absolute(Server.instance01.threads.busy)``
    """
    return [_renamed(s, f"absolute({s.name})", np.abs(s.values)).with_tag("absolute", 1) for s in series_list]


@function("derivative", group="Transform", params=[SERIES_LIST])
def derivative(ctx: Context, series_list: SeriesList) -> SeriesList:
    """The difference between each value and the previous one (None if either is None).

    ``derivative(company.server.application01.ifconfig.TXPackets)``. Not
    normalised per second: see perSecond.
    """
    out = []
    for s in series_list:
        v = s.values
        values = np.full(len(v), np.nan)
        if len(v) > 1:
            values[1:] = v[1:] - v[:-1]
        out.append(s.copy(name=f"derivative({s.name})", values=values).with_tag("derivative", 1))
    return out


def _non_negative_delta(v: np.ndarray, max_value: float | None, min_value: float | None) -> np.ndarray:
    """graphite's ``_nonNegativeDelta`` applied along a series.

    A value above maxValue / below minValue gives None and is not used as
    the next point's predecessor. A decrease is a counter wrap: with
    maxValue, delta = maxValue + 1 + val - prev - (minValue or 0); with only
    minValue, val - minValue; with neither, None.
    """
    n = len(v)
    out_of_range = np.zeros(n, dtype=bool)
    with np.errstate(invalid="ignore"):
        if max_value is not None:
            out_of_range |= v > max_value
        if min_value is not None:
            out_of_range |= v < min_value
    prev = np.full(n, np.nan)
    if n > 1:
        prev[1:] = np.where(out_of_range[:-1], np.nan, v[:-1])
    delta = np.full(n, np.nan)
    both = ~np.isnan(prev) & ~np.isnan(v)
    with np.errstate(invalid="ignore"):
        up = both & (v >= prev)
        down = both & (v < prev)
    delta[up] = v[up] - prev[up]
    if max_value is not None:
        delta[down] = max_value + 1 + v[down] - prev[down] - (min_value or 0)
    elif min_value is not None:
        delta[down] = v[down] - min_value
    delta[out_of_range] = np.nan
    return delta


_MAX_MIN = [Param("maxValue", T.float), Param("minValue", T.float)]


@function("nonNegativeDerivative", group="Transform", params=[SERIES_LIST, *_MAX_MIN])
def non_negative_derivative(
    ctx: Context, series_list: SeriesList, max_value: float | None, min_value: float | None
) -> SeriesList:
    """Like derivative, but a decrease (a counter reset or wrap) gives None.

    With ``maxValue`` a decrease is computed as a wrap at maxValue; with
    ``minValue`` as a wrap to minValue; values outside [minValue, maxValue]
    give None. ``nonNegativeDerivative(company.server.application01.ifconfig.TXPackets)``
    """
    return [
        s.copy(name=f"nonNegativeDerivative({s.name})", values=_non_negative_delta(s.values, max_value, min_value))
        .with_tag("nonNegativeDerivative", 1)
        for s in series_list
    ]


@function("perSecond", group="Transform", params=[SERIES_LIST, *_MAX_MIN])
def per_second(ctx: Context, series_list: SeriesList, max_value: float | None, min_value: float | None) -> SeriesList:
    """nonNegativeDerivative divided by the step: the rate per second of a counter
    (rounded to 6 decimals, as graphite does).

    ``perSecond(company.server.application01.ifconfig.TXPackets)``
    """
    out = []
    for s in series_list:
        with np.errstate(invalid="ignore", over="ignore"):
            values = py_round(_non_negative_delta(s.values, max_value, min_value) / s.step, 6)
        out.append(s.copy(name=f"perSecond({s.name})", values=values).with_tag("perSecond", 1))
    return out


@function("integral", group="Transform", params=[SERIES_LIST])
def integral(ctx: Context, series_list: SeriesList) -> SeriesList:
    """The running total of the values (None stays None and adds nothing).

    ``integral(company.sales.perMinute)``
    """
    out = []
    for s in series_list:
        values = np.nancumsum(s.values)
        values[np.isnan(s.values)] = np.nan
        out.append(s.copy(name=f"integral({s.name})", values=values).with_tag("integral", 1))
    return out


@function("keepLastValue", group="Transform", params=[SERIES_LIST, Param("limit", T.intOrInf, default=math.inf)])
def keep_last_value(ctx: Context, series_list: SeriesList, limit: float) -> SeriesList:
    """Fills gaps of at most ``limit`` consecutive None with the last value before them.

    ``keepLastValue(Server01.connections.handled)``,
    ``keepLastValue(Server01.connections.handled, 10)``. Gaps at the very
    start (no earlier value) stay None.
    """
    out = []
    for s in series_list:
        v = s.values
        missing = np.isnan(v)
        values = v
        if missing.any():
            n = len(v)
            edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
            starts = np.nonzero(edges == 1)[0]
            ends = np.nonzero(edges == -1)[0]
            lengths = ends - starts
            fillable = (lengths <= limit) & (starts > 0)
            positions = np.nonzero(missing)[0]
            fill_pos = positions[np.repeat(fillable, lengths)]
            last_valid = np.maximum.accumulate(np.where(missing, -1, np.arange(n)))
            values = v.copy()
            values[fill_pos] = v[last_valid[fill_pos]]
        name = f"keepLastValue({s.name})"
        out.append(_renamed(s, name, values))
    return out


@function(
    "transformNull",
    group="Transform",
    params=[SERIES_LIST, Param("default", T.float, default=0), Param("referenceSeries", T.seriesList)],
)
def transform_null(
    ctx: Context, series_list: SeriesList, default: float, reference: SeriesList | None
) -> SeriesList:
    """Replaces None with ``default`` (0 if not given).

    With ``referenceSeries``, only at points where at least one of those
    series has a value. ``transformNull(webapp.pages.*.views,-1)``
    """
    defaults = None
    if reference:
        ref = stack_rows([r.values for r in reference])
        if ref.shape[1]:
            defaults = np.where((~np.isnan(ref)).any(axis=0), float(default), np.nan)
    out = []
    for s in series_list:
        if reference:
            name = f"transformNull({s.name},{fmt_g(default)},referenceSeries)"
        else:
            name = f"transformNull({s.name},{fmt_g(default)})"
        if defaults is not None:
            # Point i of the series uses point i of the reference (graphite
            # zips them by index). graphite-web garbles the result when the
            # reference is longer (it keeps the *last* len(series) values of
            # the zip); we keep the series' own length and alignment.
            d = np.full(len(s), np.nan)
            k = min(len(s), len(defaults))
            d[:k] = defaults[:k]
            values = np.where(np.isnan(s.values), d, s.values)
        else:
            values = np.where(np.isnan(s.values), float(default), s.values)
        t = _renamed(s, name, values).with_tag("transformNull", default)
        if reference:
            t.with_tag("referenceSeries", 1)
        out.append(t)
    return out


@function(
    "summarize",
    group="Transform",
    params=[
        SERIES_LIST,
        Param("intervalString", T.interval, required=True, suggestions=INTERVAL_SUGGESTIONS),
        Param("func", T.aggFunc, default="sum"),
        Param("alignToFrom", T.boolean, default=False),
    ],
)
def summarize(ctx: Context, series_list: SeriesList, interval_string: str, func: str, align_to_from: bool) -> SeriesList:
    """Summarizes each series into buckets of a fixed interval with an aggregation
    function (default sum).

    Buckets are aligned to multiples of the interval (22:32 lands in
    22:00-23:00 for "1hour"), or with ``alignToFrom=true`` start at the
    series' first point. A bucket is None unless its non-null share reaches
    the series' xFilesFactor.
    ``summarize(counter.errors, "1hour")``, ``summarize(queue.size, "1hour", "max")``
    """
    interval = parse_time_offset(interval_string)
    if interval <= 0:
        raise QueryError(f"summarize(): interval must be positive, got {interval_string!r}")
    out = []
    for s in series_list:
        if align_to_from:
            new_start, new_end = s.start, s.end
        else:
            new_start = s.start - s.start % interval
            new_end = s.end - s.end % interval + interval
        n_buckets = max(0, -(-(new_end - new_start) // interval))
        n_points = min(len(s), max(0, -(-(s.end - s.start) // s.step)))
        ts = s.start + np.arange(n_points, dtype=np.int64) * s.step
        idx = (ts - new_start) // interval
        keep = (idx >= 0) & (idx < n_buckets)
        idx = idx[keep]
        vals = s.values[:n_points][keep]
        counts = np.bincount(idx, minlength=n_buckets) if n_buckets else np.zeros(0, dtype=np.int64)
        width = int(counts.max()) if len(counts) else 0
        m = np.full((n_buckets, max(width, 1)), np.nan)
        if len(idx):
            first = np.concatenate(([0], np.cumsum(counts)[:-1]))
            m[idx, np.arange(len(idx)) - first[idx]] = vals
        non_null = (~np.isnan(m)).sum(axis=1)
        values = reduce_rows(m, func, slots=counts, nulls_passed=True)
        values[~xff_ok(non_null, interval / s.step, s.x_files_factor)] = np.nan
        if align_to_from:
            new_end = new_start + n_buckets * interval
        name = f'summarize({s.name}, "{interval_string}", "{func}"{", true" if align_to_from else ""})'
        t = s.copy(name=name, start=new_start, end=new_end, step=interval, values=values)
        t.with_tag("summarize", interval_string).with_tag("summarizeFunction", func)
        out.append(t)
    return out


def _local_truncate(ctx: Context, t: int, unit: int) -> int:
    """Truncate epoch `t` to a local calendar unit (day/hour/minute) in ctx.tz,
    keeping t's UTC offset (graphite builds the datetime with the original tzinfo)."""
    offset = datetime.fromtimestamp(t, ctx.tz).utcoffset()
    off = int(offset.total_seconds()) if offset is not None else 0
    local = t + off
    return local - local % unit - off


@function(
    "hitcount",
    group="Transform",
    params=[
        SERIES_LIST,
        Param("intervalString", T.interval, required=True, suggestions=INTERVAL_SUGGESTIONS),
        Param("alignToInterval", T.boolean, default=False),
    ],
)
def hitcount(ctx: Context, series_list: SeriesList, interval_string: str, align_to_interval: bool) -> SeriesList:
    """Estimates hit counts per interval from series of hits per second.

    Each value counts value * seconds covered, spread over the buckets its
    step overlaps; buckets end at the series' end (or, with
    ``alignToInterval=true``, the data is re-read from the start of the
    day/hour/minute so buckets align to the calendar). Unlike summarize it
    compensates for the resolution of the data.
    ``hitcount(my.metric.hits, "1h")``
    """
    interval = parse_time_offset(interval_string)
    if interval <= 0:
        raise QueryError(f"hitcount(): interval must be positive, got {interval_string!r}")
    if align_to_interval:
        start = ctx.start
        if interval >= 86400:
            start = _local_truncate(ctx, start, 86400)
        elif interval >= 3600:
            start = _local_truncate(ctx, start, 3600)
        elif interval >= 60:
            start = _local_truncate(ctx, start, 60)
        fetched = ctx.refetch(start, ctx.end)
        series_list = []
        for s in fetched:
            count = (s.end - s.start) // interval
            series_list.append(s.evolve(end=s.start + count * interval + interval))
    out = []
    for s in series_list:
        step = int(s.step)
        n_buckets = max(0, math.ceil((s.end - s.start) / interval))
        new_start = int(s.end - n_buckets * interval)
        values = _hitcount_buckets(s.values, s.start, step, new_start, interval, n_buckets)
        name = f'hitcount({s.name}, "{interval_string}"{", true" if align_to_interval else ""})'
        out.append(s.copy(name=name, start=new_start, step=interval, values=values).with_tag("hitcount", interval_string))
    return out


def _hitcount_buckets(
    v: np.ndarray, start: int, step: int, new_start: int, interval: int, n_buckets: int
) -> np.ndarray:
    sums = np.zeros(n_buckets)
    hits = np.zeros(n_buckets, dtype=np.int64)
    if n_buckets == 0:
        return np.full(0, np.nan)
    idx = np.nonzero(~np.isnan(v))[0]
    if len(idx):
        value = v[idx]
        t0 = start + idx.astype(np.int64) * step
        sb, sm = np.divmod(t0 - new_start, interval)
        eb, em = np.divmod(t0 + step - new_start, interval)
        clamp = eb >= n_buckets
        eb = np.where(clamp, n_buckets - 1, eb)
        em = np.where(clamp, interval, em)
        same = sb == eb
        # Contributions, in graphite's order per point: first, middle..., last.
        first_amount = np.where(same, value * (em - sm), value * (interval - sm))
        middle_count = np.where(same, 0, np.maximum(eb - sb - 1, 0))
        last_ok = ~same & (em > 0)
        per_point = 1 + middle_count + last_ok.astype(np.int64)
        total = int(per_point.sum())
        offsets = np.concatenate(([0], np.cumsum(per_point)[:-1]))
        buckets = np.empty(total, dtype=np.int64)
        amounts = np.empty(total)
        valid = np.ones(total, dtype=bool)
        buckets[offsets] = sb
        amounts[offsets] = first_amount
        valid[offsets] = sb >= 0
        if middle_count.any():
            owner = np.repeat(np.arange(len(idx)), middle_count)
            k = np.arange(len(owner)) - np.repeat(np.cumsum(middle_count) - middle_count, middle_count)
            pos = offsets[owner] + 1 + k
            buckets[pos] = sb[owner] + 1 + k
            amounts[pos] = value[owner] * interval
        if last_ok.any():
            lp = np.nonzero(last_ok)[0]
            pos = offsets[lp] + per_point[lp] - 1
            buckets[pos] = eb[lp]
            amounts[pos] = value[lp] * em[lp]
        b = buckets[valid]
        if len(b) and (b.max() >= n_buckets or b.min() < -n_buckets):
            raise QueryError("hitcount(): series has values past its end")
        b = np.where(b < 0, b + n_buckets, b)  # Python's negative indexing, as in graphite
        np.add.at(sums, b, amounts[valid])
        np.add.at(hits, b, 1)
    return np.where(hits > 0, sums, np.nan)


def _is_dst(ctx: Context, t: int) -> bool:
    d = datetime.fromtimestamp(t, ctx.tz).dst()
    return bool(d) and d.total_seconds() != 0


@function(
    "timeShift",
    group="Transform",
    params=[
        SERIES_LIST,
        Param("timeShift", T.interval, required=True, suggestions=("1h", "6h", "12h", "1d", "2d", "7d", "14d", "30d")),
        Param("resetEnd", T.boolean, default=True),
        Param("alignDst", T.boolean, default=False),
    ],
)
def time_shift(ctx: Context, series_list: SeriesList, shift: str, reset_end: bool, align_dst: bool) -> SeriesList:
    """Draws the series shifted in time: the data of the window moved by the
    interval, plotted over the request window.

    Without a sign the shift is into the past ("1d" == "-1d"); "+1h" shifts
    forward. ``resetEnd`` (default true) keeps the request's end;
    ``alignDst`` compensates a DST change between the two windows (by the
    evaluation timezone). ``timeShift(Sales.widgets.largeBlue,"7d")``
    """
    if shift[:1].isdigit():
        shift = "-" + shift
    delta = parse_time_offset(shift)
    start, end = ctx.start + delta, ctx.end + delta
    if align_dst:
        req_start, req_end = _is_dst(ctx, ctx.start), _is_dst(ctx, ctx.end)
        my_start, my_end = _is_dst(ctx, start), _is_dst(ctx, end)
        dst_offset = 0
        if req_start and req_end and not my_start and not my_end:
            dst_offset = 3600
        elif not req_start and not req_end and my_start and my_end:
            dst_offset = -3600
        start += dst_offset
        end += dst_offset
    if not series_list:
        return []
    first = series_list[0]
    out = []
    for s in ctx.refetch(start, end):
        new_end = first.end if reset_end else s.end - s.start + first.start
        t = s.evolve(name=f'timeShift({s.name}, "{shift}")', start=first.start, end=new_end)
        out.append(t.with_tag("timeShift", shift))
    return out
