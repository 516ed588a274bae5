"""WriteBufferStore: batches writes in memory and flushes them in background threads.

Points are buffered columnar, not per point: a *generation* is an
append-only log of (key id, timestamp, value) numpy chunks plus the key→id
map of that generation, about 20 bytes per buffered point. A coordinator
thread swaps the current generation out, groups it by key with one stable
argsort, and hands `batch_size` series per substore `write` to
`num_write_threads` worker threads, building each batch only when a thread
is about to be free (memory stays bounded by the columns, not by Points
objects for every buffered series). Generations flush strictly one after
another, so two threads never write one series at once, and within a
series input order is kept (the disk store keeps the last value written
for a timestamp).

Reads and finds see buffered points, buffered metadata and series that
exist only in the buffer. Deletes and renames wait for the flush in
progress and act on the buffer and the substore together. Writes the
substore refuses with a *recoverable* error (a remote node down, a full
disk) are put back and retried; other errors drop the points and count.

One flush thread is the default: flushing to a local disk is Python work
between short system calls, and every call hands the GIL to the other
thread and back, so a second thread costs 15-40% more CPU for the same or
less throughput (measured with bench/ingest_bench.py). More threads pay
off when the substore waits on something slower, such as a remote node.

Departure from the seed, on purpose: a read of a series whose window is
coarser than its finest archive overlays buffered points by "last value in
the interval" rather than re-aggregating them with the on-disk data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from cyclone import patterns
from cyclone.series import (
    CycloneError,
    DeleteResult,
    Error,
    FindResult,
    Points,
    ReadAllResult,
    ReadResult,
    SeriesMetadata,
    drop_rows,
    id_runs,
)
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.base import Store, timed

log = logging.getLogger(__name__)

CHUNK_POINTS = 1 << 16


class _Generation:
    """An append-only columnar log of buffered points."""

    def __init__(self) -> None:
        self.ids_of: dict[str, int] = {}
        self.keys: list[str] = []
        self.id_chunks: list[np.ndarray] = []
        self.ts_chunks: list[np.ndarray] = []
        self.val_chunks: list[np.ndarray] = []
        self.n_points = 0

    def append(self, points_by_key: dict[str, Points], front: bool = False) -> int:
        """Add points (`front`: ahead of everything buffered, for points put back
        after a failed flush); returns how many."""
        items = [(key, points) for key, points in points_by_key.items() if len(points)]
        if not items:
            return 0
        self._register(key for key, _ in items)
        ids_of = self.ids_of
        # copies (concatenate copies too): chunks are never changed in place, which
        # is what lets readers use them outside the lock (see `chunks`)
        ids = np.repeat(np.array([ids_of[key] for key, _ in items], dtype=np.int32),
                        [len(points) for _, points in items])
        ts = np.concatenate([p.timestamps for _, p in items]).astype(np.int64, copy=False)
        vals = np.concatenate([p.values for _, p in items])
        return self._add_chunk(ids, ts, vals, front)

    def append_columns(self, keys: Sequence[str], ts: np.ndarray, vals: np.ndarray) -> int:
        """Add parallel columns, one row per point; returns how many."""
        self._register(dict.fromkeys(keys))
        ids = np.fromiter(map(self.ids_of.__getitem__, keys), dtype=np.int32, count=len(keys))
        return self._add_chunk(ids, ts.astype(np.int64), vals.astype(np.float64), False)

    def _register(self, keys: Iterable[str]) -> None:
        """Give the keys not buffered here yet their ids, in order."""
        ids_of = self.ids_of
        known = self.keys
        for key in keys:
            if key not in ids_of:
                ids_of[key] = len(known)
                known.append(key)

    def _add_chunk(self, ids: np.ndarray, ts: np.ndarray, vals: np.ndarray, front: bool) -> int:
        """Add columns the generation owns (never changed afterwards)."""
        if front:
            self.id_chunks.insert(0, ids)
            self.ts_chunks.insert(0, ts)
            self.val_chunks.insert(0, vals)
        else:
            self.id_chunks.append(ids)
            self.ts_chunks.append(ts)
            self.val_chunks.append(vals)
        self.n_points += len(ids)
        if len(self.id_chunks) > 64:
            ids, ts, vals = self.flat()
            self.id_chunks, self.ts_chunks, self.val_chunks = [ids], [ts], [vals]
        return len(ids)

    def chunks(self) -> _Chunks:
        """The columns as they are now (caller holds the buffer's lock). Chunks are
        replaced, never changed, so a reader may use this copy outside the lock
        while the generation grows, compacts or takes points back in front."""
        return list(self.id_chunks), list(self.ts_chunks), list(self.val_chunks)

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The columns as one array each (caller holds the lock or owns the generation)."""
        if not self.id_chunks:
            return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64)
        if len(self.id_chunks) == 1:
            return self.id_chunks[0], self.ts_chunks[0], self.val_chunks[0]
        return (np.concatenate(self.id_chunks), np.concatenate(self.ts_chunks),
                np.concatenate(self.val_chunks))

    def batches(self, size: int, hold: set[str]) -> Iterator[dict[str, Points]]:
        """Every buffered series with its points in input order, `size` series
        per dict, built as they are taken (a flush of 100k series never holds
        100k Points at once); series in `hold` are left out."""
        ids, ts, vals = self.flat()
        if not len(ids):
            return
        order, starts, ends = id_runs(ids)
        run_ids = ids[order[starts]]
        sts = ts[order]
        svals = vals[order]
        del order
        keys = self.keys
        for i in range(0, len(starts), size):
            # Python ints for one batch at a time: for every series at once they
            # would be ~100 bytes a series of peak memory
            batch = {}
            for kid, s, e in zip(run_ids[i:i + size].tolist(), starts[i:i + size].tolist(),
                                 ends[i:i + size].tolist()):
                key = keys[kid]
                if key not in hold:
                    batch[key] = Points.wrap(sts[s:e], svals[s:e])
            if batch:
                yield batch

    def ids_for(self, keys: Iterable[str]) -> dict[str, int]:
        """key -> id of those `keys` that are buffered here."""
        ids_of = self.ids_of
        return {k: ids_of[k] for k in keys if k in ids_of}

    def series_points(self, keys: Iterable[str]) -> dict[str, Points]:
        """The buffered points of `keys`, in input order."""
        return select_points(self.chunks(), self.ids_for(keys))

    def remove_keys(self, keys: set[str]) -> int:
        """Drop every buffered point of `keys`; returns how many series were dropped."""
        gone = {self.ids_of[k] for k in keys if k in self.ids_of}
        if not gone:
            return 0
        ids, ts, vals = self.flat()
        keep = ~np.isin(ids, np.fromiter(gone, dtype=np.int32, count=len(gone)))
        self.id_chunks, self.ts_chunks, self.val_chunks = [ids[keep]], [ts[keep]], [vals[keep]]
        self.n_points = int(keep.sum())
        for k in keys:
            self.ids_of.pop(k, None)
        return len(gone)


