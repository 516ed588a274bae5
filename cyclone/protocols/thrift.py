"""The Thrift service `Cyclone` (framed transport, binary protocol), server side.

Wire: each request is a 4-byte big-endian length + one TBinaryProtocol
message; the reply is framed the same way. `ThriftProtocol` (on the reactor)
only splits frames; every frame is decoded, executed against the store and
encoded on the server's thread pool (`ctx.call_store`), so the reactor never
blocks on a store call. Requests on one connection are answered in order,
one at a time; a connection with many queued frames stops being read until
it catches up.

`CycloneProcessor` is the generated `cyclone_if.Cyclone.Processor` plus:
- fast paths through the numpy codec in `cyclone.thrift_convert` (no Python
  object per point) for `write` arguments and replies and `read`/`read_all`
  replies; a big read reply is framed in one join and handed to the
  transport as one bytes object (no further copy). Anything the fast
  decoder does not expect is handed to the generated code;
- errors per request, never per process: a frame whose arguments cannot be
  decoded gets a TApplicationException(PROTOCOL_ERROR) reply (if its header
  could be read; otherwise the connection is closed), a frame over the size
  limit closes its connection, and all of them are counted.

`CycloneHandler` implements the methods over `ctx.store`: per-key errors
come back in the result maps (every key of a write/update/rename gets an
Error, empty on success, as the original server did). `stats` returns the
server's counters, this module's counters (`thrift.*`) and the store tree's
counters (`store.<position>.*`). The verify and read-from-all methods go to
the server's hooks `ctx.verify` and `ctx.read_from_all`; without a hash
store in the tree they are None: verify cannot start (`start_verify` is
false), `get_verify_status` is `{"hash_store_configured": 0}` and
read-from-all stays off. With one, the status map also has
`hash_store_configured: 1`.
"""

from __future__ import annotations

import collections
import logging
import struct
import time
from typing import Any, Callable, Iterable

from thrift.protocol import TBinaryProtocol
from thrift.protocol.TProtocol import TProtocolException
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import TTransport
from twisted.internet import protocol

from cyclone import thrift_convert as C
from cyclone.protocols.common import listen_stream
from cyclone.series import CycloneError, DeleteResult, Error, FindResult, ReadAllResult, ReadResult
from cyclone.stats import Counters
from cyclone_if import Cyclone
from cyclone_if import ttypes as T

log = logging.getLogger(__name__)

#: Largest request frame accepted; a bigger length prefix closes the connection.
DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024
#: Frames queued on one connection before it stops being read.
MAX_QUEUED_FRAMES = 8

_FRAME = struct.Struct("!I")


