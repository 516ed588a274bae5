"""Graphite's "Sorting" group."""

from __future__ import annotations

import re

from cyclone.query.evaluator import Context
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList

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