_Chunks = tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]


def select_points(chunks: _Chunks, wanted: dict[str, int]) -> dict[str, Points]:
    """The points of the `wanted` keys (key -> id) in columns, in input order."""
    if not wanted:
        return {}
    want_ids = np.fromiter(wanted.values(), dtype=np.int32, count=len(wanted))
    picked: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for ids, ts, vals in zip(*chunks):
        mask = np.isin(ids, want_ids)
        if mask.any():
            for out, col in zip(picked, (ids, ts, vals)):
                out.append(col[mask])
    if not picked[0]:
        return {}
    sub_ids, sub_ts, sub_vals = (np.concatenate(cols) for cols in picked)
    out = {}
    for key, kid in wanted.items():
        m = sub_ids == kid
        if m.any():
            out[key] = Points.wrap(sub_ts[m], sub_vals[m])
    return out


@dataclass
class _PendingMetadata:
    metadata: SeriesMetadata
    create_new: bool
    skip_existing: bool
    truncate_existing: bool


class _RateLimiter:
    """At most `rate` events per second (0 = unlimited); blocking acquire."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_time = 0.0

    def wait(self, rate: float, stop: threading.Event) -> None:
        if rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_time)
            self.next_time = start + 1.0 / rate
        if start > now:
            stop.wait(start - now)


class WriteBufferStore(Store):
    live_fields = (
        "batch_size",
        "max_update_metadatas_per_second",
        "max_write_batches_per_second",
        "disable_rate_limit_for_queue_length",
        "merge_find_patterns",
        "enable_deferred_deletes",
        "max_buffered_points",
        "close_timeout_secs",
    )

    def __init__(
        self,
        store: Store,
        autocreate: AutocreateRules | None = None,
        num_write_threads: int = 1,
        batch_size: int = 1000,
        max_update_metadatas_per_second: float = 0,
        max_write_batches_per_second: float = 0,
        disable_rate_limit_for_queue_length: int = 0,
        merge_find_patterns: bool = True,
        enable_deferred_deletes: bool = False,
        max_buffered_points: int = 20_000_000,
        retry_delay: float = 1.0,
        close_timeout_secs: float = 120,
    ) -> None:
        super().__init__()
        self.store = store
        self.autocreate = autocreate if autocreate is not None else AutocreateRules()
        self.num_write_threads = max(1, num_write_threads)
        self.batch_size = max(1, batch_size)
        self.max_update_metadatas_per_second = max_update_metadatas_per_second
        self.max_write_batches_per_second = max_write_batches_per_second
        self.disable_rate_limit_for_queue_length = disable_rate_limit_for_queue_length
        self.merge_find_patterns = merge_find_patterns
        self.enable_deferred_deletes = enable_deferred_deletes
        self.max_buffered_points = max_buffered_points
        self.retry_delay = retry_delay
        self.close_timeout_secs = close_timeout_secs

        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._drained = threading.Condition(self._lock)
        self._cycle_lock = threading.RLock()  # held while a generation is being flushed
        self._current = _Generation()
        self._flushing: list[_Generation] = []
        self._pending_meta: dict[str, _PendingMetadata] = {}
        # metadata taken from _pending_meta and being applied: still visible to reads and finds
        self._applying_meta: dict[str, _PendingMetadata] = {}
        self._deferred_deletes: list[str] = []
        self._cycles_started = 0
        self._cycles_done = 0
        self._stop = threading.Event()
        self._write_limiter = _RateLimiter()
        self._meta_limiter = _RateLimiter()
        self._pool = ThreadPoolExecutor(self.num_write_threads, thread_name_prefix="flush")
        self._drain_listeners: list[Any] = []
        self._coordinator = threading.Thread(target=self._run, name="write-buffer", daemon=True)
        self._coordinator.start()

    def children(self) -> list[Store]:
        return [self.store]

    # -- memory bound (backpressure) --------------------------------------
    def buffered_points(self) -> int:
        with self._lock:
            return self._current.n_points + sum(g.n_points for g in self._flushing)

    def is_over_limit(self) -> bool:
        return self.max_buffered_points > 0 and self.buffered_points() >= self.max_buffered_points

    def add_drain_listener(self, callback: Any) -> None:
        """`callback()` runs (on a flush thread) whenever a flush cycle completes."""
        self._drain_listeners.append(callback)

    # -- write ---------------------------------------------------------------
    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        errors = self._refusals(points_by_key)
        accepted = {k: p for k, p in points_by_key.items() if k not in errors} if errors else points_by_key
        if skip_buffering:
            with self._cycle_lock:
                self._flush_keys_now(set(accepted))
                errors.update(self.store.write(accepted, True, local_only))
            return errors
        self._buffer(lambda gen: gen.append(accepted))
        return errors

    def write_columns(self, keys: Sequence[str], ts: np.ndarray, vals: np.ndarray) -> dict[str, Error]:
        """Buffer parallel columns as they are: no Points per series."""
        errors = self._refusals(dict.fromkeys(keys))
        if errors:
            keys, ts, vals = drop_rows(keys, ts, vals, errors)
        if len(keys):
            self._buffer(lambda gen: gen.append_columns(keys, ts, vals))
        return errors

    def _buffer(self, add: Callable[[_Generation], int]) -> None:
        """Add to the current generation (`add` returns how many points) and wake the flusher."""
        with self._lock:
            n = add(self._current)
            self._wakeup.notify()
        self.stats_counters.add_many({"write_batches": 1, "points_buffered": n})

    def _refusals(self, keys: Iterable[str]) -> dict[str, Error]:
        """Errors for the keys a write must refuse: invalid, or not existing with
        no autocreate rule or pending metadata. Keys buffered now were checked."""
        errors: dict[str, Error] = {}
        with self._lock:
            known = self._current.ids_of
            pending = self._pending_meta
        for key in keys:
            if key in known:
                continue
            try:
                patterns.check_key(key)
            except CycloneError as e:
                errors[key] = e.to_error()
                continue
            if key not in pending and self.autocreate.metadata_for(key) is None and not self._exists(key):
                errors[key] = Error(f"{key}: series does not exist and no autocreate rule matches")
        if errors:
            self.stats_counters.add("writes_refused", len(errors))
        return errors

    def _exists(self, key: str) -> bool:
        found = self.store.find([key]).get(key)
        return bool(found and found.error is None and key in found.results)

    # -- flushing --------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while (not self._current.n_points and not self._pending_meta
                       and not self._deferred_deletes and not self._stop.is_set()):
                    self._wakeup.wait(1.0)
                if self._stop.is_set() and not self._current.n_points and not self._pending_meta \
                        and not self._deferred_deletes:
                    return
            try:
                retry = self._cycle()
            except Exception:  # never let the flush thread die
                log.exception("write buffer flush cycle failed")
                self.stats_counters.add("flush_cycle_failures")
                retry = True
            for cb in list(self._drain_listeners):
                try:
                    cb()
                except Exception:
                    log.exception("drain listener failed")
            if retry:
                if self._stop.is_set():
                    return  # closing after a timed-out flush: close() counts what is left
                self._stop.wait(self.retry_delay)

    def _cycle(self) -> bool:
        """Flush one generation; returns True if some points must be retried later."""
        with self._cycle_lock:
            with self._lock:
                gen = self._current
                self._current = _Generation()
                self._flushing.append(gen)
                self._cycles_started += 1
                deletes, self._deferred_deletes = self._deferred_deletes, []
            t0 = time.perf_counter()
            retry = False
            # put back (ahead of newer points) in the same step that retires `gen`,
            # so buffered_points() never counts a requeued point twice
            requeue: dict[str, Points] = {}
            try:
                held_back = self._apply_pending_metadata()
                if held_back:
                    requeue.update(gen.series_points(held_back))
                    retry = bool(requeue)
                failed: dict[str, Points] = {}
                in_flight: deque[Future] = deque()
                for batch in gen.batches(self.batch_size, held_back):
                    if len(in_flight) >= 2 * self.num_write_threads:
                        failed.update(in_flight.popleft().result())
                    in_flight.append(self._pool.submit(self._write_batch, batch))
                while in_flight:
                    failed.update(in_flight.popleft().result())
                if failed:
                    retry = True
                    requeue.update(failed)
                    self.stats_counters.add("points_requeued", sum(len(p) for p in failed.values()))
                if deletes:
                    self.store.delete_series(deletes)
            finally:
                with self._lock:
                    if requeue:
                        self._current.append(requeue, front=True)
                    self._flushing.remove(gen)
                    self._cycles_done += 1
                    self._drained.notify_all()
            self.stats_counters.add_many({
                "flush_cycles": 1,
                "flush_usecs": int((time.perf_counter() - t0) * 1e6),
                "points_flushed": gen.n_points,
                "series_flushed": len(gen.keys),
            })
            return retry

    def _write_batch(self, batch: dict[str, Points]) -> dict[str, Points]:
        """Write one batch; returns the points to retry."""
        limit = self.disable_rate_limit_for_queue_length
        if not (limit > 0 and self.queue_series() > limit):
            self._write_limiter.wait(self.max_write_batches_per_second, self._stop)
        try:
            errors = self.store.write(batch, True)
        except Exception as e:  # a substore bug or a remote failure: keep the points
            log.exception("write buffer: substore write failed")
            errors = {k: Error(str(e), recoverable=True) for k in batch}
        retry = {}
        dropped = 0
        for key, err in errors.items():
            if err.recoverable and key in batch:
                retry[key] = batch[key]
            elif key in batch:
                dropped += len(batch[key])
                log.warning("write buffer: dropping %d points for %s: %s", len(batch[key]), key, err)
        if dropped:
            self.stats_counters.add("points_dropped", dropped)
        if errors:
            self.stats_counters.add("flush_errors", len(errors))
        return retry

    def _apply_pending_metadata(self) -> set[str]:
        """Apply buffered update_metadata calls; returns keys still pending (rate limited)."""
        with self._lock:
            pending = self._pending_meta
            self._pending_meta = {}
            self._applying_meta = pending
        if not pending:
            return set()
        try:
            return self._apply_metadata(pending)
        finally:
            with self._lock:
                self._applying_meta = {}

    def _apply_metadata(self, pending: dict[str, _PendingMetadata]) -> set[str]:
        items = list(pending.items())
        rate = self.max_update_metadatas_per_second
        limit = self.disable_rate_limit_for_queue_length
        if rate > 0 and not (limit > 0 and self.queue_series() > limit):
            budget = max(1, int(rate))
            items, rest = items[:budget], items[budget:]
            if rest:
                with self._lock:
                    for key, pm in rest:
                        self._pending_meta.setdefault(key, pm)
        for key, pm in items:
            self._meta_limiter.wait(rate, self._stop)
            errors = self.store.update_metadata({key: pm.metadata}, pm.create_new, pm.skip_existing,
                                                pm.truncate_existing, True)
            if errors:
                self.stats_counters.add("update_metadata_errors")
                log.warning("write buffer: update_metadata %s failed: %s", key, errors[key])
        self.stats_counters.add("update_metadata_applied", len(items))
        with self._lock:
            return set(self._pending_meta)

    def _flush_keys_now(self, keys: set[str]) -> None:
        """Write the buffered points of `keys` straight down (caller holds the cycle lock)."""
        with self._lock:
            pts = self._current.series_points(keys)
            self._current.remove_keys(set(pts))
            metas = {k: self._pending_meta.pop(k) for k in keys if k in self._pending_meta}
        for key, pm in metas.items():
            self.store.update_metadata({key: pm.metadata}, pm.create_new, pm.skip_existing,
                                       pm.truncate_existing, True)
        if pts:
            self.store.write(pts, True)

    def flush(self, timeout: float | None = None) -> bool:
        """Push everything buffered now down to the substore; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._cycles_started + (1 if (self._current.n_points or self._pending_meta
                                                    or self._deferred_deletes) else 0)
            self._wakeup.notify()
            while True:
                done = self._cycles_done >= target and not self._flushing
                empty = not (self._current.n_points or self._pending_meta or self._deferred_deletes)
                if done and empty:
                    break
                if done and not empty:
                    target = self._cycles_started + 1
                    self._wakeup.notify()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._drained.wait(0.5 if remaining is None else min(0.5, remaining))
        self.store.flush()
        return True

    def close(self) -> None:
        """Flush and stop. Points a substore keeps refusing as recoverable (a peer
        that stays down) are retried for `close_timeout_secs` (0 = forever), then
        dropped, counted (`points_dropped_at_close`) and logged."""
        flushed = True
        if self._coordinator.is_alive():
            timeout = self.close_timeout_secs if self.close_timeout_secs > 0 else None
            flushed = self.flush(timeout=timeout)
        self._stop.set()
        with self._lock:
            self._wakeup.notify_all()
        self._coordinator.join(timeout=60)
        self._pool.shutdown(wait=True)
        if not flushed:
            lost = self.buffered_points()
            self.stats_counters.add("points_dropped_at_close", lost)
            log.error("write buffer: %d points still unwritten after %s s at close "
                      "(is a remote node down?); dropping them", lost, self.close_timeout_secs)
        self.store.close()

    # -- metadata, delete, rename -------------------------------------------
    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        if skip_buffering:
            with self._cycle_lock:
                self._flush_keys_now(set(metadata_by_key))
                return self.store.update_metadata(metadata_by_key, create_new, skip_existing,
                                                  truncate_existing, True, local_only)
        errors: dict[str, Error] = {}
        with self._lock:
            for key, md in metadata_by_key.items():
                try:
                    patterns.check_key(key)
                except CycloneError as e:
                    errors[key] = e.to_error()
                    continue
                self._pending_meta[key] = _PendingMetadata(md, create_new, skip_existing,
                                                           truncate_existing)
            self._wakeup.notify()
        return errors

    def delete_series(self, patterns_: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        with self._cycle_lock:
            buffered: dict[str, int] = {}
            with self._lock:
                for pattern in patterns_:
                    keys = self._buffered_keys_matching(pattern, subtree=pattern.endswith("**"))
                    buffered[pattern] = self._current.remove_keys(keys)
                    for k in keys:
                        self._pending_meta.pop(k, None)
            if deferred and self.enable_deferred_deletes:
                with self._lock:
                    self._deferred_deletes.extend(patterns_)
                    self._wakeup.notify()
                return {p: DeleteResult(buffer_series_deleted=buffered[p]) for p in patterns_}
            results = self.store.delete_series(patterns_, False, local_only)
        for pattern, n in buffered.items():
            results.setdefault(pattern, DeleteResult()).buffer_series_deleted += n
        self.stats_counters.add("buffer_series_deleted", sum(buffered.values()))
        return results

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        with self._cycle_lock:
            self._flush_keys_now(set(renames) | set(renames.values()))
            return self.store.rename_series(renames, merge, local_only)

    # -- reads and finds -----------------------------------------------------------
    def _generations(self) -> list[_Generation]:
        """Oldest first: generations being flushed, then the current one."""
        return [*self._flushing, self._current]

    def _buffered_keys_matching(self, pattern: str, subtree: bool = False) -> set[str]:
        """Buffered series matching a pattern (caller holds _lock).

        An invalid pattern matches nothing here; the substore reports its error.
        """
        try:
            return self._buffered_keys_matching_checked(pattern, subtree)
        except CycloneError:
            return set()

    def _buffered_keys_matching_checked(self, pattern: str, subtree: bool) -> set[str]:
        candidates: set[str] = set(self._pending_meta) | set(self._applying_meta)
        for gen in self._generations():
            candidates.update(gen.ids_of)
        if not patterns.is_pattern(pattern):
            return {pattern} if pattern in candidates else set()
        if subtree and pattern.endswith(".**"):
            prefix_pattern = pattern[:-3]
            depth = len(patterns.split_pattern(prefix_pattern))
            matcher = patterns.compile_pattern(prefix_pattern)
            return {k for k in candidates
                    if k.count(".") >= depth and matcher(".".join(k.split(".")[:depth]))}
        matcher = patterns.compile_pattern(pattern)
        return {k for k in candidates if matcher(k)}

    def read(self, patterns_: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        now = int(time.time())
        with self._lock:
            matched = {p: self._buffered_keys_matching(p) for p in patterns_}
            wanted = set().union(*matched.values()) if matched else set()
            # freeze what we overlay: points buffered after this are newer reads' business
            frozen = [(g.chunks(), g.ids_for(wanted)) for g in self._generations()]
            pending = {k: pm.metadata for k, pm in (*self._applying_meta.items(), *self._pending_meta.items())}
        with timed(self.stats_counters, "read_usecs"):
            results = self.store.read(patterns_, start, end, local_only)
            buffered = self._buffered_points(frozen)
            for pattern in patterns_:
                by_key = results.setdefault(pattern, {})
                for key in sorted(matched[pattern]):
                    rr = by_key.get(key)
                    pts = buffered.get(key)
                    if rr is None or (rr.error is not None and "does not exist" in rr.error.description):
                        metadata = pending.get(key) or self._disk_metadata(key) or \
                            self.autocreate.metadata_for(key)
                        if metadata is None:
                            continue
                        rr = _empty_window(metadata, start, end, now)
                    if pts is not None and rr.error is None and rr.step:
                        rr = _overlay(rr, pts)
                    by_key[key] = rr
                results[pattern] = dict(sorted(by_key.items()))
        self.stats_counters.add("reads", len(patterns_))
        return results

    def _disk_metadata(self, key: str) -> SeriesMetadata | None:
        get = getattr(self.store, "metadata", None)
        return get(key) if get is not None else None

    @staticmethod
    def _buffered_points(frozen: list[tuple[_Chunks, dict[str, int]]]) -> dict[str, Points]:
        parts: dict[str, list[Points]] = {}
        for chunks, wanted in frozen:
            for key, pts in select_points(chunks, wanted).items():
                parts.setdefault(key, []).append(pts)
        return {
            key: Points(np.concatenate([p.timestamps for p in ps]), np.concatenate([p.values for p in ps]))
            for key, ps in parts.items()
        }

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        return self.store.read_all(key, local_only)

    def find(self, patterns_: list[str], local_only: bool = False) -> dict[str, FindResult]:
        if not self.merge_find_patterns:
            return self.store.find(patterns_, local_only)
        # buffered keys first: a flush that lands between the two looks would
        # otherwise leave a series in neither
        with self._lock:
            candidates: set[str] = set(self._pending_meta) | set(self._applying_meta)
            for gen in self._generations():
                candidates.update(gen.ids_of)
        results = self.store.find(patterns_, local_only)
        if not candidates:
            return results
        for pattern in patterns_:
            fr = results.get(pattern)
            if fr is None or fr.error is not None:
                continue
            extra = _find_in_keys(pattern, candidates)
            if extra:
                fr.results = sorted(set(fr.results) | extra)
        return results

    # -- stats and config ----------------------------------------------------------
    def queue_series(self) -> int:
        with self._lock:
            return len(self._current.ids_of) + sum(len(g.ids_of) for g in self._flushing)

    def stats(self) -> dict[str, int]:
        with self._lock:
            self.stats_counters.set("queue_points", self._current.n_points
                                    + sum(g.n_points for g in self._flushing))
            self.stats_counters.set("queue_series", len(self._current.ids_of)
                                    + sum(len(g.ids_of) for g in self._flushing))
            self.stats_counters.set("queue_metadata", len(self._pending_meta))
            self.stats_counters.set("queue_deferred_deletes", len(self._deferred_deletes))
        return super().stats()


def _find_in_keys(pattern: str, keys: set[str]) -> set[str]:
    """What `find(pattern)` would report for series `keys`: leaves and `dir.*` entries."""
    comps = patterns.split_pattern(pattern)
    globstar = comps[-1] == "**"
    if globstar:
        comps = comps[:-1]
    matchers = [patterns.compile_component(c) for c in comps]
    n = len(comps)
    out: set[str] = set()
    for key in keys:
        parts = key.split(".")
        if len(parts) < n or (globstar and len(parts) == n):
            continue
        if not all(m.fullmatch(p) for m, p in zip(matchers, parts)):
            continue
        if globstar or len(parts) == n:
            out.add(key)
        else:
            out.add(".".join(parts[:n]) + ".*")
    return out


def _empty_window(metadata: SeriesMetadata, start: int, end: int, now: int) -> ReadResult:
    """The window whisper's fetch would return for a series with this layout, all gaps."""
    archives = metadata.archive_tuples()
    max_retention = max(p * n for p, n in archives)
    if start > end:
        return ReadResult(error=Error("invalid time interval: from is after until"))
    oldest = now - max_retention
    if start > now or end < oldest:
        return ReadResult()
    start = max(start, oldest)
    end = min(end, now)
    diff = now - start
    step = next((p for p, n in archives if p * n >= diff), archives[-1][0])
    from_i = start - start % step + step
    until_i = end - end % step + step
    if from_i == until_i:
        until_i += step
    return ReadResult(None, from_i, until_i, step,
                      np.full((until_i - from_i) // step, np.nan))


def _overlay(rr: ReadResult, pts: Points) -> ReadResult:
    """Lay buffered points over a read window; a buffered NaN (delete) hides the disk value."""
    step = rr.step
    slots = (pts.timestamps - pts.timestamps % step - rr.start_time) // step
    in_range = (slots >= 0) & (slots < len(rr.values))
    if not in_range.any():
        return rr
    slots, ts, vals = slots[in_range], pts.timestamps[in_range], pts.values[in_range]
    # whisper keeps the newest timestamp of an interval; equal timestamps: the last one written
    order = np.lexsort((ts, slots))
    slots, vals = slots[order], vals[order]
    last = np.ones(len(slots), dtype=bool)
    last[:-1] = slots[1:] != slots[:-1]
    values = rr.values.copy()
    values[slots[last]] = vals[last]
    return ReadResult(None, rr.start_time, rr.end_time, rr.step, values)