# ---------------------------------------------------------------- handler
class CycloneHandler:
    """The `Cyclone` service over a store tree; every call runs on a pool thread.

    Methods named like the IDL take and return Thrift types (the generated
    processor calls them); the `*_native` methods take and return
    `cyclone.series` types (the fast paths call them).
    """

    def __init__(self, ctx: Any, counters: Counters) -> None:
        self.ctx = ctx
        self.counters = counters

    @property
    def store(self) -> Any:
        return self.ctx.store

    def _store_failed(self, call: str, e: Exception) -> Error:
        """The Error for every key of a store call that raised instead of returning one."""
        self.counters.add("store_exceptions")
        if isinstance(e, CycloneError):
            return e.to_error()
        log.exception("thrift %s: the store raised", call)
        return Error(f"{call} failed in the store: {type(e).__name__}: {e}", recoverable=True)

    def _per_item(self, call: str, items: list[str], fn: Callable[[list[str]], dict],
                  on_error: Callable[[str, Error], Any]) -> dict:
        """fn(items); if the store raises, fn([item]) one at a time so that one bad
        item (a pattern the store chokes on) fails alone."""
        try:
            return fn(items)
        except Exception as e:
            if len(items) == 1:
                return {items[0]: on_error(items[0], self._store_failed(call, e))}
        out: dict = {}
        for item in items:
            try:
                out.update(fn([item]))
            except Exception as e:
                out[item] = on_error(item, self._store_failed(call, e))
        return out

    # -- write commands --------------------------------------------------------
    def update_metadata(self, metadata, create_new=True, skip_existing_series=False,
                        truncate_existing_series=False, skip_buffering=False,
                        local_only=False) -> dict[str, T.Error]:
        md, errors = C.metadata_map_from_thrift(metadata)
        if md:
            try:
                errors.update(self.store.update_metadata(
                    md, bool(create_new), bool(skip_existing_series), bool(truncate_existing_series),
                    bool(skip_buffering), bool(local_only)))
            except Exception as e:
                err = self._store_failed("update_metadata", e)
                errors.update({k: err for k in md})
        return C.errors_to_thrift(errors, (metadata or {}).keys())

    def delete_series(self, patterns, deferred=False, local_only=False) -> dict[str, T.DeleteResult]:
        patterns = list(patterns or [])
        if not patterns:
            return {}
        results = self._per_item(
            "delete_series", patterns,
            lambda ps: self.store.delete_series(ps, bool(deferred), bool(local_only)),
            lambda p, err: DeleteResult(error=err))
        return C.delete_results_to_thrift(results)

    def rename_series(self, renames, merge=False, local_only=False) -> dict[str, T.Error]:
        renames = dict(renames or {})
        errors: dict[str, Error] = {}
        if renames:
            try:
                errors = self.store.rename_series(renames, bool(merge), bool(local_only))
            except Exception as e:
                err = self._store_failed("rename_series", e)
                errors = {k: err for k in renames}
        return C.errors_to_thrift(errors, renames.keys())

    def write(self, data, skip_buffering=False, local_only=False) -> dict[str, T.Error]:
        points, errors = C.points_map_from_thrift(data)
        errors.update(self.write_native(points, bool(skip_buffering), bool(local_only)))
        return C.errors_to_thrift(errors, (data or {}).keys())

    def write_native(self, points_by_key, skip_buffering: bool, local_only: bool) -> dict[str, Error]:
        if not points_by_key:
            return {}
        self.counters.add("points_received", sum(len(p.timestamps) for p in points_by_key.values()))
        try:
            return self.store.write(points_by_key, skip_buffering, local_only)
        except Exception as e:
            err = self._store_failed("write", e)
            return {k: err for k in points_by_key}

    # -- read commands -----------------------------------------------------------
    def read(self, targets, start_time, end_time, local_only=False) -> dict[str, dict[str, T.ReadResult]]:
        return C.read_results_to_thrift(self.read_native(targets, start_time, end_time, bool(local_only)))

    def read_native(self, targets, start_time, end_time, local_only: bool) -> dict[str, dict[str, ReadResult]]:
        targets = list(targets or [])
        if not targets:
            return {}
        if not isinstance(start_time, int) or not isinstance(end_time, int):
            err = Error("read: start_time and end_time are required (i64 Unix seconds)")
            return {t: {t: ReadResult(error=err)} for t in targets}
        return self._per_item(
            "read", targets, lambda ts: self.store.read(ts, start_time, end_time, local_only),
            lambda t, err: {t: ReadResult(error=err)})

    def read_all(self, series, local_only=False) -> T.ReadAllResult:
        return C.read_all_result_to_thrift(self.read_all_native(series, bool(local_only)))

    def read_all_native(self, series, local_only: bool) -> ReadAllResult:
        if not isinstance(series, str):
            return ReadAllResult(error=Error("read_all: series (a key) is required"))
        try:
            return self.store.read_all(series, local_only)
        except Exception as e:
            return ReadAllResult(error=self._store_failed("read_all", e))

    def find(self, patterns, local_only=False) -> dict[str, T.FindResult]:
        patterns = list(patterns or [])
        if not patterns:
            return {}
        results = self._per_item("find", patterns, lambda ps: self.store.find(ps, bool(local_only)),
                                 lambda p, err: FindResult(error=err))
        return C.find_results_to_thrift(results)

    def stats(self) -> dict[str, int]:
        return C.stats_to_thrift(collect_stats(self.ctx))

    # -- administration ------------------------------------------------------------
    # The server's hooks (see cyclone.server.ServerContext): `ctx.verify` and
    # `ctx.read_from_all` are None unless the tree has a hash store.
    def get_verify_status(self) -> dict[str, int]:
        verify = getattr(self.ctx, "verify", None)
        if verify is None:
            return {"hash_store_configured": 0}
        status = C.stats_to_thrift(verify.get_verify_status() or {})
        status["hash_store_configured"] = 1
        return status

    def start_verify(self, repair) -> bool:
        verify = getattr(self.ctx, "verify", None)
        return bool(verify.start_verify(bool(repair))) if verify is not None else False

    def cancel_verify(self) -> bool:
        verify = getattr(self.ctx, "verify", None)
        return bool(verify.cancel_verify()) if verify is not None else False

    def get_read_from_all(self) -> bool:
        rfa = getattr(self.ctx, "read_from_all", None)
        return bool(rfa.get_read_from_all()) if rfa is not None else False

    def set_read_from_all(self, read_from_all) -> bool:
        rfa = getattr(self.ctx, "read_from_all", None)
        return bool(rfa.set_read_from_all(bool(read_from_all))) if rfa is not None else False


