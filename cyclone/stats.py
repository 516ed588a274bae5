"""Server counters and the periodic self-report as `cyclone.<host>.*` series.

This module owns:

* `Counters`: a named group of thread-safe counters (one per protocol:
  `line_tcp`, `line_udp`, `pickle`, `shell`, ... plus `ingest` and
  `server`), registered in a `StatsRegistry` that the `ServerContext`
  holds as `ctx.stats`. Protocol modules of other engineers get their own
  group with `ctx.stats.group("http")`.
* `store_stat_names`: a stable name for every store position in the tree
  (`query`, `query.write_buffer`, `query.write_buffer.cached_disk`, named
  children of multi/hash stores by their config names), so store counters
  can be reported side by side.
* `collect_all`: the flat `{name: value}` map the shell `stats` command
  shows and the reporter writes.
* `StatsReporter`: every `stats_report_usecs` writes that map into the
  server's own store (root `write`, so hash routing and autocreate apply)
  as `cyclone.<host>.<name>`, one point per counter at the report time.
  Counters are cumulative since start; graph them with derivative().
"""

from __future__ import annotations

import logging
import os
import re
import resource
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from cyclone.series import Points

if TYPE_CHECKING:  # pragma: no cover
    from cyclone.store.base import Store

log = logging.getLogger(__name__)

_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_\-]+")


def sanitize_component(name: str) -> str:
    """Make `name` usable as one key component (no dots, spaces, slashes...)."""
    out = _BAD_NAME_CHARS.sub("_", name).strip("_")
    return out or "_"


def sanitize_name(name: str) -> str:
    """Make a dotted stat name a valid key suffix, component by component."""
    return ".".join(sanitize_component(c) for c in name.split(".") if c) or "_"


