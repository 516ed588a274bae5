"""Graphite's "Graph" group: display hints for graphite's PNG renderer.

They change no data: like graphite-web they set ``options`` / ``color`` on
the series (which the JSON renderer ignores), and some rename the series
exactly as graphite does (``secondYAxis(x)``, ``dashed(x, 5)``,
``stacked(x)``). ``stacked`` also turns values into running totals across
the stacked series, as graphite does.
"""

from __future__ import annotations

import numpy as np

from cyclone.query.evaluator import Context
from cyclone.query.functions._util import fmt_g
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList

SERIES_LIST = Param("seriesList", T.seriesList, required=True)


def _with_option(series_list: SeriesList, key: str, value: object) -> SeriesList:
    out = []
    for s in series_list:
        t = s.evolve()
        t.options[key] = value
        out.append(t)
    return out


@function("color", group="Graph", params=[SERIES_LIST, Param("theColor", T.string, required=True)])
def color(ctx: Context, series_list: SeriesList, the_color: str) -> SeriesList:
    """Assigns a color to the series (a name such as 'green' or hex such as 'ff0000' / '6464ffaa').

    ``color(collectd.hostname.cpu.0.user, 'green')``
    """
    return [s.evolve(color=the_color) for s in series_list]


@function("alpha", group="Graph", params=[SERIES_LIST, Param("alpha", T.float, required=True)])
def alpha(ctx: Context, series_list: SeriesList, value: float) -> SeriesList:
    """Assigns an alpha transparency (0 to 1) to the series. ``alpha(a.b.c, 0.5)``"""
    return _with_option(series_list, "alpha", value)


@function("lineWidth", group="Graph", params=[SERIES_LIST, Param("width", T.float, required=True)])
def line_width(ctx: Context, series_list: SeriesList, width: float) -> SeriesList:
    """Draws the series with the given line width. ``lineWidth(server01.instance01.memory.free,5)``"""
    return _with_option(series_list, "lineWidth", width)


@function("dashed", group="Graph", params=[SERIES_LIST, Param("dashLength", T.integer, default=5)])
def dashed(ctx: Context, series_list: SeriesList, dash_length: int) -> SeriesList:
    """Draws the series dashed, with segments of the given length (default 5).

    ``dashed(server01.instance01.memory.free,3)``. The length is an
    integer, as graphite-web declares it.
    """
    out = []
    for s in series_list:
        t = s.evolve(name=f"dashed({s.name}, {fmt_g(dash_length)})").with_tag("dashed", dash_length)
        t.options["dashed"] = dash_length
        out.append(t)
    return out


@function("secondYAxis", group="Graph", params=[SERIES_LIST])
def second_y_axis(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Draws the series on the second Y axis. ``secondYAxis(a.b.c)``"""
    out = []
    for s in series_list:
        t = s.evolve(name=f"secondYAxis({s.name})").with_tag("secondYAxis", 1)
        t.options["secondYAxis"] = True
        out.append(t)
    return out


@function("stacked", group="Graph", params=[SERIES_LIST, Param("stack", T.string)])
def stacked(ctx: Context, series_list: SeriesList, stack: str | None) -> SeriesList:
    """Stacks the series on each other: each value becomes the running total of
    the series so far (None stays None). An optional stack name keeps
    separate stacks, e.g. for input and output; the totals are shared by all
    targets of the request. ``stacked(company.server.application01.ifconfig.TXPackets, 'tx')``
    """
    stack_name = stack if stack is not None else "__DEFAULT__"
    stacks = ctx.state.setdefault("totalStack", {})
    total = stacks.get(stack_name, np.zeros(0))
    out = []
    for s in series_list:
        n = len(s)
        if len(total) < n:
            total = np.concatenate((total, np.zeros(n - len(total))))
        v = s.values
        present = ~np.isnan(v)
        total = total.copy()
        total[:n][present] += v[present]
        values = np.where(present, total[:n], np.nan)
        if stack_name == "__DEFAULT__":
            t = s.copy(name=f"stacked({s.name})", values=values).with_tag("stacked", stack_name)
        else:
            t = s.copy(name=s.name, values=values)
        t.options["stacked"] = True
        out.append(t)
    stacks[stack_name] = total
    return out