# ---------------------------------------------------------------- stats
def collect_stats(ctx: Any) -> dict[str, Any]:
    """What `stats` returns, the same collection as the shell's `stats` and /y/stats:
    the server's counters (`ctx.stats`, including `thrift.*`), process stats,
    every store's counters (`store.<position>.*`) and the verify status."""
    from cyclone import stats as cstats

    registry = getattr(ctx, "stats", None)
    server = registry.snapshot() if registry is not None and hasattr(registry, "snapshot") else {}
    verify_status = None
    verify = getattr(ctx, "verify", None)
    if verify is not None:
        try:
            verify_status = verify.get_verify_status()
        except Exception:
            log.exception("verify status failed")
    return cstats.collect_all(server, ctx.store, getattr(ctx, "started_at", time.time()), verify_status)


# ---------------------------------------------------------------- processor
#: what decoding a malformed request raises (generated code, fastbinary, transports)
_DECODE_ERRORS = (TProtocolException, TTransport.TTransportException, EOFError, UnicodeDecodeError,
                  struct.error, ValueError, TypeError, OverflowError, MemoryError, KeyError, AttributeError,
                  IndexError)

class CycloneProcessor(Cyclone.Processor):
    """The generated processor with numpy fast paths and per-request error handling."""

    def __init__(self, handler: CycloneHandler, counters: Counters) -> None:
        super().__init__(handler)
        self.counters = counters
        self.native = handler

    def process_frame(self, frame: bytes) -> bytes | None:
        """One request frame -> the framed reply (4-byte length + payload; b"" for a
        oneway call), or None to close the connection (the message header itself is
        unreadable). A big reply is built in one piece, so the transport sends it
        without another copy."""
        reply = self._process(frame)
        if reply is None or isinstance(reply, bytes):
            return _frame(reply) if reply else reply
        return reply.framed

    def _process(self, frame: bytes) -> "bytes | _Framed | None":
        itrans = TTransport.TMemoryBuffer(frame)
        iprot = TBinaryProtocol.TBinaryProtocolAccelerated(itrans)
        otrans = TTransport.TMemoryBuffer()
        oprot = TBinaryProtocol.TBinaryProtocolAccelerated(otrans)
        try:
            name, mtype, seqid = iprot.readMessageBegin()
        except Exception as e:
            self.counters.add("protocol_errors")
            _log_limited("thrift: unreadable message header, closing the connection: %s", e)
            return None
        if mtype not in (TMessageType.CALL, TMessageType.ONEWAY):
            self.counters.add("protocol_errors")
            return self._exception(name, seqid, TApplicationException.INVALID_MESSAGE_TYPE,
                                   f"expected a call, got message type {mtype}")
        t0 = time.perf_counter()
        reply: _Framed | None = None
        try:
            if name == "write":
                self._process_write_fast(seqid, frame, itrans, iprot, otrans, oprot)
            elif name == "read":
                reply = self._process_read_fast(seqid, iprot, oprot)
            elif name == "read_all":
                self._process_read_all_fast(seqid, iprot, otrans, oprot)
            elif name in self._processMap:
                self._processMap[name](self, seqid, iprot, oprot)
            else:
                self.counters.add("unknown_methods")
                return self._exception(name, seqid, TApplicationException.UNKNOWN_METHOD,
                                       f"Unknown function {name}")
        except _DECODE_ERRORS as e:
            # the arguments could not be decoded (the handler's own errors are
            # caught inside the process_* methods)
            self.counters.add("protocol_errors")
            _log_limited("thrift %s: bad request: %s: %s", name, type(e).__name__, e)
            return self._exception(name, seqid, TApplicationException.PROTOCOL_ERROR,
                                   f"{name}: cannot decode the request: {type(e).__name__}: {e}")
        except Exception:
            log.exception("thrift %s: internal error", name)
            self.counters.add("internal_errors")
            return self._exception(name, seqid, TApplicationException.INTERNAL_ERROR, "Internal error")
        self.counters.add_many({f"{name}_calls": 1, f"{name}_usecs": int((time.perf_counter() - t0) * 1e6)})
        if mtype != TMessageType.CALL:
            return b""
        return reply if reply is not None else otrans.getvalue()

    def _exception(self, name: str, seqid: int, kind: int, message: str) -> bytes:
        otrans = TTransport.TMemoryBuffer()
        oprot = TBinaryProtocol.TBinaryProtocolAccelerated(otrans)
        oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
        TApplicationException(kind, message).write(oprot)
        oprot.writeMessageEnd()
        return otrans.getvalue()

    def _reply_raw(self, name: str, seqid: int, otrans: TTransport.TMemoryBuffer,
                   oprot: TBinaryProtocol.TBinaryProtocol, body: bytes) -> None:
        oprot.writeMessageBegin(name, TMessageType.REPLY, seqid)
        otrans.write(body)
        oprot.writeMessageEnd()

    def _reply_internal_error(self, name: str, seqid: int, oprot) -> None:
        log.exception("thrift %s: unexpected exception in handler", name)
        self.counters.add("internal_errors")
        oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
        TApplicationException(TApplicationException.INTERNAL_ERROR, "Internal error").write(oprot)
        oprot.writeMessageEnd()

    def _process_write_fast(self, seqid, frame, itrans, iprot, otrans, oprot) -> None:
        buf = itrans.cstringio_buf
        pos = buf.tell()
        try:
            points, skip_buffering, local_only = C.decode_write_args(frame, pos)
        except C.NotCanonical:
            self.counters.add("slow_path_decodes")
            buf.seek(pos)
            self.process_write(seqid, iprot, oprot)
            return
        try:
            body = C.encode_errors_success(self.native.write_native(points, skip_buffering, local_only),
                                           points.keys())
        except Exception:
            self._reply_internal_error("write", seqid, oprot)
            return
        self._reply_raw("write", seqid, otrans, oprot, body)

    def _process_read_fast(self, seqid, iprot, oprot) -> "_Framed | None":
        """The whole framed reply (built in one join: replies can be hundreds of MB),
        or None if an exception reply was written to oprot instead."""
        args = Cyclone.read_args()
        args.read(iprot)
        iprot.readMessageEnd()
        try:
            results = self.native.read_native(args.targets, args.start_time, args.end_time,
                                              bool(args.local_only))
            htrans = TTransport.TMemoryBuffer()
            TBinaryProtocol.TBinaryProtocolAccelerated(htrans).writeMessageBegin(
                "read", TMessageType.REPLY, seqid)
            chunks = [htrans.getvalue(), *C.read_success_chunks(results)]
            return _Framed(b"".join([_FRAME.pack(sum(map(len, chunks))), *chunks]))
        except Exception:
            self._reply_internal_error("read", seqid, oprot)
            return None

    def _process_read_all_fast(self, seqid, iprot, otrans, oprot) -> None:
        args = Cyclone.read_all_args()
        args.read(iprot)
        iprot.readMessageEnd()
        try:
            body = C.encode_read_all_success(self.native.read_all_native(args.series, bool(args.local_only)))
        except Exception:
            self._reply_internal_error("read_all", seqid, oprot)
            return
        self._reply_raw("read_all", seqid, otrans, oprot, body)


