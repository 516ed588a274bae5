"""Graphite's "Filter Series" group: functions that drop whole series."""

from __future__ import annotations

import numpy as np

from cyclone.query.evaluator import Context
from cyclone.query.registry import Param, ParamType as T, function
from cyclone.query.series import SeriesList, xff_ok

SERIES_LIST = Param("seriesList", T.seriesList, required=True)


@function("removeEmptySeries", group="Filter Series", params=[SERIES_LIST, Param("xFilesFactor", T.float)])
def remove_empty_series(ctx: Context, series_list: SeriesList, x_files_factor: float | None) -> SeriesList:
    """Drops the series without any value (with xFilesFactor: whose share of
    non-null values is below it; default 0).

    ``removeEmptySeries(server*.instance*.threads.busy)``
    """
    xff = x_files_factor if x_files_factor is not None else 0.0
    return [
        s for s in series_list
        if len(s) and bool(xff_ok(np.count_nonzero(~np.isnan(s.values)), len(s), xff))
    ]


@function("limit", group="Filter Series", params=[SERIES_LIST, Param("n", T.integer, required=True)])
def limit(ctx: Context, series_list: SeriesList, n: int) -> SeriesList:
    """Only the first n series. ``limit(server*.instance*.memory.free,5)``"""
    return list(series_list[0:n])
