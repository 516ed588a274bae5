"""`TimeSeries`: the value every Graphite function takes and returns.

It mirrors graphite-web 1.1's ``TimeSeries`` attribute for attribute, so
functions and formatters can be written against graphite's semantics:

=====================  =====================================================
graphite-web           here
=====================  =====================================================
name                   name
start, end, step       start, end, step (ints, seconds)
list of values         values: float64 ndarray, NaN = None (a gap)
pathExpression         path_expression
tags (str values)      tags: dict[str, str], at least {'name': ...}
consolidationFunc      consolidation_func ('average', 'sum', 'min', ...)
valuesPerPoint         values_per_point
xFilesFactor           x_files_factor
options, color         options, color (display hints: lineWidth, alpha, ...)
=====================  =====================================================

Values are at ``start + i * step``. Series are treated as immutable by the
function library: a function builds new series with `TimeSeries.copy`
instead of editing its inputs, and never writes into an input's
``values`` array.

``values_per_point`` only matters at the very end: the render layer calls
`apply_max_data_points` on the whole result (graphite's maxDataPoints
handling, which uses the time range of all series of the response) or
`TimeSeries.consolidate` per series, then `TimeSeries.datapoints` /
`TimeSeries.consolidated_values`.

Module helpers shared by the functions: `consolidate_values` (graphite's
consolidating iterator, vectorised), `normalize` (graphite's ``normalize``:
lcm step, consolidation, common start/end), `stack_rows` (series values as
rows of a NaN-padded matrix), and `parse_tags`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "TimeSeries",
    "SeriesList",
    "CONSOLIDATION_FUNCS",
    "consolidate_values",
    "normalize",
    "apply_max_data_points",
    "stack_rows",
    "parse_tags",
    "xff_ok",
]

#: Consolidation functions a series may carry (graphite's list plus the alias).
CONSOLIDATION_FUNCS: tuple[str, ...] = ("sum", "average", "avg", "avg_zero", "min", "max", "first", "last")

_FUNCTION_NAME_RE = re.compile(r"^[a-z]+[(].+[)]$", re.IGNORECASE)


def parse_tags(name: str) -> dict[str, str]:
    """Tags of a series name, as graphite's tag database parses them.

    ``a.b.c`` -> ``{'name': 'a.b.c'}``; ``a.b;dc=x;host=y`` -> ``{'name':
    'a.b', 'dc': 'x', 'host': 'y'}``; anything that looks like a function
    call, or does not parse, -> ``{'name': name}``.
    """
    if _FUNCTION_NAME_RE.match(name) or ";" not in name:
        return {"name": name.lstrip("~") or name}
    metric, *segments = name.split(";")
    if not metric:
        return {"name": name}
    tags: dict[str, str] = {}
    for segment in segments:
        tag, sep, value = segment.partition("=")
        if not sep or not tag or not value or any(c in tag for c in ";!^=") or value[0] == "~":
            return {"name": name}
        tags[tag] = value
    sanitized = metric.lstrip("~")
    if not sanitized:
        return {"name": name}
    tags["name"] = sanitized
    return tags


def xff_ok(non_null: np.ndarray, total: np.ndarray | float, x_files_factor: float | None) -> np.ndarray:
    """graphite's ``xff()``: non_null > 0 and non_null / total >= xFilesFactor."""
    xff = 0.0 if x_files_factor is None else float(x_files_factor)
    non_null = np.asarray(non_null, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = non_null / total
    return (non_null > 0) & (ratio >= xff)


def consolidate_values(
    values: np.ndarray, values_per_point: int, func: str = "average", x_files_factor: float | None = 0.0
) -> np.ndarray:
    """graphite's consolidating iterator over a series, vectorised.

    Values are taken in chunks of `values_per_point` from the first one (the
    last chunk may be short). A chunk yields NaN unless it has a non-null
    value and non_null / values_per_point >= x_files_factor (the short last
    chunk is also divided by the full values_per_point, as graphite does).
    """
    vpp = int(values_per_point)
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if vpp <= 1 or n == 0:
        return values
    if func == "avg":
        func = "average"
    if func not in CONSOLIDATION_FUNCS:
        from cyclone.query.errors import QueryError

        raise QueryError(f"invalid consolidation function {func!r}")
    chunks = -(-n // vpp)
    padded = np.full(chunks * vpp, np.nan)
    padded[:n] = values
    m = padded.reshape(chunks, vpp)
    valid = ~np.isnan(m)
    non_null = valid.sum(axis=1)
    ok = xff_ok(non_null, vpp, x_files_factor)
    out = np.full(chunks, np.nan)
    rows = np.nonzero(ok)[0]
    if len(rows) == 0:
        return out
    m = m[rows]
    valid = valid[rows]
    with np.errstate(invalid="ignore"):
        if func == "sum":
            res = np.nansum(m, axis=1)
        elif func == "average":
            res = np.nansum(m, axis=1) / valid.sum(axis=1)
        elif func == "avg_zero":
            # None counts as 0; the short last chunk divides by its own length.
            lengths = np.full(chunks, vpp)
            lengths[-1] = n - (chunks - 1) * vpp
            res = np.nansum(m, axis=1) / lengths[rows]
        elif func == "max":
            res = np.fmax.reduce(m, axis=1)
        elif func == "min":
            res = np.fmin.reduce(m, axis=1)
        elif func == "first":
            res = m[np.arange(len(rows)), np.argmax(valid, axis=1)]
        else:  # last
            last = vpp - 1 - np.argmax(valid[:, ::-1], axis=1)
            res = m[np.arange(len(rows)), last]
    out[rows] = res
    return out


class TimeSeries:
    """One series: dense float64 values at start + i * step (NaN = gap)."""

    __slots__ = (
        "name",
        "start",
        "end",
        "step",
        "values",
        "path_expression",
        "tags",
        "consolidation_func",
        "values_per_point",
        "x_files_factor",
        "options",
        "color",
    )

    def __init__(
        self,
        name: str,
        start: int,
        end: int,
        step: int,
        values: Any,
        *,
        path_expression: str | None = None,
        tags: dict[str, Any] | None = None,
        consolidation_func: str = "average",
        values_per_point: int = 1,
        x_files_factor: float | None = None,
    ) -> None:
        self.name = name
        self.start = start
        self.end = end
        self.step = step
        if isinstance(values, np.ndarray) and values.dtype == np.float64:
            self.values = values
        else:
            self.values = np.array(
                [np.nan if v is None else v for v in values] if not isinstance(values, np.ndarray) else values,
                dtype=np.float64,
            )
        self.path_expression = path_expression if path_expression is not None else name
        self.tags: dict[str, str] = (
            {str(k): str(v) for k, v in tags.items()} if tags else parse_tags(name)
        )
        self.consolidation_func = consolidation_func
        self.values_per_point = int(values_per_point)
        self.x_files_factor = 0.0 if x_files_factor is None else x_files_factor
        self.options: dict[str, Any] = {}
        self.color: str | None = None

    # -- graphite-style helpers ------------------------------------------
    def copy(
        self,
        name: str | None = None,
        start: int | None = None,
        end: int | None = None,
        step: int | None = None,
        values: Any = None,
        *,
        path_expression: str | None = None,
        tags: dict[str, Any] | None = None,
        consolidation_func: str | None = None,
        x_files_factor: float | None = None,
    ) -> "TimeSeries":
        """A new series with some attributes replaced, like graphite's ``copy``.

        As in graphite: ``path_expression`` becomes the new series' *name*
        unless given explicitly, ``values_per_point`` resets to 1, and display
        ``options`` / ``color`` are not carried over. Tags are copied (a new
        dict), so the caller may add tags to the result freely.
        """
        new_name = name if name is not None else self.name
        return TimeSeries(
            new_name,
            start if start is not None else self.start,
            end if end is not None else self.end,
            step if step is not None else self.step,
            values if values is not None else self.values,
            path_expression=path_expression if path_expression is not None else new_name,
            tags=dict(tags if tags is not None else self.tags),
            consolidation_func=consolidation_func if consolidation_func is not None else self.consolidation_func,
            x_files_factor=x_files_factor if x_files_factor is not None else self.x_files_factor,
        )

    def evolve(self, **changes: Any) -> "TimeSeries":
        """An exact duplicate (options and color included) with attributes changed.

        Use it for graphite functions that edit a series in place (alias,
        scale, consolidateBy, ...): unlike `copy`, nothing is reset.
        """
        new = TimeSeries.__new__(TimeSeries)
        for slot in TimeSeries.__slots__:
            setattr(new, slot, getattr(self, slot))
        new.tags = dict(self.tags)
        new.options = dict(self.options)
        for key, value in changes.items():
            if key not in TimeSeries.__slots__:
                raise AttributeError(key)
            setattr(new, key, value)
        return new

    def with_tag(self, key: str, value: Any) -> "TimeSeries":
        """Set tag `key` to str(value) in place and return self (for chaining on a new series)."""
        self.tags[key] = str(value)
        return self

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __repr__(self) -> str:
        return (
            f"TimeSeries(name={self.name!r}, start={self.start}, end={self.end}, step={self.step}, "
            f"len={len(self)}, valuesPerPoint={self.values_per_point}, "
            f"consolidationFunc={self.consolidation_func!r}, xFilesFactor={self.x_files_factor})"
        )

    # -- maxDataPoints consolidation (render time) -------------------------
    def consolidate(self, max_data_points: int, time_range: int | None = None) -> None:
        """Apply graphite-web's maxDataPoints handling to this series, in place.

        `time_range` is what graphite counts points with: number =
        time_range / step, where graphite's time range is the latest end
        minus the earliest start of all series in the response (see
        `apply_max_data_points`). When it is None the series length is used. With more points than
        `max_data_points`: values_per_point = ceil(number / max_data_points),
        ``start`` is nudged so consolidation bands align between calls, and
        (like graphite's json renderer, quirk included) one fewer value than
        the nudge spans is dropped from the front. max_data_points == 1
        consolidates the whole series into one point.
        """
        if max_data_points is None or max_data_points <= 0 or self.step <= 0:
            return
        if max_data_points == 1:
            self.values_per_point = max(1, len(self))
            return
        number = (time_range / self.step) if time_range is not None else float(len(self))
        if max_data_points >= number:
            return
        vpp = math.ceil(number / max_data_points)
        seconds_per_point = int(vpp * self.step)
        nudge = seconds_per_point + (self.start % self.step) - (self.start % seconds_per_point)
        self.start = self.start + nudge
        to_lose = int(nudge / self.step)
        if to_lose > 1:
            self.values = self.values[to_lose - 1 :]
        self.values_per_point = int(vpp)

    def consolidated_values(self) -> np.ndarray:
        """Values after applying values_per_point with consolidation_func."""
        return consolidate_values(self.values, self.values_per_point, self.consolidation_func, self.x_files_factor)

    def datapoints(self) -> list[tuple[float | None, int]]:
        """``[(value or None, timestamp), ...]`` exactly as graphite's ``datapoints()``."""
        vals = self.consolidated_values()
        step = int(self.step * self.values_per_point)
        timestamps = range(int(self.start), int(self.end) + 1, step) if step > 0 else range(0)
        return [(None if v != v else v, t) for v, t in zip(vals.tolist(), timestamps)]

    def values_or_none(self) -> list[float | None]:
        return [None if v != v else v for v in self.values.tolist()]


SeriesList = list[TimeSeries]


def apply_max_data_points(series_list: Sequence[TimeSeries], max_data_points: int | None) -> None:
    """graphite-web's JSON renderer maxDataPoints handling, in place.

    The time range is that of the whole response (latest end minus earliest
    start over all series, as graphite computes it); each series then gets
    `TimeSeries.consolidate`. Nothing happens when every series is empty.
    """
    if max_data_points is None or not any(len(s) for s in series_list):
        return
    time_range = max(s.end for s in series_list) - min(s.start for s in series_list)
    for s in series_list:
        s.consolidate(max_data_points, time_range)


def stack_rows(arrays: Sequence[np.ndarray], length: int | None = None) -> np.ndarray:
    """Arrays as rows of one matrix, right-padded with NaN (like zip_longest)."""
    if length is None:
        length = max((len(a) for a in arrays), default=0)
    m = np.full((len(arrays), length), np.nan)
    for i, a in enumerate(arrays):
        k = min(len(a), length)
        m[i, :k] = a[:k]
    return m


def normalize(series_lists: Iterable[Sequence[TimeSeries]]) -> tuple[list[TimeSeries], list[np.ndarray], int, int, int] | None:
    """graphite's ``normalize``: put series of different steps on one step.

    Returns (series, consolidated value arrays, start, end, step), or None
    when there is no series at all. The step is the lcm of all steps; each
    series is consolidated by step // its step with its own consolidation
    function and xFilesFactor (chunks start at each series' first value, as
    in graphite); start is the earliest start; end is the latest end minus
    (end - start) % step.
    """
    flat = [s for lst in series_lists for s in lst]
    if not flat:
        return None
    step = 1
    for s in flat:
        step = step * s.step // math.gcd(step, s.step) if step != s.step else step
    arrays = [
        consolidate_values(s.values, step // s.step, s.consolidation_func, s.x_files_factor) for s in flat
    ]
    start = min(s.start for s in flat)
    end = max(s.end for s in flat)
    end -= (end - start) % step
    return flat, arrays, start, end, step