class Counters:
    """A named group of counters (monotonic) and gauges (set), thread-safe."""

    def __init__(self, name: str, fields: Iterable[str] = ()) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._values: dict[str, int] = {f: 0 for f in fields}

    def add(self, field: str, amount: int = 1) -> None:
        with self._lock:
            self._values[field] = self._values.get(field, 0) + amount

    def add_many(self, amounts: dict[str, int]) -> None:
        with self._lock:
            values = self._values
            for field, amount in amounts.items():
                values[field] = values.get(field, 0) + amount

    def set(self, field: str, value: int) -> None:
        with self._lock:
            self._values[field] = int(value)

    def get(self, field: str) -> int:
        with self._lock:
            return self._values.get(field, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


PROTOCOL_FIELDS: dict[str, tuple[str, ...]] = {
    "line_tcp": ("connections", "connections_open", "bytes", "lines", "points", "bad_lines", "paused"),
    "line_udp": ("datagrams", "bytes", "lines", "points", "bad_lines"),
    "pickle": ("connections", "connections_open", "bytes", "frames", "points", "bad_frames",
               "bad_points", "refused_pickles", "oversized_frames", "paused"),
    "shell": ("connections", "connections_open", "commands", "command_errors"),
    "ingest": ("batches", "points_written", "points_refused", "keys_refused", "invalid_keys",
               "write_failures", "backpressure_pauses", "backpressure_resumes"),
}


class StatsRegistry:
    """All counter groups of one server, by name (order of registration kept)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, Counters] = {}
        self.gauges: dict[str, Callable[[], int]] = {}
        for name, fields in PROTOCOL_FIELDS.items():
            self.group(name, fields)

    def group(self, name: str, fields: Iterable[str] = ()) -> Counters:
        """The counter group `name`, created on first use."""
        with self._lock:
            g = self._groups.get(name)
            if g is None:
                g = self._groups[name] = Counters(name, fields)
            return g

    def add_gauge(self, name: str, fn: Callable[[], int]) -> None:
        """A value computed at report time (e.g. a queue length)."""
        self.gauges[name] = fn

    def snapshot(self) -> dict[str, int]:
        """`group.field` -> value for every counter and gauge."""
        with self._lock:
            groups = list(self._groups.values())
        out: dict[str, int] = {}
        for g in groups:
            for field, value in g.snapshot().items():
                out[f"{g.name}.{field}"] = value
        for name, fn in list(self.gauges.items()):
            try:
                out[name] = int(fn())
            except Exception:  # a gauge must never break reporting
                log.debug("gauge %s failed", name, exc_info=True)
        return out


def process_stats(started_at: float) -> dict[str, int]:
    """Uptime, CPU and memory of this process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "server.uptime_secs": int(time.time() - started_at),
        "server.cpu_user_usecs": int(ru.ru_utime * 1e6),
        "server.cpu_system_usecs": int(ru.ru_stime * 1e6),
        "server.peak_rss_bytes": int(ru.ru_maxrss) * 1024,
        "server.threads": threading.active_count(),
    }
    try:
        with open("/proc/self/statm") as f:
            out["server.rss_bytes"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    return out


def _type_name(store: "Store") -> str:
    name = type(store).__name__
    if name.endswith("Store") and len(name) > 5:
        name = name[:-5]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def store_stat_names(root: "Store") -> list[tuple[str, "Store"]]:
    """(position name, store) for every store in the tree, root first.

    A position is the path of type names from the root; children that their
    parent names (multi/hash `names`) use that name, other siblings of the
    same type get `_1`, `_2` suffixes so every position is unique.
    """
    out: list[tuple[str, Store]] = []

    def visit(store: "Store", path: str) -> None:
        out.append((path, store))
        children = store.children()
        names = getattr(store, "names", None)
        seen: dict[str, int] = {}
        for i, child in enumerate(children):
            if isinstance(names, (list, tuple)) and len(names) == len(children):
                base = sanitize_component(str(names[i]))
            else:
                base = _type_name(child)
            n = seen.get(base, 0)
            seen[base] = n + 1
            visit(child, f"{path}.{base}" + (f"_{n}" if n else ""))

    visit(root, _type_name(root))
    return out


def collect_store_stats(root: "Store") -> dict[str, int]:
    """`store.<position>.<stat>` -> value for every store (blocking: run off the reactor)."""
    out: dict[str, int] = {}
    for path, store in store_stat_names(root):
        try:
            stats = store.stats()
        except Exception as e:  # one broken store must not hide the others
            log.warning("stats of %s failed: %s", path, e)
            continue
        for name, value in stats.items():
            try:
                out[f"store.{path}.{sanitize_name(str(name))}"] = int(value)
            except (TypeError, ValueError):
                continue
    return out


def collect_all(server_stats: dict[str, int], root: "Store", started_at: float,
                verify_status: dict[str, int] | None = None) -> dict[str, int]:
    """Everything the server reports (blocking: walks the store tree)."""
    out = dict(server_stats)
    out.update(process_stats(started_at))
    out.update(collect_store_stats(root))
    if verify_status:
        for name, value in verify_status.items():
            out[f"verify_{sanitize_component(str(name))}"] = int(value)
    return out


def stats_to_points(prefix: str, stats: dict[str, Any], now: int) -> dict[str, Points]:
    """One point per counter at `now`, keyed `<prefix>.<name>`."""
    ts = np.array([now], dtype=np.int64)
    return {
        f"{prefix}.{sanitize_name(name)}": Points(ts, np.array([float(value)]))
        for name, value in stats.items()
    }


class Profiler:
    """When enabled, records calls slower than `threshold_usecs` (logged and kept).

    `ctx.call_store` reports every store call here; protocol modules may
    `record` their own request timings.
    """

    def __init__(self, threshold_usecs: int = 1_000_000, keep: int = 100) -> None:
        from collections import deque

        self.enabled = False
        self.threshold_usecs = threshold_usecs
        self.slow: Any = deque(maxlen=keep)

    def record(self, what: str, usecs: float) -> None:
        if self.enabled and usecs >= self.threshold_usecs:
            self.slow.append((time.time(), what, int(usecs)))
            log.warning("profiler: %s took %.1f ms", what, usecs / 1000)


class StatsReporter:
    """Writes the server's counters into its own store every `interval_usecs`.

    `report_once` is called on the reactor; the store walk and the write run
    on the store thread pool via `ctx.call_store`.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.loop: Any = None
        self.interval_usecs = 0
        self.reports = 0
        self.failures = 0
        self._in_flight = False

    @property
    def prefix(self) -> str:
        return f"cyclone.{sanitize_component(self.ctx.host)}"

    def start(self, interval_usecs: int) -> None:
        from twisted.internet.task import LoopingCall

        self.stop()
        self.interval_usecs = interval_usecs
        if interval_usecs <= 0:
            return
        self.loop = LoopingCall(self.report_once)
        self.loop.clock = self.ctx.reactor
        self.loop.start(interval_usecs / 1e6, now=False).addErrback(
            lambda f: log.error("stats reporter stopped: %s", f.getErrorMessage()))

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None

    def report_once(self) -> Any:
        """Collect and write one report; returns a Deferred (or None if one is in flight)."""
        if self._in_flight:
            return None
        self._in_flight = True
        server_stats = self.ctx.stats.snapshot()
        prefix = self.prefix
        ctx = self.ctx

        def work() -> int:
            verify = None
            if ctx.verify is not None:
                try:
                    verify = ctx.verify.get_verify_status()
                except Exception as e:
                    log.debug("verify status failed: %s", e)
            stats = collect_all(server_stats, ctx.store, ctx.started_at, verify)
            points = stats_to_points(prefix, stats, int(time.time()))
            errors = ctx.store.write(points)
            if errors:
                first = next(iter(errors.items()))
                log.warning("self-metrics: %d of %d series refused (e.g. %s: %s)",
                            len(errors), len(points), first[0], first[1])
            return len(points) - len(errors)

        def done(result: Any) -> Any:
            self._in_flight = False
            self.reports += 1
            return result

        def failed(failure: Any) -> None:
            self._in_flight = False
            self.failures += 1
            log.error("self-metrics report failed: %s", failure.getErrorMessage())

        return ctx.call_store(work).addCallbacks(done, failed)
