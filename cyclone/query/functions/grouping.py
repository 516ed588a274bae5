"""Graphite's grouping "Combine" functions: groupByNode, groupByNodes and
the *SeriesWithWildcards shortcuts.

Series are grouped by a key computed from their names (in order of first
appearance), each group is combined into one series -- with ``aggregate``
or, for a series-function callback such as ``"sumSeries"``, with that
function -- and the result is renamed to the key. As in graphite only the
name changes: the path expression and tags stay those of the combined
series (``sumSeries(...)``).
"""

from __future__ import annotations

from typing import Callable, Sequence

from cyclone.query.aggfuncs import valid_agg_func_names
from cyclone.query.errors import QueryError
from cyclone.query.evaluator import Context
from cyclone.query.parser import first_path_expression
from cyclone.query.registry import Param, ParamType as T, function, get_function
from cyclone.query.series import SeriesList, TimeSeries

SERIES_LIST = Param("seriesList", T.seriesList, required=True)

#: Registered shorthands graphite-web 1.1.10 does not know as series
#: functions: a callback spelled so is an aggregation name there.
_NOT_GRAPHITE_SERIES_FUNCS = frozenset({"range"})


def _aggregate(ctx: Context, group: SeriesList, func: str) -> TimeSeries:
    result = get_function("aggregate").impl(ctx, group, func, None)
    if not result:  # pragma: no cover - aggregate of a non-empty group always gives one series
        raise QueryError(f"aggregating with {func!r} gave no series")
    return result[0]


def _combine_with(ctx: Context, callback: str) -> Callable[[SeriesList], TimeSeries]:
    """graphite's ``SeriesFunctions[callback](ctx, group)[0]`` if callback is a
    series function, else ``aggregate(ctx, group, callback)[0]``."""
    try:
        fdef = get_function(callback)
    except QueryError:
        fdef = None
    if fdef is None or not fdef.aggregator or callback in _NOT_GRAPHITE_SERIES_FUNCS:
        return lambda group: _aggregate(ctx, group, callback)

    def call(group: SeriesList) -> TimeSeries:
        result = fdef.impl(ctx, *fdef.bind([group], {}))
        if not result:
            raise QueryError(f"{callback}() returned no series for a group")
        return result[0]

    return call


def _grouped(
    ctx: Context, series_list: SeriesList, key_of: Callable[[TimeSeries], str], combine: Callable[[SeriesList], TimeSeries]
) -> SeriesList:
    groups: dict[str, SeriesList] = {}
    for s in series_list:
        groups.setdefault(key_of(s), []).append(s)
    return [combine(group).evolve(name=key) for key, group in groups.items()]


def _node_or_tag(s: TimeSeries, n: int | str, path_expression: str | None) -> str:
    """graphite's ``getNodeOrTag``: node n of the name (before any ';tags'), or
    tag n when n is not an integer or the node does not exist ('' if no tag)."""
    if isinstance(n, int) and not isinstance(n, bool):
        nodes = (path_expression or s.name).split(";", 2)[0].split(".")
        if -len(nodes) <= n < len(nodes):
            return nodes[n]
    return s.tags.get(str(n), "")


def _agg_key(s: TimeSeries, nodes: Sequence[int | str]) -> str:
    path_expression = first_path_expression(s.name) if s.name.endswith(")") else None
    return ".".join(_node_or_tag(s, n, path_expression) for n in nodes)


@function(
    "groupByNodes",
    group="Combine",
    params=[
        SERIES_LIST,
        Param("callback", T.aggOrSeriesFunc, required=True),
        Param("nodes", T.nodeOrTag, multiple=True),
    ],
)
def group_by_nodes(ctx: Context, series_list: SeriesList, callback: str, nodes: list[int | str]) -> SeriesList:
    """Groups the series by the given nodes of their names (0-based; a string
    is a tag name) and combines each group with callback -- an aggregation
    (``"sum"``, ``"max"``, ...) or a combining series function
    (``"sumSeries"``) -- naming each result by its nodes joined with dots.

    ``groupByNodes(ganglia.server*.*.cpu.load*,"sum",1,4)`` gives
    server1.load5, server1.load10, ... For names that are function calls
    the nodes are those of the first path inside.
    """
    if not series_list:
        return []
    return _grouped(ctx, series_list, lambda s: _agg_key(s, nodes), _combine_with(ctx, callback))


@function(
    "groupByNode",
    group="Combine",
    params=[
        SERIES_LIST,
        Param("nodeNum", T.nodeOrTag, required=True),
        Param("callback", T.aggOrSeriesFunc, default="average"),
    ],
)
def group_by_node(ctx: Context, series_list: SeriesList, node_num: int | str, callback: str) -> SeriesList:
    """Groups the series by one node of their names (0-based; a string is a
    tag name) and combines each group with callback (default average),
    naming each result by the node.

    ``groupByNode(ganglia.by-function.*.*.cpu.load5,2,"sumSeries")``. Same
    as ``groupByNodes(seriesList, callback, nodeNum)``.
    """
    return group_by_nodes(ctx, series_list, callback, [node_num])


def _with_wildcards(ctx: Context, series_list: SeriesList, func: str, positions: Sequence[int]) -> SeriesList:
    """graphite's ``aggregateWithWildcards``: group by the name without the
    nodes at `positions`, aggregate each group with func."""
    if not series_list:
        return []
    skip = set(positions)

    def key_of(s: TimeSeries) -> str:
        return ".".join(node for i, node in enumerate(s.name.split(".")) if i not in skip)

    return _grouped(ctx, series_list, key_of, lambda group: _aggregate(ctx, group, func))


_POSITION_PARAMS = [SERIES_LIST, Param("position", T.node, multiple=True)]


@function("sumSeriesWithWildcards", group="Combine", params=_POSITION_PARAMS, aggregator=True)
def sum_series_with_wildcards(ctx: Context, series_list: SeriesList, position: list[int]) -> SeriesList:
    """Groups the series by name with the nodes at the given positions left
    out (0-based) and combines each group with sumSeries, naming each result
    by the remaining nodes.

    ``sumSeriesWithWildcards(host.cpu-[0-7].cpu-{user,system}.value, 1)``. Same as
    ``aggregateWithWildcards(seriesList, 'sum', *position)``.
    """
    return _with_wildcards(ctx, series_list, "sum", position)


@function("averageSeriesWithWildcards", group="Combine", params=_POSITION_PARAMS, aggregator=True)
def average_series_with_wildcards(ctx: Context, series_list: SeriesList, position: list[int]) -> SeriesList:
    """Groups the series by name with the nodes at the given positions left
    out (0-based) and combines each group with averageSeries, naming each result
    by the remaining nodes.

    ``averageSeriesWithWildcards(host.cpu-[0-7].cpu-{user,system}.value, 1)``. Same as
    ``aggregateWithWildcards(seriesList, 'average', *position)``.
    """
    return _with_wildcards(ctx, series_list, "average", position)


@function("multiplySeriesWithWildcards", group="Combine", params=_POSITION_PARAMS, aggregator=True)
def multiply_series_with_wildcards(ctx: Context, series_list: SeriesList, position: list[int]) -> SeriesList:
    """Groups the series by name with the nodes at the given positions left
    out (0-based) and combines each group with multiplySeries, naming each result
    by the remaining nodes.

    ``multiplySeriesWithWildcards(web.host-[0-7].{avg-response,total-request}.value, 2)``. Same as
    ``aggregateWithWildcards(seriesList, 'multiply', *position)``.
    """
    return _with_wildcards(ctx, series_list, "multiply", position)