class _Framed:
    """A reply that already carries its frame length."""

    __slots__ = ("framed",)

    def __init__(self, framed: bytes) -> None:
        self.framed = framed


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload)) + payload


_last_log = [0.0, 0]


def _log_limited(msg: str, *args: Any) -> None:
    """log.warning at most ~10 times per 10 s (bad clients must not flood the log)."""
    now = time.monotonic()
    if now - _last_log[0] > 10:
        _last_log[0] = now
        _last_log[1] = 0
    _last_log[1] += 1
    if _last_log[1] <= 10:
        log.warning(msg, *args)


# ---------------------------------------------------------------- Twisted side
class ThriftProtocol(protocol.Protocol):
    """Splits a connection into frames and answers them in order on the thread pool."""

    factory: "ThriftFactory"

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._have = 0
        self._need: int | None = None  # payload length of the frame being received
        self._queue: collections.deque[bytes] = collections.deque()
        self._busy = False
        self._paused = False
        self._closed = False

    def connectionMade(self) -> None:
        self.factory.connections_open += 1
        self.factory.counters.add_many({"connections": 1, "connections_open": 1})

    def connectionLost(self, reason: Any = None) -> None:
        self._closed = True
        self._queue.clear()
        self._chunks = []
        self.factory.connections_open -= 1
        self.factory.counters.add("connections_open", -1)

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._chunks.append(data)
        self._have += len(data)
        while not self._closed:
            if self._need is None:
                if self._have < 4:
                    return
                head = self._joined()
                (n,) = _FRAME.unpack_from(head, 0)
                if n > self.factory.max_frame_bytes:
                    self.factory.counters.add("frames_too_large")
                    _log_limited("thrift: frame of %d bytes from %s exceeds the limit of %d; closing",
                                 n, self.transport.getPeer(), self.factory.max_frame_bytes)
                    self._abort()
                    return
                self._need = n
                self._chunks = [head[4:]] if len(head) > 4 else []
                self._have -= 4
            if self._have < self._need:
                return
            buf = self._joined()
            frame, rest = buf[:self._need], buf[self._need:]
            self._chunks = [rest] if rest else []
            self._have = len(rest)
            self._need = None
            self._queue.append(frame)
            self._pump()

    def _joined(self) -> bytes:
        if len(self._chunks) != 1:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0]

    def _abort(self) -> None:
        self._closed = True
        self._queue.clear()
        self._chunks = []
        self.transport.loseConnection()

    def _pump(self) -> None:
        if len(self._queue) >= MAX_QUEUED_FRAMES and not self._paused:
            self._paused = True
            self.transport.pauseProducing()
        if self._busy or not self._queue or self._closed:
            if not self._queue and self._paused and not self._closed:
                self._paused = False
                self.transport.resumeProducing()
            return
        frame = self._queue.popleft()
        self._busy = True
        self.factory.counters.add("requests")
        d = self.factory.call(self.factory.processor.process_frame, frame)
        d.addCallbacks(self._replied, self._failed)

    def _replied(self, reply: bytes | None) -> None:
        self._busy = False
        if self._closed:
            return
        if reply is None:
            self._abort()
            return
        if reply:
            self.transport.write(reply)  # one bytes object: Twisted sends it without copying
        self._pump()

    def _failed(self, failure: Any) -> None:
        self._busy = False
        self.factory.counters.add("internal_errors")
        log.error("thrift: request processing failed: %s", failure.getTraceback())
        if not self._closed:
            self._abort()


