"""Background verify / repair of a node's series placement, and the cluster control hook.

`Verifier` walks every series in the local substore(s) of a hash store
(cyclone.store.hash) and asks the ring who owns it:

- verify: counts the misplaced series (those the ring places on another
  substore), changes nothing;
- verify + repair: moves every misplaced series to its owner, in batches of
  `batch_size` keys: the source's buffered points are flushed, then for
  each key `read_all` (metadata + every point) from the local substore,
  `update_metadata` on the owner (create if missing, skip existing: the
  owner's layout wins) and `write` of the source points over the owner's
  (source wins for equal timestamps), both with skip_buffering so they are
  on the owner's disk when the calls return. The local copy is deleted
  `delete_grace_secs` later, so a read that fanned out just before the
  copy landed still finds the local copy. A key whose copy failed is kept
  (and counted in `errors`); the next run retries it.

While a run is in progress the hash store reads from all substores
(read-from-all is forced on and released at the end; a switch turned on
by hand stays on). Progress: `status()` returns ints named running,
repair, start_time, end_time (unix seconds), series_scanned,
directories_scanned, misplaced, moved, errors, cancelled, runs; the
server's stats collection (cyclone.stats.collect_all) reports them with a
`verify_` prefix, so they appear in `/y/stats` and as
cyclone.<host>.verify_* series. The Thrift `get_verify_status` and the
shell `verify status` show the same map.

`ClusterControl` is what the server wires to the shell commands `verify
start [repair] | cancel | status`, `read-from-all [on|off]` and the
matching Thrift methods (it answers to both spellings: start / cancel /
status and start_verify / cancel_verify / get_verify_status; the server
sets it as `ctx.cluster`, and as `ctx.verify` and `ctx.read_from_all` when
the tree has a hash store). `ClusterControl.from_store(root)` finds the first
hash store in the tree (`walk()` order); without one the control is inert
(start returns False, read-from-all stays off).

Known window (documented in docs/cluster.md): a point for a moved key that
reaches this node's write buffer between the copy and the delete (only a
peer still running the old config sends such points) is dropped with the
local copy.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Iterator

from cyclone.store.base import Store
from cyclone.store.hash import ConsistentHashMultiStore, copy_series

log = logging.getLogger(__name__)

STATUS_FIELDS = (
    "running",
    "repair",
    "start_time",
    "end_time",
    "series_scanned",
    "directories_scanned",
    "misplaced",
    "moved",
    "errors",
    "cancelled",
    "runs",
)


class Verifier:
    """One node's verify/repair runner for one hash store (one run at a time)."""

    def __init__(self, store: ConsistentHashMultiStore, batch_size: int = 100,
                 delete_grace_secs: float = 2.0) -> None:
        self.store = store
        self.batch_size = max(1, batch_size)
        self.delete_grace_secs = delete_grace_secs
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: dict[str, int] = {name: 0 for name in STATUS_FIELDS}

    # -- control ---------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, repair: bool = False) -> bool:
        """Start a run in the background; False if one is already running."""
        with self._lock:
            if self.running:
                return False
            self._cancel.clear()
            runs = self._status["runs"]
            self._status = {name: 0 for name in STATUS_FIELDS}
            self._status.update(running=1, repair=int(repair),
                                start_time=int(time.time()), runs=runs + 1)
            self.store.force_read_from_all(True)
            self._thread = threading.Thread(target=self._run, args=(repair,), name="verify", daemon=True)
            self._thread.start()
        log.info("verify%s started", " + repair" if repair else "")
        return True

    def cancel(self) -> bool:
        """Ask the running verify to stop; False if none is running."""
        with self._lock:
            if not self.running:
                return False
            self._cancel.set()
            self._status["cancelled"] = 1
        return True

    def join(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

    def status(self) -> dict[str, int]:
        with self._lock:
            return dict(self._status)

    def _add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._status[name] += n

    # -- the run ------------------------------------------------------------------------
    def _run(self, repair: bool) -> None:
        pending: collections.deque[tuple[float, int, list[str]]] = collections.deque()
        try:
            for index in self.store.local_indexes:
                if self._cancel.is_set():
                    break
                src = self.store.stores[index]
                try:
                    src.flush()
                except Exception:
                    log.exception("verify: flushing the local substore failed")
                for keys in self._walk(src):
                    if self._cancel.is_set():
                        break
                    self._check_batch(index, keys, repair, pending)
                    self._delete_due(pending, wait=False)
            self._delete_due(pending, wait=True)
        except Exception:
            log.exception("verify run failed")
            self._add("errors")
        finally:
            self.store.force_read_from_all(False)
            with self._lock:
                self._status["running"] = 0
                self._status["end_time"] = int(time.time())
                status = dict(self._status)
            log.info("verify finished: %s", status)

    def _walk(self, src: Store) -> Iterator[list[str]]:
        """Every series of `src`, depth first by directory, in batches."""
        stack = [""]
        batch: list[str] = []
        while stack:
            if self._cancel.is_set():
                return
            prefix = stack.pop()
            pattern = prefix + "*"
            found = src.find([pattern], local_only=True).get(pattern)
            self._add("directories_scanned")
            if found is None or found.error is not None:
                log.warning("verify: find %s failed: %s", pattern, found and found.error)
                self._add("errors")
                continue
            subdirs = []
            for item in found.results:
                if item.endswith(".*"):
                    subdirs.append(item[:-1])  # "a.b.*" -> prefix "a.b."
                else:
                    batch.append(item)
                    if len(batch) >= self.batch_size:
                        yield batch
                        batch = []
            stack.extend(reversed(subdirs))
        if batch:
            yield batch

    def _check_batch(self, index: int, keys: list[str], repair: bool,
                     pending: collections.deque[tuple[float, int, list[str]]]) -> None:
        self._add("series_scanned", len(keys))
        by_owner: dict[int, list[str]] = {}
        for key in keys:
            owner = self.store.owner_index(key)
            if owner != index:
                by_owner.setdefault(owner, []).append(key)
        self._add("misplaced", sum(len(v) for v in by_owner.values()))
        if not repair:
            return
        src = self.store.stores[index]
        for owner, misplaced in by_owner.items():
            try:
                errors = copy_series(src, self.store.stores[owner], {k: k for k in misplaced}, merge=True)
            except Exception:
                log.exception("verify: moving %d series to %s failed", len(misplaced),
                              self.store.names[owner])
                errors = {k: None for k in misplaced}
            for key, err in errors.items():
                log.warning("verify: could not move %s to %s: %s", key, self.store.names[owner], err)
            self._add("errors", len(errors))
            moved = [k for k in misplaced if k not in errors]
            if moved:
                pending.append((time.monotonic() + self.delete_grace_secs, index, moved))

    def _delete_due(self, pending: collections.deque[tuple[float, int, list[str]]], wait: bool) -> None:
        """Delete local copies whose grace period is over (all of them if `wait`)."""
        while pending:
            due, index, keys = pending[0]
            delay = due - time.monotonic()
            if delay > 0:
                if not wait:
                    return
                time.sleep(delay)
            pending.popleft()
            results = self.store.stores[index].delete_series(keys, False, local_only=True)
            failed = [k for k in keys if results.get(k) is not None and results[k].error is not None]
            for key in failed:
                log.warning("verify: deleting the moved copy of %s failed: %s", key, results[key].error)
            self._add("errors", len(failed))
            self._add("moved", len(keys) - len(failed))


class ClusterControl:
    """The server's verify / read-from-all hook (shell, Thrift, /y/stats)."""

    def __init__(self, store: ConsistentHashMultiStore | None, **verifier_options: float) -> None:
        self.store = store
        self.verifier = Verifier(store, **verifier_options) if store is not None else None  # type: ignore[arg-type]
        if store is not None:
            store.verifier = self.verifier

    @classmethod
    def from_store(cls, root: Store, **verifier_options: float) -> "ClusterControl":
        """Control for the first hash store in the tree (inert if there is none)."""
        for store in root.walk():
            if isinstance(store, ConsistentHashMultiStore):
                if store.verifier is not None:  # already wired (e.g. built twice): share it
                    control = cls(None)
                    control.store, control.verifier = store, store.verifier
                    return control
                return cls(store, **verifier_options)
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def start(self, repair: bool = False) -> bool:
        return self.verifier.start(repair) if self.verifier is not None else False

    def cancel(self) -> bool:
        return self.verifier.cancel() if self.verifier is not None else False

    def status(self) -> dict[str, int]:
        if self.verifier is None:
            return {name: 0 for name in STATUS_FIELDS}
        return self.verifier.status()

    def get_read_from_all(self) -> bool:
        return self.store.read_from_all if self.store is not None else False

    def set_read_from_all(self, on: bool) -> bool:
        """Switch read-from-all; returns the previous value."""
        return self.store.set_read_from_all(on) if self.store is not None else False

    # the names of the Thrift methods (the server's `ctx.verify` hook uses these)
    def start_verify(self, repair: bool = False) -> bool:
        return self.start(repair)

    def cancel_verify(self) -> bool:
        return self.cancel()

    def get_verify_status(self) -> dict[str, int]:
        return self.status()
