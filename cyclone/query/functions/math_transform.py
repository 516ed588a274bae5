"""Point-wise math, time and ratio functions (graphite groups Transform,
Combine, Special and Graph).

pow, squareRoot, invert, log, isNonNull, offsetToZero, minMax,
scaleToSeconds, changed, cumulative, delay, interpolate,
integralByInterval, timeSlice, timeStack, substr, threshold, powSeries,
asPercent, divideSeriesLists, weightedAverage and percentileOfSeries, as
graphite-web 1.1.10 computes them:

* graphite's ``safePow`` (``math.pow``) gives None where Python raises:
  0 to a negative power, a negative base with a fractional exponent, an
  overflow. `safe_pow` reproduces that with numpy;
* functions graphite writes in place (pow, squareRoot, invert, isNonNull,
  offsetToZero, minMax, scaleToSeconds, changed, interpolate) keep display
  options (`TimeSeries.evolve`); the ones that ``copy`` (log, delay,
  integralByInterval) reset them;
* graphite's normalize-then-iterate quirks are kept: asPercent without
  nodes returns each series on its *own* step but with values consolidated
  to the common step, and a numeric total pads every result to the raw
  length of the first series.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cyclone.query.errors import QueryError
from cyclone.query.evaluator import Context
from cyclone.query.functions._util import fmt_g, format_path_expressions, py_round
from cyclone.query.functions.alias import alias_key, substr_name
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, TimeSeries, normalize, stack_rows
from cyclone.query.timeparse import parse_time_offset

SERIES_LIST = Param("seriesList", T.seriesList, required=True)


def _renamed(s: TimeSeries, name: str, values: np.ndarray | None = None) -> TimeSeries:
    """graphite's in-place edit: new name and path expression, everything else kept."""
    if values is None:
        return s.evolve(name=name, path_expression=name)
    return s.evolve(name=name, path_expression=name, values=values)


def safe_pow(base: np.ndarray | float, exponent: np.ndarray | float) -> np.ndarray:
    """graphite's ``safePow`` elementwise: ``math.pow`` or None (NaN) where it raises.

    math.pow raises for 0 ** negative (ValueError), a negative base with a
    non-integer exponent (ValueError) and a finite result too large
    (OverflowError); numpy answers inf / nan there instead.
    """
    base = np.asarray(base, dtype=np.float64)
    exponent = np.asarray(exponent, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = np.power(base, exponent)
    finite_in = np.isfinite(base) & np.isfinite(exponent)
    out = np.where((finite_in & ~np.isfinite(out)) | np.isnan(base) | np.isnan(exponent), np.nan, out)
    return np.asarray(out, dtype=np.float64)


# -- point-wise transforms ---------------------------------------------------


@function("pow", group="Transform", params=[SERIES_LIST, Param("factor", T.float, required=True)])
def pow_(ctx: Context, series_list: SeriesList, factor: float) -> SeriesList:
    """Raises every value to the power `factor`; None where that is undefined
    (0 to a negative power, a negative value to a fractional power) or overflows.

    ``pow(Server.instance01.threads.busy,10)``
    """
    return [
        _renamed(s, f"pow({s.name},{fmt_g(factor)})", safe_pow(s.values, factor)).with_tag("pow", factor)
        for s in series_list
    ]


@function("squareRoot", group="Transform", params=[SERIES_LIST])
def square_root(ctx: Context, series_list: SeriesList) -> SeriesList:
    """The square root of every value (None for negative values).

    ``squareRoot(Server.instance01.threads.busy)``
    """
    return [_renamed(s, f"squareRoot({s.name})", safe_pow(s.values, 0.5)).with_tag("squareRoot", 1) for s in series_list]


@function("invert", group="Transform", params=[SERIES_LIST])
def invert(ctx: Context, series_list: SeriesList) -> SeriesList:
    """1 / value for every value (None for 0).

    ``invert(Server.instance01.threads.busy)``
    """
    return [_renamed(s, f"invert({s.name})", safe_pow(s.values, -1.0)).with_tag("invert", 1) for s in series_list]


@function("log", group="Transform", params=[SERIES_LIST, Param("base", T.integer, default=10)], aliases=("logarithm",))
def logarithm(ctx: Context, series_list: SeriesList, base: int) -> SeriesList:
    """The logarithm of every value in `base` (default 10); None for values <= 0.

    ``log(Server.instance01.threads.busy,10)``. The result is named
    ``log(<series>, <base>)``. (``logarithm`` is accepted as a name too.)
    """
    if base <= 0 or base == 1:
        raise QueryError(f"log(): base must be a positive integer other than 1, got {base}")
    log_base = math.log(base)
    out = []
    for s in series_list:
        v = s.values
        with np.errstate(all="ignore"):
            values = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)) / log_base, np.nan)
        out.append(s.copy(name=f"log({s.name}, {base})", values=values).with_tag("log", base))
    return out


