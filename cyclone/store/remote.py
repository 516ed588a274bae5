"""RemoteStore: forwards every call to another Cyclone node over Thrift.

Wire: framed transport, binary protocol, the `Cyclone` service of
thrift/cyclone_if.thrift, spoken by `cyclone.client.thrift.ThriftClient`
(numpy codec of `cyclone.thrift_convert` for the bulky messages). Every
call is sent with `local_only=True`, so the peer answers from its own data
and never forwards again (see cyclone.store.hash).

Connections are persistent and pooled: at most `connection_limit` clients
are connected at once (a caller waits up to `timeout` for one to be free).
`timeout` (seconds) bounds the wait for each reply; connecting is bounded
by min(timeout, 5 s). A client whose call failed on the wire is closed and
reconnects on its next use; the client itself retries once on a fresh
connection when a pooled one turned out to be dead (the peer restarted),
except for calls that are not idempotent (rename).

`skip_buffering`: a write buffer in front of a remote store flushes with
skip_buffering=True, and forwarding that would make the peer create
files synchronously inside its Thrift handler, serialised with its own
flushes (forwarded batches then time out and are retried). So writes and
update_metadata reach the peer with skip_buffering=False — the peer's own
write buffer takes them — unless the caller runs inside
`committed_writes()` (the hash store does for a client's skip_buffering
call, and verify/repair for every move): then the peer commits them to
disk before answering.

A peer that is down or too slow gives per-key (per-pattern) errors with
`recoverable=True`. A write buffer in front of a remote store therefore
keeps such points queued and retries them until the peer is back; its
`max_buffered_points` bounds the memory. After a failed connect, calls
fail fast for `retry_interval` seconds instead of waiting on a dead host
again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from cyclone.client.thrift import ThriftClient, ThriftClientError, ThriftConnectionError
from cyclone.series import DeleteResult, Error, FindResult, Points, ReadAllResult, ReadResult, SeriesMetadata
from cyclone.store.base import Store, timed

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_CONNECT_TIMEOUT = 5.0


_commit = threading.local()


@contextlib.contextmanager
def committed_writes() -> Iterator[None]:
    """In this block (this thread), skip_buffering=True is forwarded to peers as is."""
    depth = getattr(_commit, "depth", 0)
    _commit.depth = depth + 1
    try:
        yield
    finally:
        _commit.depth = depth


def _forwarded_skip_buffering(skip_buffering: bool) -> bool:
    return skip_buffering and getattr(_commit, "depth", 0) > 0


class _Unavailable(Exception):
    """No client could be had: the pool is exhausted or the peer is known down."""


class RemoteStore(Store):
    """A store that is another Cyclone node (see module docstring)."""

    is_remote = True
    live_fields = ("connection_limit", "timeout")

    def __init__(self, hostname: str, port: int, connection_limit: int = 8, timeout: float = 10.0,
                 retry_interval: float = 1.0) -> None:
        super().__init__()
        if connection_limit < 1:
            raise ValueError("connection_limit must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.hostname = hostname
        self.port = port
        self.connection_limit = connection_limit
        self.timeout = float(timeout)
        self.retry_interval = retry_interval
        self._cond = threading.Condition()
        self._idle: list[ThriftClient] = []
        self._in_use = 0
        self._down_until = 0.0
        self._last_failure = ""
        self._closed = False

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"

    def describe(self) -> str:
        return f"RemoteStore({self.address})"

    # -- the pool --------------------------------------------------------------------
    def _acquire(self) -> ThriftClient:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                if self._closed:
                    raise _Unavailable("the store is closed")
                if self._idle:
                    self._in_use += 1
                    client = self._idle.pop()
                    break
                if self._in_use < self.connection_limit:
                    self._in_use += 1
                    client = None
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stats_counters.add("pool_timeouts")
                    raise _Unavailable(f"no free connection within {self.timeout:g}s "
                                       f"(connection_limit {self.connection_limit})")
                self._cond.wait(remaining)
            down_until, last_failure = self._down_until, self._last_failure
        if client is None:
            client = ThriftClient(self.hostname, self.port, timeout=self.timeout,
                                  connect_timeout=min(self.timeout, MAX_CONNECT_TIMEOUT), retries=1)
        if client.connected:
            return client
        if time.monotonic() < down_until:
            self._release(client)
            self.stats_counters.add("fast_failures")
            raise _Unavailable(f"down ({last_failure})")
        try:
            client.connect()
        except ThriftClientError as e:
            with self._cond:
                self._down_until = time.monotonic() + self.retry_interval
                self._last_failure = e.description
            self._release(client)
            self.stats_counters.add("connect_failures")
            raise _Unavailable(e.description) from None
        self.stats_counters.add("connects")
        return client

    def _release(self, client: ThriftClient) -> None:
        with self._cond:
            self._in_use -= 1
            if self._closed:
                client.close()
            else:
                self._idle.append(client)
            self._cond.notify()

    def _call(self, name: str, fn: Callable[[ThriftClient], T]) -> T:
        """Run one client call with a pooled client; raises on failure."""
        self.stats_counters.add("calls")
        client = self._acquire()
        try:
            with timed(self.stats_counters, "call_usecs"):
                return fn(client)
        except ThriftConnectionError:
            client.close()
            raise
        finally:
            self._release(client)

    def _fail(self, e: Exception, call: str) -> Error:
        self.stats_counters.add("call_errors")
        if isinstance(e, ThriftClientError):
            desc, recoverable = e.description, e.recoverable
        elif isinstance(e, _Unavailable):
            desc, recoverable = str(e), True
        else:  # a decoding bug or a malformed reply
            log.exception("remote store %s: %s failed", self.address, call)
            desc, recoverable = f"{call}: {type(e).__name__}: {e}", True
        return Error(f"{self.address}: {desc}", recoverable)

    def _guard(self, call: str, fn: Callable[[ThriftClient], T], on_error: Callable[[Error], T]) -> T:
        try:
            return self._call(call, fn)
        except Exception as e:
            return on_error(self._fail(e, call))

    # -- the API -------------------------------------------------------------------------
    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        if not metadata_by_key:
            return {}
        skip_buffering = _forwarded_skip_buffering(skip_buffering)
        return self._guard(
            "update_metadata",
            lambda c: c.update_metadata(metadata_by_key, create_new, skip_existing, truncate_existing,
                                        skip_buffering, local_only=True),
            lambda err: {k: err for k in metadata_by_key})

    def delete_series(self, patterns: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        return self._guard("delete_series",
                           lambda c: c.delete_series(patterns, deferred, local_only=True),
                           lambda err: {p: DeleteResult(error=err) for p in patterns})

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        if not renames:
            return {}
        return self._guard("rename_series", lambda c: c.rename_series(renames, merge, local_only=True),
                           lambda err: {k: err for k in renames})

    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        if not points_by_key:
            return {}
        skip_buffering = _forwarded_skip_buffering(skip_buffering)
        errors = self._guard("write", lambda c: c.write(points_by_key, skip_buffering, local_only=True),
                             lambda err: {k: err for k in points_by_key})
        self.stats_counters.add_many({
            "write_batches": 1,
            "points_sent": sum(len(p) for k, p in points_by_key.items() if k not in errors),
            "write_errors": len(errors),
        })
        return errors

    def read(self, patterns: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        self.stats_counters.add("reads", len(patterns))
        return self._guard("read", lambda c: c.read(patterns, start, end, local_only=True),
                           lambda err: {p: {p: ReadResult(error=err)} for p in patterns})

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        return self._guard("read_all", lambda c: c.read_all(key, local_only=True),
                           lambda err: ReadAllResult(error=err))

    def find(self, patterns: list[str], local_only: bool = False) -> dict[str, FindResult]:
        return self._guard("find", lambda c: c.find(patterns, local_only=True),
                           lambda err: {p: FindResult(error=err) for p in patterns})

    # -- lifecycle -------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        with self._cond:
            self.stats_counters.set("connections_open",
                                    sum(c.connected for c in self._idle) + self._in_use)
            self.stats_counters.set("peer_down", int(time.monotonic() < self._down_until))
        return super().stats()

    def flush(self) -> None:
        return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for client in idle:
            client.close()


# -- config -------------------------------------------------------------------------------
def _build_remote(node: dict[str, Any], ctx: Any) -> Store:
    from cyclone.config import ConfigError

    try:
        return RemoteStore(node["hostname"], node["port"], node["connection_limit"], node["timeout"])
    except ValueError as e:
        raise ConfigError(f"remote store {node['hostname']}:{node['port']}: {e}") from None


def _register() -> None:
    from cyclone.store.factory import REQUIRED, register_store_type

    register_store_type("remote", {
        "hostname": ("str", REQUIRED, False),
        "port": ("int", REQUIRED, False),
        "connection_limit": ("int", 8, True),
        "timeout": ("number", 10, True),
    }, _build_remote)


_register()