#: The `thrift.*` counters (a group of the server's stats registry).
COUNTER_FIELDS = ("connections", "connections_open", "requests", "protocol_errors", "frames_too_large",
                  "unknown_methods", "internal_errors", "store_exceptions", "slow_path_decodes",
                  "points_received")


class ThriftFactory(protocol.ServerFactory):
    protocol = ThriftProtocol

    def __init__(self, ctx: Any, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.ctx = ctx
        registry = getattr(ctx, "stats", None)
        if registry is not None and hasattr(registry, "group"):
            self.counters = registry.group("thrift", COUNTER_FIELDS)
        else:
            self.counters = Counters("thrift", COUNTER_FIELDS)
        self.connections_open = 0
        self.max_frame_bytes = max_frame_bytes
        self.handler = CycloneHandler(ctx, self.counters)
        self.processor = CycloneProcessor(self.handler, self.counters)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) off the reactor; returns a Deferred."""
        call_store = getattr(self.ctx, "call_store", None)
        if call_store is not None:
            return call_store(fn, *args)
        from twisted.internet.threads import deferToThreadPool

        return deferToThreadPool(self.ctx.reactor, self.ctx.threadpool, fn, *args)


def start_listeners(ctx: Any) -> list[Any]:
    """Listen on `thrift_port` (a port, "addr:port" or unix path; a list of them
    is accepted too). Returns the listening ports."""
    spec = getattr(ctx.config, "thrift_port", None)
    specs: Iterable[Any] = spec if isinstance(spec, list) else ([] if spec in (None, "") else [spec])
    max_frame = getattr(ctx.config, "max_thrift_frame_bytes", None) or DEFAULT_MAX_FRAME_BYTES
    factory = ThriftFactory(ctx, max_frame)
    return [listen_stream(ctx.reactor, s, factory, "thrift") for s in specs]
