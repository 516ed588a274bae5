"""Graphite's "Alias" group: functions that rename series.

As in graphite-web, renaming keeps ``path_expression`` (so an aggregate of
aliased series is still named after the original paths).
"""

from __future__ import annotations

import re

from cyclone.query.errors import QueryError
from cyclone.query.evaluator import Context
from cyclone.query.parser import first_path_expression
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, TimeSeries

SERIES_LIST = Param("seriesList", T.seriesList, required=True)


@function("alias", group="Alias", params=[SERIES_LIST, Param("newName", T.string, required=True)])
def alias(ctx: Context, series_list: SeriesList, new_name: str) -> SeriesList:
    """Names every series `newName`.

    ``alias(Sales.widgets.largeBlue,"Large Blue Widgets")``
    """
    return [s.evolve(name=new_name) for s in series_list]


@function(
    "aliasSub",
    group="Alias",
    params=[SERIES_LIST, Param("search", T.string, required=True), Param("replace", T.string, required=True)],
)
def alias_sub(ctx: Context, series_list: SeriesList, search: str, replace: str) -> SeriesList:
    r"""Renames series with a regular expression search and replace (Python ``re.sub``).

    ``aliasSub(ip.*TCP*,"^.*TCP(\d+)","\1")``. Grafana 11.6+ wraps every
    target in ``aliasSub(<target>, "(^.*$)", "\1 <refId>")``.
    """
    try:
        pattern = re.compile(search)
        return [s.evolve(name=pattern.sub(replace, s.name)) for s in series_list]
    except re.error as e:
        raise QueryError(f"aliasSub(): invalid regular expression or replacement: {e}") from None


def _node_or_tag(s: TimeSeries, n: int | str, path: str | None) -> str:
    """graphite's getNodeOrTag: node n of the (first) path, else tag n, else ''."""
    if isinstance(n, int) and not isinstance(n, bool):
        parts = (path or s.name).split(";", 2)[0].split(".")
        try:
            return parts[n]
        except IndexError:
            pass
    return s.tags.get(str(n), "")


def alias_key(s: TimeSeries, nodes: list[int | str]) -> str:
    """graphite's aggKey: the name from nodes (ints) or tags (strings), dot-joined.
    For a name that ends with ')' the nodes come from its first path expression."""
    path = first_path_expression(s.name) if s.name.endswith(")") else None
    return ".".join(_node_or_tag(s, n, path) for n in nodes)


@function(
    "aliasByNode",
    group="Alias",
    params=[SERIES_LIST, Param("nodes", T.nodeOrTag, required=True, multiple=True)],
)
def alias_by_node(ctx: Context, series_list: SeriesList, nodes: list[int | str]) -> SeriesList:
    """Names each series by one or more of its nodes (0-based, negative from
    the end) or tags, joined with dots.

    ``aliasByNode(ganglia.*.cpu.load5,1)``; for ``f(a.b.c)`` the nodes of
    the first path inside are used.
    """
    return [s.evolve(name=alias_key(s, nodes)) for s in series_list]


def substr_name(name: str, start: int = 0, stop: int = 0) -> str:
    """graphite's substr() on one name: nodes [start:stop] of the innermost
    path, cut at the first ','."""
    left = name.rfind("(") + 1
    right = name.find(")")
    if right < 0:
        right = len(name) + 1
    clean = name[left:right]
    parts = clean.split(".")
    new = ".".join(parts[start:] if stop == 0 else parts[start:stop])
    return re.sub(",.*$", "", new)


@function("aliasByMetric", group="Alias", params=[SERIES_LIST])
def alias_by_metric(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Names each series by the last node of its metric path.

    ``aliasByMetric(carbon.agents.graphite.creates)`` -> ``creates``.
    """
    return [s.evolve(name=substr_name(s.name, -1, 0)) for s in series_list]
