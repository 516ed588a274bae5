"""QueryStore: evaluates Graphite function expressions on read.

A read target that is a plain key or pattern passes straight through to
the substore. A target with a function call (`sumSeries(a.*.b)`) is
evaluated by `cyclone.query.evaluator` against the substore, and its
result series come back keyed by their Graphite names. Every other call
passes through unchanged.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from cyclone.series import DeleteResult, Error, FindResult, Points, ReadAllResult, ReadResult, SeriesMetadata
from cyclone.store.base import Store


def is_expression(target: str) -> bool:
    return "(" in target or "|" in target


class QueryStore(Store):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def children(self) -> list[Store]:
        return [self.store]

    def read(self, patterns: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        plain = [p for p in patterns if not is_expression(p)]
        out = self.store.read(plain, start, end, local_only) if plain else {}
        for target in patterns:
            if is_expression(target):
                out[target] = self._evaluate(target, start, end)
        return out

    def _evaluate(self, target: str, start: int, end: int) -> dict[str, ReadResult]:
        from cyclone.query.evaluator import evaluate
        from cyclone.query.parser import QueryError

        self.stats_counters.add("expressions")
        try:
            series = evaluate([target], start, end, self.store, now=int(time.time()))
        except QueryError as e:
            self.stats_counters.add("expression_errors")
            return {target: ReadResult(error=Error(str(e)))}
        return {
            s.name: ReadResult(None, int(s.start), int(s.end), int(s.step), s.values)
            for s in series
        }

    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        return self.store.update_metadata(metadata_by_key, create_new, skip_existing,
                                          truncate_existing, skip_buffering, local_only)

    def delete_series(self, patterns: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        return self.store.delete_series(patterns, deferred, local_only)

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        return self.store.rename_series(renames, merge, local_only)

    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        return self.store.write(points_by_key, skip_buffering, local_only)

    def write_columns(self, keys: Sequence[str], ts: np.ndarray, vals: np.ndarray) -> dict[str, Error]:
        return self.store.write_columns(keys, ts, vals)

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        return self.store.read_all(key, local_only)

    def find(self, patterns: list[str], local_only: bool = False) -> dict[str, FindResult]:
        return self.store.find(patterns, local_only)
