"""Merging per-key results from several substores (multi, hash read-from-all).

Reads: for one key seen in several substores, the finest step wins; gaps in
it are filled from other results with the same window. Finds: union,
sorted. Errors: combined per key, naming the substore that failed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import numpy as np

from cyclone.series import DeleteResult, Error, FindResult, ReadResult

T = TypeVar("T")


class FanOut:
    """Runs one call per substore concurrently on a private thread pool."""

    def __init__(self, width: int, name: str) -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, width), thread_name_prefix=name)

    def map(self, fn: Callable[..., T], items: Sequence) -> list[T]:
        if len(items) == 1:
            return [fn(items[0])]
        futures = [self.pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


def merge_read_results(results: Sequence[ReadResult]) -> ReadResult:
    good = [r for r in results if r.error is None and r.step]
    if not good:
        return results[0]
    best = min(good, key=lambda r: (r.step, -len(r.values)))
    values = best.values.copy()
    for other in good:
        if other is best or other.step != best.step or other.start_time != best.start_time:
            continue
        if len(other.values) != len(values):
            continue
        gaps = np.isnan(values)
        values[gaps] = other.values[gaps]
    return ReadResult(None, best.start_time, best.end_time, best.step, values)


def merge_reads(per_store: Sequence[dict[str, dict[str, ReadResult]]]) -> dict[str, dict[str, ReadResult]]:
    out: dict[str, dict[str, list[ReadResult]]] = {}
    for result in per_store:
        for pattern, by_key in result.items():
            slot = out.setdefault(pattern, {})
            for key, rr in by_key.items():
                slot.setdefault(key, []).append(rr)
    return {
        pattern: {key: merge_read_results(rrs) for key, rrs in sorted(by_key.items())}
        for pattern, by_key in out.items()
    }


def merge_finds(per_store: Sequence[dict[str, FindResult]]) -> dict[str, FindResult]:
    out: dict[str, FindResult] = {}
    for result in per_store:
        for pattern, fr in result.items():
            merged = out.setdefault(pattern, FindResult(results=[]))
            if fr.error is not None and merged.error is None:
                merged.error = fr.error
            merged.results.extend(fr.results)
    for fr in out.values():
        fr.results = sorted(set(fr.results))
    return out


def merge_errors(per_store: Sequence[dict[str, Error]], names: Sequence[str]) -> dict[str, Error]:
    out: dict[str, Error] = {}
    for name, result in zip(names, per_store):
        for key, err in result.items():
            if key in out:
                prev = out[key]
                out[key] = Error(f"{prev.description}; {name}: {err.description}",
                                 prev.recoverable and err.recoverable)
            else:
                out[key] = Error(f"{name}: {err.description}" if len(names) > 1 else err.description,
                                 err.recoverable, err.ignored)
    return out


def merge_deletes(per_store: Sequence[dict[str, DeleteResult]]) -> dict[str, DeleteResult]:
    out: dict[str, DeleteResult] = {}
    for result in per_store:
        for pattern, dr in result.items():
            merged = out.setdefault(pattern, DeleteResult())
            merged.disk_series_deleted += dr.disk_series_deleted
            merged.buffer_series_deleted += dr.buffer_series_deleted
            if dr.error is not None and merged.error is None:
                merged.error = dr.error
    return out
