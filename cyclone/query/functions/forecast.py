"""Graphite's "Calculate" statistics and forecasts: holtWintersForecast,
linearRegression, aggregateLine, nPercentile, stdev.

holtWintersForecast and linearRegression re-read their series argument
over another window (``ctx.refetch``), as graphite-web re-evaluates it:
Holt-Winters over ``bootstrapInterval`` of extra history before `from`,
the regression over [startSourceAt, endSourceAt].

Floating point follows graphite-web's order of operations so results
agree to the last bit where practical: the Holt-Winters recurrence is a
plain sequential loop (it cannot be vectorised), the regression sums and
stdev's running window sums are sequential (``np.cumsum``), like Python's
``sum`` and graphite's add/subtract loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cyclone.query.aggfuncs import resolve_agg_func
from cyclone.query.errors import QueryError
from cyclone.query.evaluator import Context
from cyclone.query.functions._util import fmt_g
from cyclone.query.functions.math_transform import parse_date, percentile_rows
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, TimeSeries
from cyclone.query.timeparse import parse_time_offset

SERIES_LIST = Param("seriesList", T.seriesList, required=True)


def _seq_sum(values: np.ndarray) -> float:
    """Left-to-right sum (Python's ``sum`` on floats, not numpy's pairwise sum)."""
    if len(values) == 0:
        return 0
    return float(np.cumsum(values)[-1])


# -- Holt-Winters --------------------------------------------------------------

ALPHA = GAMMA = 0.1
BETA = 0.0035


def holt_winters_predictions(values: np.ndarray, season_length: int) -> np.ndarray:
    """graphite's holtWintersAnalysis predictions (alpha = gamma = 0.1, beta = 0.0035).

    A None input gives the pending prediction and breaks the chain: the next
    point's prediction is None and its level restarts from its own value.
    """
    n = len(values)
    vals = values.tolist()
    L = season_length
    intercepts: list[float | None] = []
    slopes: list[float] = []
    seasonals: list[float] = []
    deviations: list[float] = []
    predictions = np.full(n, np.nan)
    next_pred: float | None = None
    a, b, g = ALPHA, BETA, GAMMA
    for i in range(n):
        actual = vals[i]
        if actual != actual:  # None
            intercepts.append(None)
            slopes.append(0)
            seasonals.append(0)
            deviations.append(0)
            if next_pred is not None:
                predictions[i] = next_pred
            next_pred = None
            continue
        if i == 0:
            last_intercept = actual
            last_slope = 0
            prediction = actual
        else:
            last_intercept = intercepts[-1]
            last_slope = slopes[-1]
            if last_intercept is None:
                last_intercept = actual
            prediction = next_pred
        j = i - L
        last_seasonal = seasonals[j] if j >= 0 else 0
        last_seasonal_dev = deviations[j] if j >= 0 else 0
        next_last_seasonal = seasonals[j + 1] if j + 1 >= 0 else 0
        intercept = a * (actual - last_seasonal) + (1 - a) * (last_intercept + last_slope)
        slope = b * (intercept - last_intercept) + (1 - b) * last_slope
        seasonal = g * (actual - intercept) + (1 - g) * last_seasonal
        next_pred = intercept + slope + next_last_seasonal
        deviation = g * abs(actual - (prediction if prediction is not None else 0)) + (1 - g) * last_seasonal_dev
        intercepts.append(intercept)
        slopes.append(slope)
        seasonals.append(seasonal)
        deviations.append(deviation)
        if prediction is not None:
            predictions[i] = prediction
    return predictions


@function(
    "holtWintersForecast",
    group="Calculate",
    params=[
        SERIES_LIST,
        Param("bootstrapInterval", T.interval, default="7d", suggestions=("7d", "30d")),
        Param("seasonality", T.interval, default="1d", suggestions=("1d", "7d")),
    ],
)
def holt_winters_forecast(ctx: Context, series_list: SeriesList, bootstrap_interval: str, seasonality: str) -> SeriesList:
    """Holt-Winters forecast of each series (triple exponential smoothing with
    a seasonal period, default 1 day), trained on `bootstrapInterval`
    (default 7 days) of data before `from`.

    ``holtWintersForecast(Server.instance01.threads.busy)``,
    ``holtWintersForecast(Server.instance01.threads.busy, '2d', '1h')``
    """
    preview = parse_time_offset(bootstrap_interval)
    season = parse_time_offset(seasonality)
    out = []
    for s in ctx.refetch(ctx.start - preview, ctx.end):
        season_length = season // s.step
        if season_length < 2 and not np.isnan(s.values).all():
            raise QueryError(
                f"holtWintersForecast(): seasonality {seasonality!r} must span at least 2 points of {s.name}"
            )
        predictions = holt_winters_predictions(s.values, season_length)
        window_points = preview // s.step
        name = f"holtWintersForecast({s.name})"
        tags = dict(s.tags)
        # graphite's analysis tags its input for both the forecast and the deviation
        tags["holtWintersForecast"] = "1"
        tags["holtWintersDeviation"] = "1"
        out.append(
            TimeSeries(
                name, s.start + preview, s.end, s.step, predictions[window_points:],
                tags=tags, x_files_factor=s.x_files_factor,
            )
        )
    return out


# -- linear regression ---------------------------------------------------------


def linear_regression_fit(values: np.ndarray, start: int, step: int) -> tuple[float, float] | None:
    """graphite's _linearRegressionAnalysis: (factor per second, offset at t=0) of
    the least squares line through the non-null points; None if undefined."""
    idx = np.nonzero(~np.isnan(values))[0]
    n = len(idx)
    v = values[idx]
    sum_i = int(idx.sum())
    sum_ii = int((idx.astype(np.int64) * idx).sum())
    sum_v = _seq_sum(v)
    sum_iv = _seq_sum(idx.astype(np.float64) * v)
    denominator = float(n * sum_ii - sum_i * sum_i)
    if denominator == 0:
        return None
    factor = (n * sum_iv - sum_i * sum_v) / denominator / step
    offset = (sum_ii * sum_v - sum_iv * sum_i) / denominator - factor * start
    return factor, offset


@function(
    "linearRegression",
    group="Calculate",
    params=[SERIES_LIST, Param("startSourceAt", T.date), Param("endSourceAt", T.date)],
)
def linear_regression(ctx: Context, series_list: SeriesList, start_source_at: Any, end_source_at: Any) -> SeriesList:
    """The least squares line of each series, fitted on the data between
    startSourceAt and endSourceAt (default: the request window) and drawn over
    the request window.

    ``linearRegression(Server.instance01.threads.busy, '-1d')``,
    ``linearRegression(Server.instance*.threads.busy, "00:00 20140101","11:59 20140630")``.
    Named ``linearRegression(<series>, <source start>, <source end>)``;
    series whose fit is undefined (fewer than 2 points) are left out.
    """
    src_start = parse_date(ctx, start_source_at) if start_source_at is not None else int(ctx.start)
    src_end = parse_date(ctx, end_source_at) if end_source_at is not None else int(ctx.end)
    sources = ctx.refetch(src_start, src_end)
    out = []
    for source, s in zip(sources, series_list):
        fit = linear_regression_fit(source.values, source.start, source.step)
        if fit is None:
            continue
        factor, offset = fit
        t = (s.start + np.arange(len(s), dtype=np.int64) * s.step).astype(np.float64)
        values = offset + t * factor
        name = f"linearRegression({s.name}, {src_start}, {src_end})"
        tags = dict(s.tags)
        tags["linearRegressions"] = f"{src_start}, {src_end}"
        out.append(TimeSeries(name, s.start, s.end, s.step, values, tags=tags, x_files_factor=s.x_files_factor))
    return out


# -- whole-series statistics ---------------------------------------------------


def _aggregate_exact(v: np.ndarray, func: str) -> float | int | None:
    """graphite's aggFuncs on one whole series, with its left-to-right sums
    (the value ends up in the series name, so the last bit matters)."""
    present = v[~np.isnan(v)]
    k = len(present)
    if func == "count":
        return k  # safeLen: 0, not None
    if func == "avg_zero":
        return _seq_sum(present) / len(v) if len(v) else None
    if func == "multiply":
        if k < len(v) or k == 0:
            return None
        with np.errstate(over="ignore"):
            return float(np.cumprod(present)[-1])
    if k == 0:
        return None
    if func == "sum":
        return _seq_sum(present)
    if func == "average":
        return _seq_sum(present) / k
    if func == "stddev":
        avg = _seq_sum(present) / k
        dev = present - avg
        return float(np.sqrt(_seq_sum(dev * dev) / k))
    if func == "diff":
        return _seq_sum(np.concatenate((present[:1], -present[1:])))
    if func == "median":
        ordered = np.sort(present)
        mid = k // 2
        return float(ordered[mid - 1] + ordered[mid]) / 2 if k % 2 == 0 else float(ordered[mid])
    if func == "range":
        return float(present.max()) - float(present.min())
    if func == "min":
        return float(present.min())
    if func == "max":
        return float(present.max())
    return float(present[-1])  # last


@function(
    "aggregateLine",
    group="Calculate",
    params=[SERIES_LIST, Param("func", T.aggFunc, default="average"), Param("keepStep", T.boolean, default=False)],
)
def aggregate_line(ctx: Context, series_list: SeriesList, func: str, keep_step: bool) -> SeriesList:
    """A horizontal line per series at the value of `func` (default average)
    over the whole series, named ``aggregateLine(<series>, <value>)``.

    ``aggregateLine(server01.connections.total, 'avg')``. With
    keepStep=true the line has the series' own start, end and step;
    otherwise it is a 3-point line across the request window like
    constantLine.
    """
    from cyclone.query.functions.special import constant_line_series

    try:
        canonical = resolve_agg_func(func)
    except QueryError:
        raise QueryError(f"Unsupported aggregation function: {func}") from None
    out = []
    for s in series_list:
        value = _aggregate_exact(s.values, canonical)
        name = f"aggregateLine({s.name}, {fmt_g(value)})" if value is not None else f"aggregateLine({s.name}, None)"
        if keep_step:
            out.append(s.copy(name=name, values=np.full(len(s), np.nan if value is None else float(value))))
        else:
            line = constant_line_series(ctx, value)  # type: ignore[arg-type]
            out.append(line.evolve(name=name, path_expression=name))
    return out


@function("nPercentile", group="Calculate", params=[SERIES_LIST, Param("n", T.float, required=True)])
def n_percentile(ctx: Context, series_list: SeriesList, n: float) -> SeriesList:
    """A horizontal line per series at its n-th percentile (nearest rank over
    the non-null values), named ``nPercentile(<series>, <n>)``. Series
    without values are left out.

    ``nPercentile(Server.instance01.threads.busy, 95)``
    """
    if n == 0:
        raise QueryError("nPercentile(): the requested percent is required to be greater than 0")
    out = []
    for s in series_list:
        if np.isnan(s.values).all():
            continue
        perc = float(percentile_rows(s.values[None, :], n)[0])
        if perc != perc:
            continue
        point_count = int((s.end - s.start) / s.step)
        name = f"nPercentile({s.name}, {fmt_g(n)})"
        out.append(s.copy(name=name, values=np.full(max(point_count, 0), perc)).with_tag("nPercentile", n))
    return out


@function(
    "stdev",
    group="Calculate",
    params=[SERIES_LIST, Param("points", T.integer, required=True), Param("windowTolerance", T.float, default=0.1)],
)
def stdev(ctx: Context, series_list: SeriesList, points: int, window_tolerance: float) -> SeriesList:
    """The (population) standard deviation of each series over a moving window
    of the last `points` points; None where the share of non-null points in
    the window is below windowTolerance (default 0.1).

    ``stdev(server*.instance*.threads.busy,30)``, ``stdev(server*.instance*.cpu.system,30,0.0)``
    """
    if points < 0:
        raise QueryError(f"stdev(): points must not be negative, got {points}")
    out = []
    for s in series_list:
        v = s.values
        n = len(v)
        values = np.full(n, np.nan)
        if n and points > 0:
            valid = ~np.isnan(v)
            x = np.where(valid, v, 0.0)
            dropped = np.zeros(n)
            if n > points:
                dropped[points:] = x[: n - points]
            # graphite's running sums: subtract the value leaving the window,
            # then add the new one -- interleaved so cumsum repeats that order
            inter = np.empty(2 * n)
            inter[0::2] = -dropped
            inter[1::2] = x
            total = np.cumsum(inter)[1::2]
            inter[0::2] = -(dropped * dropped)
            inter[1::2] = x * x
            total_sq = np.cumsum(inter)[1::2]
            cnt = np.cumsum(valid.astype(np.int64))
            count = cnt.copy()
            if n > points:
                count[points:] -= cnt[: n - points]
            ok = (count > 0) & (count / points >= window_tolerance)
            with np.errstate(invalid="ignore", divide="ignore"):
                dev = np.sqrt(count * total_sq - total * total) / count
            values = np.where(ok, dev, np.nan)
        name = f"stdev({s.name},{int(points)})"
        out.append(s.copy(name=name, values=values).with_tag("stdev", points))
    return out