@function("isNonNull", group="Transform", params=[SERIES_LIST])
def is_non_null(ctx: Context, series_list: SeriesList) -> SeriesList:
    """1 where the series has a value, 0 where it is None. Summed over
    series (``sumSeries(isNonNull(...))``) it counts the series reporting.

    ``isNonNull(webapp.pages.*.views)``
    """
    return [
        _renamed(s, f"isNonNull({s.name})", (~np.isnan(s.values)).astype(np.float64)).with_tag("isNonNull", 1)
        for s in series_list
    ]


def _safe_min(v: np.ndarray) -> float | None:
    return None if np.isnan(v).all() else float(np.nanmin(v))


def _safe_max(v: np.ndarray) -> float | None:
    return None if np.isnan(v).all() else float(np.nanmax(v))


@function("offsetToZero", group="Transform", params=[SERIES_LIST])
def offset_to_zero(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Subtracts the series' minimum from every value, so its lowest value is 0.

    ``offsetToZero(Server.instance01.responseTime)``
    """
    out = []
    for s in series_list:
        minimum = _safe_min(s.values)
        values = s.values - minimum if minimum is not None else s.values
        out.append(_renamed(s, f"offsetToZero({s.name})", values).with_tag("offsetToZero", minimum))
    return out


@function("minMax", group="Transform", params=[SERIES_LIST])
def min_max(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Scales every series to 0..1: (value - min) / (max - min); all 0 for a
    constant series.

    ``minMax(Server.instance01.threads.busy)``
    """
    out = []
    for s in series_list:
        v = s.values
        lo = _safe_min(v)
        hi = _safe_max(v)
        lo = 0.0 if lo is None else lo
        hi = 0.0 if hi is None else hi
        if hi - lo == 0:
            values = np.where(np.isnan(v), np.nan, 0.0)
        else:
            values = (v - lo) / (hi - lo)
        out.append(_renamed(s, f"minMax({s.name})", values))
    return out


@function("scaleToSeconds", group="Transform", params=[SERIES_LIST, Param("seconds", T.float, required=True)])
def scale_to_seconds(ctx: Context, series_list: SeriesList, seconds: float) -> SeriesList:
    """Scales each value from "per step" to "per `seconds`" (value * seconds / step,
    rounded to 6 decimals).

    ``scaleToSeconds(derivative(app.requests.count), 1)``
    """
    out = []
    for s in series_list:
        factor = seconds / s.step
        with np.errstate(all="ignore"):
            values = py_round(s.values * factor, 6)
        name = f"scaleToSeconds({s.name},{int(seconds)})"
        out.append(_renamed(s, name, values).with_tag("scaleToSeconds", seconds))
    return out


@function("changed", group="Special", params=[SERIES_LIST])
def changed(ctx: Context, series_list: SeriesList) -> SeriesList:
    """1 where the value differs from the previous non-null value, else 0
    (None and the first value give 0).

    ``changed(Server01.connections.handled)``
    """
    out = []
    for s in series_list:
        v = s.values
        n = len(v)
        valid = ~np.isnan(v)
        # index of the last non-null value strictly before each point
        last = np.maximum.accumulate(np.where(valid, np.arange(n), -1))
        prev_idx = np.empty(n, dtype=np.int64)
        if n:
            prev_idx[0] = -1
            prev_idx[1:] = last[:-1]
        has_prev = prev_idx >= 0
        prev = np.where(has_prev, v[np.maximum(prev_idx, 0)] if n else v, np.nan)
        values = (valid & has_prev & (v != prev)).astype(np.float64)
        out.append(_renamed(s, f"changed({s.name})", values))
    return out


@function("cumulative", group="Special", params=[SERIES_LIST])
def cumulative(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Consolidates with 'sum' instead of 'average' when points must be merged.
    Same as ``consolidateBy(seriesList, 'sum')``.

    ``cumulative(Sales.widgets.largeBlue)``
    """
    from cyclone.query.functions.special import consolidate_by

    return consolidate_by(ctx, series_list, "sum")


@function("delay", group="Transform", params=[SERIES_LIST, Param("steps", T.integer, required=True)])
def delay(ctx: Context, series_list: SeriesList, steps: int) -> SeriesList:
    """Shifts the values later by `steps` points (earlier for a negative
    number), padding with None.

    ``divideSeries(server.FreeSpace,delay(server.FreeSpace,1))``. As in
    graphite-web, ``delay(x, 0)`` returns a series without values.
    """
    out = []
    for s in series_list:
        v = s.values
        n = len(v)
        if steps < 0:
            k = min(-steps, n)
            values = np.concatenate((v[-steps:], np.full(k, np.nan)))
        elif steps == 0:
            values = np.full(0, np.nan)  # graphite: series[:-0] is empty
        else:
            k = min(steps, n)
            values = np.concatenate((np.full(k, np.nan), v[:-steps]))
        out.append(s.copy(name=f"delay({s.name},{steps})", values=values).with_tag("delay", steps))
    return out


@function("interpolate", group="Transform", params=[SERIES_LIST, Param("limit", T.intOrInf, default=math.inf)])
def interpolate(ctx: Context, series_list: SeriesList, limit: float) -> SeriesList:
    """Fills gaps of at most `limit` None (default: any) between two values
    by linear interpolation. Gaps at the start or the end stay None.

    ``interpolate(Server01.connections.handled)``,
    ``interpolate(Server01.connections.handled, 10)``
    """
    out = []
    for s in series_list:
        v = s.values
        n = len(v)
        missing = np.isnan(v)
        values = v
        if missing.any() and n > 2:
            idx = np.arange(n)
            prev_i = np.maximum.accumulate(np.where(missing, -1, idx))
            next_i = np.minimum.accumulate(np.where(missing, n, idx)[::-1])[::-1]
            gap = next_i - prev_i - 1
            fill = missing & (prev_i >= 0) & (next_i < n) & (gap <= limit)
            if fill.any():
                values = v.copy()
                p, q, i = prev_i[fill], next_i[fill], idx[fill]
                values[fill] = v[p] + (i - p) * (v[q] - v[p]) / (q - p)
        out.append(_renamed(s, f"interpolate({s.name})", values))
    return out


@function(
    "integralByInterval",
    group="Transform",
    params=[SERIES_LIST, Param("intervalUnit", T.string, required=True)],
)
def integral_by_interval(ctx: Context, series_list: SeriesList, interval_unit: str) -> SeriesList:
    """Like integral, but the running total restarts at 0 at every interval
    boundary, counted from the request's `from`.

    ``integralByInterval(company.sales.perMinute, "1d")&from=midnight-10days``.
    A None point repeats the running total (0 right after a reset).
    """
    duration = abs(parse_time_offset(interval_unit))
    if duration == 0:
        raise QueryError(f"integralByInterval(): interval must not be zero, got {interval_unit!r}")
    start = int(ctx.start)
    out = []
    for s in series_list:
        v = s.values
        n = len(v)
        values = np.zeros(n)
        if n:
            t = s.start + np.arange(n, dtype=np.int64) * s.step
            group = (t - start) // duration
            new_group = np.ones(n, dtype=bool)
            new_group[1:] = group[1:] != group[:-1]
            new_group[0] = True
            starts = np.nonzero(new_group)[0]
            lengths = np.diff(np.append(starts, n))
            # one row per interval, summed left to right like graphite's loop
            m = np.zeros((len(starts), int(lengths.max())))
            row = np.repeat(np.arange(len(starts)), lengths)
            col = np.arange(n) - np.repeat(starts, lengths)
            m[row, col] = np.where(np.isnan(v), 0.0, v)
            values = np.cumsum(m, axis=1)[row, col]
        name = f"integralByInterval({s.name},'{interval_unit}')"
        out.append(s.copy(name=name, values=values).with_tag("integralByInterval", interval_unit))
    return out


def parse_date(ctx: Context, value: Any) -> int:
    """Epoch seconds of a graphite date argument ("now", "-1h", "12:00_20240101",
    epoch as a string or an integer), in the request's time zone and now."""
    from cyclone.protocols.http_times import TimeParseError, parse_time

    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    try:
        return int(parse_time(str(value), now=ctx.now, tz=ctx.tz))
    except TimeParseError as e:
        raise QueryError(str(e)) from None


@function(
    "timeSlice",
    group="Transform",
    params=[
        SERIES_LIST,
        Param("startSliceAt", T.date, required=True),
        Param("endSliceAt", T.date, default="now"),
    ],
)
def time_slice(ctx: Context, series_list: SeriesList, start_slice_at: Any, end_slice_at: Any) -> SeriesList:
    """Keeps only the values between two times (inclusive); the rest become None.

    ``timeSlice(network.core.port1,"00:00 20140101","11:59 20140630")``,
    ``timeSlice(network.core.port1,"12:00 20140630","now")``. As in
    graphite-web, point i is taken to be at ``from + i * step`` (the
    request's from, not the series' first timestamp).
    """
    lo = parse_date(ctx, start_slice_at)
    hi = parse_date(ctx, end_slice_at)
    out = []
    for s in series_list:
        t = ctx.start + np.arange(len(s), dtype=np.int64) * s.step
        values = np.where((t < lo) | (t > hi), np.nan, s.values)
        t_s = s.evolve(name=f"timeSlice({s.name}, {lo}, {hi})", values=values)
        out.append(t_s.with_tag("timeSliceStart", lo).with_tag("timeSliceEnd", hi))
    return out


@function(
    "timeStack",
    group="Transform",
    params=[
        SERIES_LIST,
        Param("timeShiftUnit", T.interval, default="1d", suggestions=("1h", "6h", "12h", "1d", "2d", "7d", "14d", "30d")),
        Param("timeShiftStart", T.integer, default=0),
        Param("timeShiftEnd", T.integer, default=7),
    ],
)
def time_stack(
    ctx: Context, series_list: SeriesList, time_shift_unit: str, time_shift_start: int, time_shift_end: int
) -> SeriesList:
    """The series shifted back by 0, 1, ... times `timeShiftUnit` (shifts
    timeShiftStart up to, not including, timeShiftEnd), all drawn over the
    current window: e.g. today and each of the previous 6 days.

    ``timeStack(Sales.widgets.largeBlue,"1d",0,7)``. An unsigned unit
    shifts into the past. Results are named
    ``timeShift(<series>, <unit>, <n>)`` and all take the first series'
    start and end.
    """
    if time_shift_unit[:1].isdigit():
        time_shift_unit = "-" + time_shift_unit
    delta = parse_time_offset(time_shift_unit)
    if not series_list:
        return []
    first = series_list[0]
    out = []
    for shift in range(int(time_shift_start), int(time_shift_end)):
        inner = delta * shift
        for s in ctx.refetch(ctx.start + inner, ctx.end + inner):
            name = f"timeShift({s.name}, {time_shift_unit}, {shift})"
            t = s.evolve(name=name, path_expression=name, start=first.start, end=first.end)
            out.append(t.with_tag("timeShiftUnit", time_shift_unit).with_tag("timeShift", shift))
    return out


@function(
    "substr",
    group="Special",
    params=[SERIES_LIST, Param("start", T.node, default=0), Param("stop", T.node, default=0)],
)
def substr(ctx: Context, series_list: SeriesList, start: int, stop: int) -> SeriesList:
    """Names each series by nodes start..stop (exclusive; 0 = to the end) of
    its innermost metric path.

    ``substr(carbon.agents.hostname.avgUpdateTime,2,4)`` -> ``hostname.avgUpdateTime``
    """
    return [s.evolve(name=substr_name(s.name, int(start), int(stop))) for s in series_list]


@function(
    "threshold",
    group="Graph",
    params=[Param("value", T.float, required=True), Param("label", T.string), Param("color", T.string)],
)
def threshold(ctx: Context, value: float, label: str | None, color: str | None) -> SeriesList:
    """A horizontal line at `value`, optionally named `label` and drawn in `color`.

    ``threshold(123.456, "omgwtfbbq", "red")``
    """
    from cyclone.query.functions.special import constant_line_series

    s = constant_line_series(ctx, value)
    if label:
        s.name = label
    if color:
        s.color = color
    return [s]


# -- combining ---------------------------------------------------------------


@function("powSeries", group="Combine", params=[Param("seriesList", T.seriesList, required=True, multiple=True)], aggregator=True)
def pow_series(ctx: Context, series_lists: list[SeriesList]) -> SeriesList:
    """Raises the first series to the power of the second, the result to the
    power of the third, and so on, point by point; None anywhere gives None.

    ``powSeries(Server.instance01.app.requests, Server.instance01.app.replies)``
    """
    norm = normalize(series_lists)
    if norm is None:
        return []
    flat, arrays, start, end, step = norm
    m = stack_rows(arrays)
    values = m[0].copy()
    for row in m[1:]:
        values = safe_pow(values, row)
    name = "powSeries(%s)" % ",".join(s.name for s in flat)
    return [TimeSeries(name, start, end, step, values, x_files_factor=ctx.x_files_factor)]


def _percent(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """graphite's safeMul(safeDiv(a, b), 100.0): None for a None / b None or 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((den == 0) | np.isnan(den), np.nan, num / den) * 100.0


def _pair(a: TimeSeries, b: TimeSeries) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """graphite's normalize([(a, b)]) then izip_longest(a, b)."""
    _, (va, vb), start, end, step = normalize([[a, b]])  # type: ignore[misc]
    m = stack_rows([va, vb])
    return m[0], m[1], start, end, step


def _sum_group(ctx: Context, group: SeriesList) -> TimeSeries:
    """The ``sumSeries(...)`` total asPercent builds for a group of series."""
    _, arrays, start, end, step = normalize([group])  # type: ignore[misc]
    m = stack_rows(arrays)
    values = np.where((~np.isnan(m)).any(axis=0), np.nansum(m, axis=0), np.nan)
    name = f"sumSeries({format_path_expressions(group)})"
    return TimeSeries(name, start, end, step, values, x_files_factor=ctx.x_files_factor)


@function(
    "asPercent",
    group="Combine",
    params=[SERIES_LIST, Param("total", T.any), Param("nodes", T.nodeOrTag, multiple=True)],
    aliases=("pct",),
    aggregator=True,
)
def as_percent(ctx: Context, series_list: SeriesList, total: Any, nodes: list[int | str]) -> SeriesList:
    """Each series as a percentage of a total.

    Without `total`, the total is the sum of all the series; `total` may be
    a number, one series, or as many series as seriesList (matched by
    sorted name). With `nodes`, series and totals are matched by those
    nodes/tags (like groupByNodes); with no total each group's sum is used,
    and unmatched series or totals give ``asPercent(x,MISSING)`` /
    ``asPercent(MISSING,y)`` full of None.
    ``asPercent(Server01.connections.{failed,succeeded}, Server01.connections.attempted)``,
    ``asPercent(apache01.threads.busy,1500)``, ``asPercent(Server*.cpu.*.jiffies, None, 0)``
    """
    if isinstance(total, bool) or not (total is None or isinstance(total, (list, int, float))):
        raise QueryError(f"asPercent(): total must be a number or a series list, got {total!r}")
    norm = normalize([series_list])
    if norm is None:
        return []
    xff = ctx.x_files_factor
    if nodes:
        return _as_percent_nodes(ctx, series_list, total, nodes)
    _, arrays, _, _, _ = norm
    if total is None:
        m = stack_rows(arrays)
        totals = np.where((~np.isnan(m)).any(axis=0), np.nansum(m, axis=0), np.nan)
        total_text = f"sumSeries({format_path_expressions(series_list)})"
    elif isinstance(total, list):
        if len(total) != 1 and len(total) != len(series_list):
            raise QueryError(
                "asPercent second argument must be missing, a single digit, reference exactly 1 series "
                "or reference the same number of series as the first argument"
            )
        if len(total) == len(series_list):
            out = []
            pairs = zip(sorted(series_list, key=lambda s: s.name), sorted(total, key=lambda s: s.name))
            for s1, s2 in pairs:
                a, b, start, end, step = _pair(s1, s2)
                name = f"asPercent({s1.name},{s2.name})"
                out.append(TimeSeries(name, start, end, step, _percent(a, b), x_files_factor=xff))
            return out
        _, arrays, _, _, _ = normalize([series_list, total])  # type: ignore[misc]
        totals = arrays[-1]
        arrays = arrays[:-1]
        total_text = total[0].name
    else:
        totals = np.full(len(series_list[0]), float(total))
        total_text = str(total)
    out = []
    for s, a in zip(series_list, arrays):
        m = stack_rows([a, totals])
        name = f"asPercent({s.name},{total_text or s.path_expression})"
        out.append(TimeSeries(name, s.start, s.end, s.step, _percent(m[0], m[1]), x_files_factor=xff))
    return out


def _as_percent_nodes(ctx: Context, series_list: SeriesList, total: Any, nodes: list[int | str]) -> SeriesList:
    xff = ctx.x_files_factor
    # graphite's MISSING totals iterate the series as its first normalize left it
    norm = normalize([series_list])
    consolidated_len = {id(s): len(a) for s, a in zip(series_list, norm[1])} if norm else {}
    keys: list[str] = []
    groups: dict[str, SeriesList] = {}
    for s in series_list:
        key = alias_key(s, nodes)
        if key not in groups:
            groups[key] = []
            keys.append(key)
        groups[key].append(s)
    # graphite reuses the start/end/step of whatever it normalized last for
    # the all-None MISSING series; `window` tracks that.
    window: list[tuple[int, int, int]] = []
    totals: dict[str, TimeSeries] = {}
    if total is None:
        for key in keys:
            if len(groups[key]) == 1:
                totals[key] = groups[key][0]
            else:
                totals[key] = _sum_group(ctx, groups[key])
                window.append((totals[key].start, totals[key].end, totals[key].step))
    elif isinstance(total, list):
        total_groups: dict[str, SeriesList] = {}
        for s in total:
            key = alias_key(s, nodes)
            if key not in total_groups:
                total_groups[key] = []
                if key not in keys:
                    keys.append(key)
            total_groups[key].append(s)
        for key, group in total_groups.items():
            if len(group) == 1:
                totals[key] = group[0]
            else:
                totals[key] = _sum_group(ctx, group)
                window.append((totals[key].start, totals[key].end, totals[key].step))
    else:
        raise QueryError("asPercent(): total must be None or a seriesList when nodes are given")
    out = []
    for key in keys:
        if key not in groups:
            s2 = totals[key]
            start, end, step = window[-1] if window else (s2.start, s2.end, s2.step)
            n = len(s2)
            name = f"asPercent(MISSING,{s2.name})"
            out.append(TimeSeries(name, start, end, step, np.full(n, np.nan), x_files_factor=xff))
            continue
        for s1 in groups[key]:
            if key not in totals:
                start, end, step = window[-1] if window else (s1.start, s1.end, s1.step)
                n = consolidated_len[id(s1)]
                name = f"asPercent({s1.name},MISSING)"
                values = np.full(n, np.nan)
            else:
                s2 = totals[key]
                a, b, start, end, step = _pair(s1, s2)
                window.append((start, end, step))
                name = f"asPercent({s1.name},{s2.name})"
                values = _percent(a, b)
            out.append(TimeSeries(name, start, end, step, values, x_files_factor=xff))
    return out


@function(
    "divideSeriesLists",
    group="Combine",
    params=[
        Param("dividendSeriesList", T.seriesList, required=True),
        Param("divisorSeriesList", T.seriesList, required=True),
    ],
)
def divide_series_lists(ctx: Context, dividends: SeriesList, divisors: SeriesList) -> SeriesList:
    """Divides the i-th dividend series by the i-th divisor series, point by
    point (None for a None or 0 divisor). The lists must be the same length.

    ``divideSeriesLists(a.*.requests, a.*.capacity)``
    """
    if len(dividends) != len(divisors):
        raise QueryError("dividendSeriesList and divisorSeriesList argument must have equal length")
    out = []
    for s1, s2 in zip(dividends, divisors):
        a, b, start, end, step = _pair(s1, s2)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where((b == 0) | np.isnan(b), np.nan, a / b)
        name = f"divideSeries({s1.name},{s2.name})"
        out.append(TimeSeries(name, start, end, step, values, x_files_factor=ctx.x_files_factor))
    return out


@function(
    "weightedAverage",
    group="Combine",
    params=[
        Param("seriesListAvg", T.seriesList, required=True),
        Param("seriesListWeight", T.seriesList, required=True),
        Param("nodes", T.nodeOrTag, multiple=True),
    ],
)
def weighted_average(ctx: Context, avgs: SeriesList, weights: SeriesList, nodes: list[int | str]) -> SeriesList:
    """The average of the `seriesListAvg` series weighted by the matching
    `seriesListWeight` series: sum(avg * weight) / sum(weight) at each point.
    Series are matched by the given nodes/tags.

    ``weightedAverage(*.transactions.mean,*.transactions.count,0)``
    """
    from cyclone.query.functions.combine import sum_series

    if len(avgs) != len(weights):
        raise QueryError(
            "weightedAverage must receive the same number of series for seriesListAvg and seriesListWeight "
            f"but received respectively {len(avgs)} and {len(weights)}"
        )
    by_key: dict[str, dict[str, TimeSeries]] = {}
    for a, w in zip(avgs, weights):
        by_key.setdefault(alias_key(a, nodes), {})["avg"] = a
        by_key.setdefault(alias_key(w, nodes), {})["weight"] = w
    products = []
    for entry in by_key.values():
        if "avg" not in entry or "weight" not in entry:
            continue
        a, w = entry["avg"], entry["weight"]
        m = stack_rows([a.values, w.values])
        name = f"product({w.name},{a.name})"
        products.append(TimeSeries(name, a.start, a.end, a.step, m[0] * m[1], x_files_factor=ctx.x_files_factor))
    if not products:
        return []
    sum_products = sum_series(ctx, [products])[0]
    sum_weights = sum_series(ctx, [weights])[0]
    m = stack_rows([sum_products.values, sum_weights.values])
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where((m[1] == 0) | np.isnan(m[1]), np.nan, m[0] / m[1])
    name = "weightedAverage(%s, %s, %s)" % (
        ",".join(sorted({s.path_expression for s in avgs})),
        ",".join(sorted({s.path_expression for s in weights})),
        ",".join(map(str, nodes)),
    )
    return [
        TimeSeries(name, sum_products.start, sum_products.end, sum_products.step, values, x_files_factor=ctx.x_files_factor)
    ]


def percentile_rows(m: np.ndarray, n: float, interpolate: bool = False) -> np.ndarray:
    """graphite's ``_getPercentile`` for every row of `m` (NaN = None).

    Nearest rank on the sorted non-null values: rank = ceil(n/100 * (k+1))
    (k values), 0 -> the smallest, k+1 -> the largest; with `interpolate`
    rank = floor(...) and the value moves towards the next one by the
    fractional part. Rows without values give NaN. Ranks beyond the ends
    (n > 100, where graphite-web raises IndexError) give the largest value.
    """
    m = np.sort(np.asarray(m, dtype=np.float64), axis=1)  # NaN last
    rows, width = m.shape
    k = (~np.isnan(m)).sum(axis=1)
    out = np.full(rows, np.nan)
    has = k > 0
    if not has.any() or width == 0:
        return out
    fractional = (n / 100.0) * (k + 1)
    rank = np.trunc(fractional).astype(np.int64)
    frac = fractional - rank
    if not interpolate:
        rank = rank + np.ceil(frac).astype(np.int64)
    idx = np.where(rank == 0, 0, np.where(rank - 1 == k, k - 1, rank - 1))
    idx = np.where(idx < 0, idx + k, idx)  # Python's negative indexing
    idx = np.clip(idx, 0, np.maximum(k - 1, 0))
    r = np.arange(rows)
    p = m[r, idx]
    if interpolate:
        nxt_i = np.clip(rank, 0, np.maximum(k - 1, 0))
        nxt = m[r, nxt_i]
        p = np.where(rank != k, p + frac * (nxt - p), p)
    out[has] = p[has]
    return out


@function(
    "percentileOfSeries",
    group="Combine",
    params=[SERIES_LIST, Param("n", T.float, required=True), Param("interpolate", T.boolean, default=False)],
)
def percentile_of_series(ctx: Context, series_list: SeriesList, n: float, interpolate: bool) -> SeriesList:
    """The n-th percentile of the values of all series at each point (nearest
    rank; with interpolate=true, linearly interpolated between ranks).

    ``percentileOfSeries(Server.instance*.threads.busy, 95)``
    """
    if n <= 0:
        raise QueryError("The requested percent is required to be greater than 0")
    norm = normalize([series_list])
    if norm is None:
        return []
    flat, arrays, start, end, step = norm
    values = percentile_rows(stack_rows(arrays).T, n, interpolate)
    name = f"percentileOfSeries({flat[0].path_expression},{fmt_g(n)})"
    return [TimeSeries(name, start, end, step, values, x_files_factor=ctx.x_files_factor)]
