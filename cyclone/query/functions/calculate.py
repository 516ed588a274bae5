"""Graphite's "Calculate" group: moving window functions.

The moving functions re-read their series argument over a window that
starts earlier by the window length (graphite-web's "preview" fetch), so
the first points of the result already have a full window. Output point k
covers the ``windowSize`` points ending at it; a point is None unless the
window holds a non-null value and non-null / windowPoints reaches the
xFilesFactor (argument, else the series').
"""

from __future__ import annotations

import numpy as np
from cyclone.query.aggfuncs import reduce_windows, resolve_agg_func
from cyclone.query.evaluator import Context
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, TimeSeries, xff_ok
from cyclone.query.timeparse import parse_time_offset

INT_OR_INTERVAL_SUGGESTIONS = (5, 7, 10, "1min", "5min", "10min", "30min", "1hour")
SERIES_LIST = Param("seriesList", T.seriesList, required=True)
WINDOW_SIZE = Param("windowSize", T.intOrInterval, required=True, suggestions=INT_OR_INTERVAL_SUGGESTIONS)
XFF = Param("xFilesFactor", T.float)


def _window_values(v: np.ndarray, points: int, func: str, xff: float | None) -> np.ndarray:
    """Values for windows of `points` ending at index points .. n-1 (graphite's range)."""
    n = len(v)
    if points <= 0:
        return np.full(n, np.nan)
    count = n - points
    if count <= 0:
        return np.full(0, np.nan)
    valid = np.concatenate(([0], np.cumsum(~np.isnan(v))))
    ends = np.arange(points + 1, n + 1)
    non_null = valid[ends] - valid[ends - points]
    ok = xff_ok(non_null, points, xff)
    if not ok.any():
        return np.full(count, np.nan)
    out = reduce_windows(v[1:], points, func)
    out[~ok] = np.nan
    return out


def moving_window(
    ctx: Context, series_list: SeriesList, window_size: int | float | str, func: str, x_files_factor: float | None
) -> SeriesList:
    """graphite's movingWindow (shared by movingAverage, movingSum, ...)."""
    if not series_list:
        return []
    if isinstance(window_size, str):
        preview = abs(parse_time_offset(window_size))
    else:
        preview = max(s.step for s in series_list) * int(window_size)
    resolve_agg_func(func)
    tag_name = "moving" + func.capitalize()
    out = []
    for s in ctx.refetch(ctx.start - preview, ctx.end):
        if isinstance(window_size, str):
            name = f'{tag_name}({s.name},"{window_size}")'
            points = preview // s.step
        else:
            name = f"{tag_name}({s.name},{window_size})"
            points = int(window_size)
        xff = x_files_factor if x_files_factor is not None else s.x_files_factor
        values = _window_values(s.values, points, func, xff)
        t = s.copy(name=name, start=s.start + preview, values=values)
        out.append(t.with_tag(tag_name, window_size))
    return out


@function(
    "movingWindow",
    group="Calculate",
    params=[SERIES_LIST, WINDOW_SIZE, Param("func", T.aggFunc, default="average"), XFF],
)
def moving_window_fn(
    ctx: Context, series_list: SeriesList, window_size: int | str, func: str, x_files_factor: float | None
) -> SeriesList:
    """Applies an aggregation function over a moving window of the last N points
    or of a time interval.

    ``movingWindow(Server.instance01.threads.busy,10)``,
    ``movingWindow(Server.instance*.threads.idle,'5min','median',0.5)``.
    The window is a number of points or a quoted interval such as '5min';
    func is any aggregation function (default average); xFilesFactor is the
    share of non-null values a window needs (default: the series', 0).
    The result is named ``moving<Func>(<series>,<window>)``.
    """
    return moving_window(ctx, series_list, window_size, func, x_files_factor)


def _moving(func: str, title: str):
    doc = (
        f"Graphs the moving {title} of each series over a fixed number of past points "
        f"or a time interval.\n\n"
        f"``moving{func.capitalize()}(Server.instance01.threads.busy,10)``, "
        f"``moving{func.capitalize()}(Server.instance*.threads.idle,'5min')``. "
        f"An optional xFilesFactor is the share of non-null values a window needs. "
        f"Same as ``movingWindow(seriesList, windowSize, '{func}')``."
    )

    def impl(ctx: Context, series_list: SeriesList, window_size: int | str, x_files_factor: float | None) -> SeriesList:
        return moving_window(ctx, series_list, window_size, func, x_files_factor)

    impl.__doc__ = doc
    impl.__name__ = impl.__qualname__ = f"moving_{func}"
    return function(f"moving{func.capitalize()}", group="Calculate", params=[SERIES_LIST, WINDOW_SIZE, XFF])(impl)


moving_average = _moving("average", "average")
moving_sum = _moving("sum", "sum")
moving_min = _moving("min", "minimum")
moving_max = _moving("max", "maximum")
moving_median = _moving("median", "median")
