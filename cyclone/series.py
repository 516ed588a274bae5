"""Data types shared by every layer: points, series metadata, per-key results.

Inside the engine, points are numpy arrays (int64 timestamps, float64
values). Protocol layers convert to and from their wire forms; stores pass
these objects around unchanged. Every per-key result carries its own
`Error` (or None) so one bad key never fails a batch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Container, Sequence

import numpy as np

# Aggregation method ids: identical to whisper's on-disk ids.
AGGREGATION_METHODS: dict[str, int] = {
    "average": 1,
    "sum": 2,
    "last": 3,
    "max": 4,
    "min": 5,
    "avg_zero": 6,
    "absmax": 7,
    "absmin": 8,
}
AGGREGATION_NAMES: dict[int, str] = {v: k for k, v in AGGREGATION_METHODS.items()}


@dataclass
class Error:
    """A per-key (or per-pattern) error. `recoverable` means a retry may work."""

    description: str
    recoverable: bool = False
    ignored: bool = False

    def __str__(self) -> str:
        return self.description


class CycloneError(Exception):
    """An error that maps to one `Error` result for one key or request."""

    def __init__(self, description: str, recoverable: bool = False):
        super().__init__(description)
        self.description = description
        self.recoverable = recoverable

    def to_error(self) -> Error:
        return Error(self.description, self.recoverable)


@dataclass(frozen=True)
class ArchiveArg:
    """One archive: seconds per point (`precision`) and number of `points`."""

    precision: int
    points: int


@dataclass
class SeriesMetadata:
    archive_args: list[ArchiveArg]
    x_files_factor: float = 0.5
    agg_method: int = 1

    def archive_tuples(self) -> list[tuple[int, int]]:
        return [(a.precision, a.points) for a in self.archive_args]


@dataclass(slots=True)
class Points:
    """A batch of points for one key. NaN values mean "delete this point"."""

    timestamps: np.ndarray  # int64
    values: np.ndarray  # float64

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.timestamps.shape != self.values.shape:
            raise ValueError("timestamps and values differ in length")

    @classmethod
    def from_pairs(cls, pairs) -> "Points":
        pairs = list(pairs)
        if not pairs:
            return cls.empty()
        ts, vals = zip(*pairs)
        return cls(np.array(ts, dtype=np.int64), np.array(vals, dtype=np.float64))

    @classmethod
    def wrap(cls, ts: np.ndarray, vals: np.ndarray) -> "Points":
        """Points over arrays already int64/float64 of equal length: no copy, no checks."""
        p = cls.__new__(cls)
        p.timestamps = ts
        p.values = vals
        return p

    @classmethod
    def empty(cls) -> "Points":
        return cls(np.empty(0, np.int64), np.empty(0, np.float64))

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def pairs(self) -> list[tuple[int, float]]:
        return list(zip(self.timestamps.tolist(), self.values.tolist()))


def group_columns(keys: Sequence[str], ts: np.ndarray, vals: np.ndarray) -> dict[str, Points]:
    """Parallel columns (one row per point) as {key: Points}, input order kept
    within each key; one stable argsort instead of a Python loop per point.
    `ts`/`vals` must be int64/float64 already (the Points are views)."""
    n = len(keys)
    if n == 0:
        return {}
    uniq = list(dict.fromkeys(keys))
    if len(uniq) == n:  # every key once (a big fan-out): no sort needed
        return dict(zip(keys, map(Points.wrap, ts.reshape(-1, 1), vals.reshape(-1, 1))))
    id_of = dict(zip(uniq, range(len(uniq))))
    ids = np.fromiter(map(id_of.__getitem__, keys), dtype=np.int64, count=n)
    order, starts, ends = id_runs(ids)
    sts = ts[order]
    svals = vals[order]
    # ids were given in order of first appearance, so run i is uniq[i]'s
    return {key: Points.wrap(sts[s:e], svals[s:e]) for key, s, e in zip(uniq, starts.tolist(), ends.tolist())}


def id_runs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, ends): the stable order that groups equal ids (input
    order kept within an id), and where each id's run begins and ends in it."""
    order = np.argsort(ids, kind="stable")
    sids = ids[order]
    bounds = np.flatnonzero(sids[1:] != sids[:-1]) + 1
    return order, np.concatenate(([0], bounds)), np.concatenate((bounds, [len(ids)]))


def drop_rows(keys: Sequence[str | None], ts: np.ndarray, vals: np.ndarray,
              drop: Container[str | None]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parallel columns without the rows whose key is in `drop`."""
    keep = [k not in drop for k in keys]
    mask = np.array(keep, dtype=bool)
    return list(itertools.compress(keys, keep)), ts[mask], vals[mask]


@dataclass
class ReadResult:
    """Dense read of one series: values[i] is at start_time + i * step; NaN = gap."""

    error: Error | None = None
    start_time: int = 0
    end_time: int = 0
    step: int = 0
    values: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))

    def datapoints(self) -> list[tuple[int, float]]:
        """Non-null points as (timestamp, value) pairs."""
        if self.step == 0 or len(self.values) == 0:
            return []
        mask = ~np.isnan(self.values)
        ts = self.start_time + np.nonzero(mask)[0] * self.step
        return list(zip(ts.tolist(), self.values[mask].tolist()))

    def values_or_none(self) -> list[float | None]:
        return [None if v != v else v for v in self.values.tolist()]


@dataclass
class ReadAllResult:
    error: Error | None = None
    metadata: SeriesMetadata | None = None
    points: Points = field(default_factory=Points.empty)


@dataclass
class FindResult:
    error: Error | None = None
    results: list[str] = field(default_factory=list)


@dataclass
class DeleteResult:
    error: Error | None = None
    disk_series_deleted: int = 0
    buffer_series_deleted: int = 0
