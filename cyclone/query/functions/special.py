"""Graphite's "Special" group: constantLine and consolidateBy."""

from __future__ import annotations

from cyclone.query.evaluator import Context
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, TimeSeries


def constant_line_series(ctx: Context, value: float | int) -> TimeSeries:
    """graphite's constantLine: 3 points (start, middle, end) over the request window."""
    start, end = int(ctx.start), int(ctx.end)
    step = int((end - start) / 2.0)
    s = TimeSeries(str(value), start, end, step, [value, value, value], x_files_factor=ctx.x_files_factor)
    s.path_expression = f"constantLine({value})"
    return s


@function("constantLine", group="Special", params=[Param("value", T.float, required=True)])
def constant_line(ctx: Context, value: float) -> SeriesList:
    """A horizontal line at the given value across the whole graph.

    ``constantLine(123.456)``. The series is named after the value
    (``123.456``) and has three points: at from, at the middle, at until.
    Grafana's datasource health check renders ``constantLine(100)``.
    """
    return [constant_line_series(ctx, value)]


@function(
    "consolidateBy",
    group="Special",
    params=[
        Param("seriesList", T.seriesList, required=True),
        Param(
            "consolidationFunc",
            T.string,
            required=True,
            options=("sum", "average", "avg", "avg_zero", "min", "max", "first", "last"),
        ),
    ],
)
def consolidate_by(ctx: Context, series_list: SeriesList, func: str) -> SeriesList:
    """Sets how the series is consolidated when it has more points than fit
    (maxDataPoints, or series of different steps combined): 'sum',
    'average'/'avg', 'avg_zero', 'min', 'max', 'first' or 'last' (default average).

    ``consolidateBy(Sales.widgets.largeBlue, 'sum')``
    """
    out = []
    for s in series_list:
        name = f'consolidateBy({s.name},"{func}")'
        out.append(s.evolve(name=name, path_expression=name, consolidation_func=func).with_tag("consolidateBy", func))
    return out
