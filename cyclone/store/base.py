"""The Store interface every store in the tree implements, plus shared plumbing.

The API is synchronous and thread-safe (protocols call it from a thread
pool). Result maps carry one entry per key or pattern that failed: a key
absent from a write/update/rename result succeeded. Reads and finds carry
an entry per pattern, each with its own error.

`local_only` is accepted everywhere; only stores that forward to other
nodes (hash, remote) act on it.

Beyond DESIGN's Store API: `write_columns(keys, ts, vals)`, the same write
as parallel columns (one row per point). The ingest pipeline uses it so
the write buffer can keep the parser's columns without building a Points
per series; every other store inherits the default, which groups by key
and calls `write`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, Iterator, Sequence

import numpy as np

from cyclone.series import (
    DeleteResult,
    Error,
    FindResult,
    Points,
    ReadAllResult,
    ReadResult,
    SeriesMetadata,
    group_columns,
)


class StoreStats:
    """Thread-safe named counters. Counters only go up; gauges are set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: Counter[str] = Counter()
        self._gauges: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] += amount

    def add_many(self, amounts: dict[str, int]) -> None:
        with self._lock:
            self._counters.update(amounts)

    def set(self, name: str, value: int) -> None:
        with self._lock:
            self._gauges[name] = int(value)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._counters)
            out.update(self._gauges)
        return out


class timed:
    """Context manager adding elapsed microseconds to a counter."""

    def __init__(self, stats: StoreStats, name: str) -> None:
        self.stats = stats
        self.name = name

    def __enter__(self) -> "timed":
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stats.add(self.name, int((time.perf_counter() - self.t0) * 1e6))


class Store(ABC):
    """Base of every store type. Subclasses implement the abstract calls."""

    #: fields `apply_config` may change on a live store (hot reload)
    live_fields: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.stats_counters = StoreStats()

    # -- the API ---------------------------------------------------------
    @abstractmethod
    def update_metadata(
        self,
        metadata_by_key: dict[str, SeriesMetadata],
        create_new: bool = True,
        skip_existing: bool = False,
        truncate_existing: bool = False,
        skip_buffering: bool = False,
        local_only: bool = False,
    ) -> dict[str, Error]: ...

    @abstractmethod
    def delete_series(
        self, patterns: list[str], deferred: bool = False, local_only: bool = False
    ) -> dict[str, DeleteResult]: ...

    @abstractmethod
    def rename_series(
        self, renames: dict[str, str], merge: bool = False, local_only: bool = False
    ) -> dict[str, Error]: ...

    @abstractmethod
    def write(
        self,
        points_by_key: dict[str, Points],
        skip_buffering: bool = False,
        local_only: bool = False,
    ) -> dict[str, Error]: ...

    def write_columns(self, keys: Sequence[str], ts: np.ndarray, vals: np.ndarray) -> dict[str, Error]:
        """`write` for parallel columns, one row per point (keys in any order,
        input order kept within a key; `ts` int64, `vals` float64, not changed
        by the caller afterwards). The ingest pipeline writes this way; a store
        that buffers columns takes them as they are, the rest group by key."""
        return self.write(group_columns(keys, ts, vals))

    @abstractmethod
    def read(
        self, patterns: list[str], start: int, end: int, local_only: bool = False
    ) -> dict[str, dict[str, ReadResult]]: ...

    @abstractmethod
    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult: ...

    @abstractmethod
    def find(self, patterns: list[str], local_only: bool = False) -> dict[str, FindResult]: ...

    def stats(self) -> dict[str, int]:
        return self.stats_counters.snapshot()

    def flush(self) -> None:
        for child in self.children():
            child.flush()

    def close(self) -> None:
        for child in self.children():
            child.close()

    # -- tree plumbing ---------------------------------------------------
    def children(self) -> list["Store"]:
        return []

    def walk(self) -> Iterator["Store"]:
        yield self
        for child in self.children():
            yield from child.walk()

    def apply_config(self, fields: dict[str, Any]) -> list[str]:
        """Apply changeable fields from a reloaded config; returns names changed."""
        changed = []
        for name in self.live_fields:
            if name in fields and getattr(self, name) != fields[name]:
                setattr(self, name, fields[name])
                changed.append(name)
        return changed

    def describe(self) -> str:
        return type(self).__name__
