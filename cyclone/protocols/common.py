"""Shared plumbing of the listeners: listen addresses, the ingest pipeline, backpressure.

This module owns:

* `listen_stream` / `listen_datagram`: open a listener for one configured
  address (an int port on all interfaces, "addr:port", or a unix socket
  path) and turn failures into `ListenError` with a clear message.
* `RateLimitedLog`: logs bad input at most a few times per interval and
  says how many messages it suppressed.
* `decode_keys`: the key column as str, with the keys that are not UTF-8.
* `IngestPipeline`: the single path from the line/UDP/pickle parsers into
  the store. Parsers `submit` columns on the reactor; one store-pool task
  at a time takes everything queued and hands it to `store.write_columns`
  (the write buffer appends the columns as they are, with no object per
  series), so batches are large and the order of points is kept. It also
  owns backpressure: stream transports register with it, and while the
  write buffer is over its limit (or the pipeline's own queue is too
  long) they are paused with `pauseProducing()` and resumed when the
  buffer drains.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import time
from typing import Any, Sequence

import numpy as np

from twisted.internet.protocol import Protocol

from cyclone.series import drop_rows
from cyclone.stats import Counters

log = logging.getLogger(__name__)

#: the pipeline pauses stream sockets when this many parsed points wait for the store
MAX_PENDING_POINTS = 2_000_000
#: points per store.write call from the pipeline (bounds transient per-series objects)
WRITE_CHUNK = 16_384


class ListenError(Exception):
    """A listener could not be opened; the message says which and why."""


def parse_listen(spec: int | str) -> tuple[str, Any]:
    """("tcp", (interface, port)) or ("unix", path) for one configured address."""
    if isinstance(spec, int):
        return "tcp", ("", spec)
    if "/" in spec:
        return "unix", spec
    host, _, port = spec.rpartition(":")
    host = host.strip("[]")
    return "tcp", (host, int(port))


def describe_listen(spec: int | str) -> str:
    kind, where = parse_listen(spec)
    if kind == "unix":
        return f"unix:{where}"
    host, port = where
    return f"{host or '*'}:{port}"


def _clear_stale_unix_socket(path: str, stream: bool) -> None:
    """Remove a socket file left by a dead process (a live one keeps it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ListenError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM if stream else socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError:
        pass
    else:
        raise ListenError(f"{path}: another process is listening on this socket")
    finally:
        probe.close()


def _listen(spec: int | str, what: str, open_unix: Any, open_inet: Any) -> Any:
    """Open one listening port (`open_unix(path)` or `open_inet(host, port)`),
    turning failures into ListenError; logs where it listens."""
    from twisted.internet.error import CannotListenError

    kind, where = parse_listen(spec)
    try:
        port = open_unix(where) if kind == "unix" else open_inet(*where)
    except CannotListenError as e:
        raise ListenError(f"cannot listen for {what} on {describe_listen(spec)}: "
                          f"{_reason(e)}") from None
    except OSError as e:
        raise ListenError(f"cannot listen for {what} on {describe_listen(spec)}: {e}") from None
    log.info("listening for %s on %s", what, describe_port(port, spec))
    return port


def listen_stream(reactor: Any, spec: int | str, factory: Any, what: str) -> Any:
    """Listen for stream connections on one address; raises ListenError."""

    def unix(path: str) -> Any:
        _clear_stale_unix_socket(path, stream=True)
        return reactor.listenUNIX(path, factory)

    return _listen(spec, what, unix,
                   lambda host, portnum: reactor.listenTCP(portnum, factory, backlog=1024, interface=host))


def listen_datagram(reactor: Any, spec: int | str, protocol: Any, what: str) -> Any:
    """Listen for datagrams on one address; raises ListenError."""

    def unix(path: str) -> Any:
        _clear_stale_unix_socket(path, stream=False)
        return reactor.listenUNIXDatagram(path, protocol)

    def inet(host: str, portnum: int) -> Any:
        port = reactor.listenUDP(portnum, protocol, interface=host, maxPacketSize=65536)
        try:  # a bigger kernel buffer rides out bursts while the reactor is busy
            port.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        except OSError:
            pass
        return port

    return _listen(spec, what, unix, inet)


def describe_port(port: Any, spec: int | str | None = None) -> str:
    try:
        addr = port.getHost()
    except Exception:
        return describe_listen(spec) if spec is not None else repr(port)
    if hasattr(addr, "port"):
        return f"{addr.host or '*'}:{addr.port}"
    return f"unix:{getattr(addr, 'name', spec)}"


def _reason(e: Exception) -> str:
    inner = getattr(e, "socketError", None)
    if isinstance(inner, OSError):
        if inner.errno == errno.EADDRINUSE:
            return "address already in use (is another server running?)"
        if inner.errno == errno.EACCES:
            return "permission denied (ports below 1024 need privileges)"
        return inner.strerror or str(inner)
    if inner is not None:
        return str(inner)
    return str(e)


class IngestStreamProtocol(Protocol):
    """What the line and pickle stream connections share: the peer's name,
    connection counters, backpressure (the ingest pipeline pauses and resumes
    it) and shutdown tracking. Subclasses set `ctx` and `counters`."""

    ctx: Any
    counters: Counters

    def __init__(self) -> None:
        self.peer = "?"
        self.last_data = time.monotonic()

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', 'unix')}:{getattr(peer, 'port', '')}"
        self.counters.add_many({"connections": 1, "connections_open": 1})
        self.ctx.ingest.register_producer(self, self.counters)
        self.ctx.track_connection(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.counters.add("connections_open", -1)
        self.ctx.ingest.unregister_producer(self)
        self.ctx.untrack_connection(self)


class RateLimitedLog:
    """At most `burst` messages per `interval` seconds; reports what it dropped."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING,
                 burst: int = 5, interval: float = 10.0) -> None:
        self.logger = logger
        self.level = level
        self.burst = burst
        self.interval = interval
        self._window_start = 0.0
        self._count = 0
        self._suppressed = 0

    def __call__(self, msg: str, *args: Any) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        now = time.monotonic()
        if now - self._window_start >= self.interval:
            if self._suppressed:
                self.logger.log(self.level, "(%d similar messages suppressed in the last %.0f s)",
                                self._suppressed, now - self._window_start)
            self._window_start = now
            self._count = 0
            self._suppressed = 0
        if self._count < self.burst:
            self._count += 1
            self.logger.log(self.level, msg, *args)
        else:
            self._suppressed += 1


def shorten(data: bytes | str, limit: int = 200) -> str:
    """A printable, bounded rendering of bad input for logs."""
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")


# -- keys ---------------------------------------------------------------------
def decode_keys(keys: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Keys as str (None where a key is not valid UTF-8 or not a string), and the bad raw keys."""
    kinds = set(map(type, keys))
    if kinds == {str}:
        return keys if isinstance(keys, list) else list(keys), []
    if kinds == {bytes}:
        try:  # one C-level decode for the whole column
            out = b"\n".join(keys).decode("utf-8").split("\n")
            if len(out) == len(keys):
                return out, []
        except UnicodeDecodeError:
            pass
    out = []
    bad = []
    for raw in keys:
        key = _decode(raw)
        if key is None:
            bad.append(raw)
        out.append(key)
    return out, bad


def _decode(raw: Any) -> str | None:
    if type(raw) is str:
        return raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


# -- the ingest pipeline --------------------------------------------------------
class _Submission:
    __slots__ = ("keys", "ts", "vals", "counters")

    def __init__(self, keys: Sequence[Any], ts: np.ndarray, vals: np.ndarray,
                 counters: Counters | None) -> None:
        self.keys = keys
        self.ts = ts
        self.vals = vals
        self.counters = counters


class IngestPipeline:
    """Parsed points -> one serial store writer; backpressure for stream sockets.

    Everything except `_write` runs on the reactor thread.
    """

    def __init__(self, ctx: Any, max_pending_points: int = MAX_PENDING_POINTS) -> None:
        self.ctx = ctx
        self.counters = ctx.stats.group("ingest")
        self.max_pending_points = max_pending_points
        self._pending: list[_Submission] = []
        self._pending_points = 0
        self._in_flight_points = 0
        self._running = False
        self._idle_waiters: list[Any] = []
        self._bad_log = RateLimitedLog(log, logging.WARNING)
        # backpressure
        self._producers: dict[Any, Counters] = {}
        self._paused = False
        self._draining = False  # shutdown: never pause again
        self._write_buffers: list[Any] | None = None
        self._resume_check: Any = None

    # -- submission ---------------------------------------------------------
    def submit(self, keys: Sequence[Any], ts: np.ndarray, vals: np.ndarray,
               counters: Counters | None = None) -> None:
        """Queue parsed points (reactor thread). Columns must not be mutated later."""
        n = len(keys)
        if not n:
            return
        self._pending.append(_Submission(keys, ts, vals, counters))
        self._pending_points += n
        if not self._running:
            self._start()
        self._check_pressure()

    @property
    def queued_points(self) -> int:
        return self._pending_points + self._in_flight_points

    def _start(self) -> None:
        subs, self._pending = self._pending, []
        self._in_flight_points, self._pending_points = self._pending_points, 0
        self._running = True
        d = self.ctx.call_store(self._write, subs)
        d.addCallbacks(self._written, self._write_failed)

    def _write(self, subs: list[_Submission]) -> dict[str, Any]:
        """Store-pool thread: write everything queued as columns, WRITE_CHUNK points per call,
        keeping the order of points."""
        if len(subs) == 1:
            keys: Sequence[Any] = subs[0].keys
            ts, vals = subs[0].ts, subs[0].vals
        else:
            keys = _concat_lists([s.keys for s in subs])
            ts = np.concatenate([s.ts for s in subs])
            vals = np.concatenate([s.vals for s in subs])
        n = len(keys)
        skeys, bad = decode_keys(keys)
        undecodable = bad_keys = 0
        if bad:
            bad_keys = len(set(bad))
            skeys, ts, vals = drop_rows(skeys, ts, vals, (None,))
            undecodable = n - len(skeys)
        errors: dict[str, Any] = {}
        refused_points = invalid = 0
        for start in range(0, len(skeys), WRITE_CHUNK):
            end = start + WRITE_CHUNK
            chunk_keys = skeys[start:end]
            chunk_errors = self.ctx.store.write_columns(chunk_keys, ts[start:end], vals[start:end])
            if chunk_errors:
                refused_points += sum(1 for key in chunk_keys if key in chunk_errors)
                for key, err in chunk_errors.items():
                    if key not in errors and "invalid key" in err.description:
                        invalid += 1
                    errors[key] = err
        return {"points": n, "undecodable": undecodable, "bad_raw": bad[:3], "bad_keys": bad_keys,
                "errors": errors, "refused_points": refused_points, "invalid": invalid}

    def _written(self, result: dict[str, Any]) -> None:
        errors = result["errors"]
        refused = result["refused_points"] + result["undecodable"]
        self.counters.add_many({
            "batches": 1,
            "points_written": result["points"] - refused,
            "points_refused": refused,
            "keys_refused": len(errors) + result["bad_keys"],
            "invalid_keys": result["invalid"] + result["bad_keys"],
        })
        if result["bad_raw"]:
            self._bad_log("ingest: refused %d points with keys that are not UTF-8 (e.g. %s)",
                          result["undecodable"], shorten(result["bad_raw"][0]))
        if errors:
            key, err = next(iter(errors.items()))
            self._bad_log("ingest: store refused %d series (%d points), e.g. %s: %s",
                          len(errors), result["refused_points"], shorten(key, 120), err)
        self._finish()

    def _write_failed(self, failure: Any) -> None:
        self.counters.add_many({"write_failures": 1, "points_refused": self._in_flight_points})
        log.error("ingest: store write failed, %d points lost: %s", self._in_flight_points,
                  failure.getTraceback())
        self._finish()

    def _finish(self) -> None:
        self._running = False
        self._in_flight_points = 0
        if self._pending:
            self._start()
        else:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)
        self._check_pressure()

    def wait_idle(self) -> Any:
        """Deferred firing when every submitted point has been handed to the store."""
        from twisted.internet import defer

        if not self._running and not self._pending:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle_waiters.append(d)
        return d

    # -- backpressure -------------------------------------------------------------
    def register_producer(self, proto: Any, counters: Counters) -> None:
        """A stream protocol whose transport may be paused under pressure."""
        self._producers[proto] = counters
        if self._paused and not self._draining:
            self._pause_one(proto, counters)

    def unregister_producer(self, proto: Any) -> None:
        self._producers.pop(proto, None)

    def write_buffers(self) -> list[Any]:
        if self._write_buffers is None:
            from cyclone.store.write_buffer import WriteBufferStore

            self._write_buffers = [s for s in self.ctx.store.walk() if isinstance(s, WriteBufferStore)]
            reactor = self.ctx.reactor
            for wb in self._write_buffers:
                wb.add_drain_listener(lambda: reactor.callFromThread(self._check_pressure))
        return self._write_buffers

    def over_limit(self) -> bool:
        if self.queued_points > self.max_pending_points:
            return True
        return any(wb.is_over_limit() for wb in self.write_buffers())

    @property
    def paused(self) -> bool:
        return self._paused

    def _check_pressure(self) -> None:
        if self._draining:
            return
        over = self.over_limit()
        if over and not self._paused:
            self._paused = True
            self.counters.add("backpressure_pauses")
            log.info("ingest: write buffer over its limit, pausing %d stream connections",
                     len(self._producers))
            for proto, counters in list(self._producers.items()):
                self._pause_one(proto, counters)
            self._start_resume_check()
        elif not over and self._paused:
            self._resume_all()

    def _pause_one(self, proto: Any, counters: Counters) -> None:
        transport = getattr(proto, "transport", None)
        if transport is not None and not getattr(proto, "_bp_paused", False):
            proto._bp_paused = True
            transport.pauseProducing()
            counters.add("paused")

    def _resume_all(self) -> None:
        self._paused = False
        self._stop_resume_check()
        self.counters.add("backpressure_resumes")
        log.info("ingest: write buffer drained, resuming %d stream connections", len(self._producers))
        for proto in list(self._producers):
            if getattr(proto, "_bp_paused", False):
                proto._bp_paused = False
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.resumeProducing()

    def _start_resume_check(self) -> None:
        # drain listeners fire per flush cycle; poll as well in case no cycle runs
        from twisted.internet.task import LoopingCall

        if self._resume_check is None:
            self._resume_check = LoopingCall(self._check_pressure)
            self._resume_check.clock = self.ctx.reactor
            self._resume_check.start(0.2, now=False)

    def _stop_resume_check(self) -> None:
        if self._resume_check is not None:
            if self._resume_check.running:
                self._resume_check.stop()
            self._resume_check = None

    def begin_drain(self) -> None:
        """Shutdown: resume every paused transport and never pause again."""
        self._draining = True
        if self._paused:
            self._resume_all()
        self._stop_resume_check()


def _concat_lists(lists: list[Sequence[Any]]) -> list[Any]:
    out: list[Any] = []
    for part in lists:
        out.extend(part)
    return out
