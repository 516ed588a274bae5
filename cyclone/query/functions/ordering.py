"""Graphite's "Sorting" group: sortByName, and the functions that order
series by an aggregate of their values: sortBy, sortByTotal, sortByMaxima,
sortByMinima. Like graphite's ``keyFunc`` sort: a
series whose aggregate is None sorts as -infinity, and the sort is stable
(ties keep their input order, also in reverse).
"""

from __future__ import annotations

import re

import numpy as np

from cyclone.query.evaluator import Context
from cyclone.query.functions.filtering import rank_order, series_agg
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList

SERIES_LIST = Param("seriesList", T.seriesList, required=True)


def _sorted(series_list: SeriesList, func: str, reverse: bool) -> SeriesList:
    keys = series_agg(series_list, func)
    return [series_list[i] for i in rank_order(keys, reverse)]


@function(
    "sortBy",
    group="Sorting",
    params=[SERIES_LIST, Param("func", T.aggFunc, default="average"), Param("reverse", T.boolean, default=False)],
)
def sort_by(ctx: Context, series_list: SeriesList, func: str, reverse: bool) -> SeriesList:
    """Sorts the series by an aggregate of their values (func over the whole
    series, default average), ascending unless reverse is true.

    ``sortBy(server*.instance*.threads.busy,'max')``
    """
    return _sorted(series_list, func, bool(reverse))


@function("sortByTotal", group="Sorting", params=[SERIES_LIST])
def sort_by_total(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Sorts the series in descending order of the sum of their values.
    ``sortByTotal(server*.requests)``"""
    return _sorted(series_list, "sum", True)


@function("sortByMaxima", group="Sorting", params=[SERIES_LIST])
def sort_by_maxima(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Sorts the series in descending order of their maximum value; useful with
    areaMode=all to keep the lower lines visible.
    ``sortByMaxima(server*.instance*.memory.free)``"""
    return _sorted(series_list, "max", True)


@function("sortByMinima", group="Sorting", params=[SERIES_LIST])
def sort_by_minima(ctx: Context, series_list: SeriesList) -> SeriesList:
    """Sorts the series in ascending order of their minimum value, keeping only
    the series whose maximum is above 0 (series without values are dropped).
    ``sortByMinima(server*.instance*.memory.free)``"""
    maxima = series_agg(series_list, "max")
    with np.errstate(invalid="ignore"):
        kept = [s for s, keep in zip(series_list, (maxima > 0).tolist()) if keep]
    return _sorted(kept, "min", False)


_DIGITS = re.compile(r"(\d+)")


def _natural_key(name: str) -> str:
    return _DIGITS.sub(lambda m: "{0:010}".format(int(m.group(0))), name)


@function(
    "sortByName",
    group="Sorting",
    params=[
        Param("seriesList", T.seriesList, required=True),
        Param("natural", T.boolean, default=False),
        Param("reverse", T.boolean, default=False),
    ],
)
def sort_by_name(ctx: Context, series_list: SeriesList, natural: bool, reverse: bool) -> SeriesList:
    """Sorts the series by name, alphabetically or (natural=true) with numbers in
    numeric order: server1, server2, server11 instead of server1, server11, server2.

    ``sortByName(server*.load, true)``
    """
    if natural:
        return sorted(series_list, key=lambda s: _natural_key(s.name), reverse=reverse)
    return sorted(series_list, key=lambda s: s.name, reverse=reverse)
