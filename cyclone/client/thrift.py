"""ThriftClient: the `Cyclone` Thrift service with cyclone.series types.

Framed transport, binary protocol, one persistent connection (reconnected
when the server went away). Method names and arguments follow the Store API
(`cyclone.store.base.Store`), so results look exactly like a local store's:

    from cyclone.client import ThriftClient
    from cyclone.series import ArchiveArg, Points, SeriesMetadata

    with ThriftClient("127.0.0.1", 2000) as c:
        c.update_metadata({"test.key": SeriesMetadata([ArchiveArg(10, 8640)], 0.0, 1)})
        errors = c.write({"test.key": Points([t0, t0 + 10], [1.0, 2.0])})   # {} = all written
        rr = c.read(["test.*"], t0 - 60, t0 + 60)["test.*"]["test.key"]      # dense ReadResult
        print(rr.start_time, rr.step, rr.values)                             # NaN = no data

Per-key problems come back in the result maps (`Error` objects; a write,
update or rename result lists only the keys that failed). A request the
server refuses as a whole raises `ThriftRequestError`; a server that cannot
be reached (after `retries` reconnects) raises `ThriftConnectionError`. Both
are `CycloneError`s, so `e.to_error()` gives a per-key `Error` (connection
errors are recoverable).

A client holds one connection; calls from several threads are serialised.
Use one client per thread (or a pool) for parallel requests.

Reconnects: before each call on a reused connection the client checks that
the server has not closed it; a call that fails on the wire is retried on a
new connection (`retries` times) unless it is not idempotent
(`rename_series`, `start_verify`, `cancel_verify`, `set_read_from_all`) and
the request may already have reached the server.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from typing import Any, Iterable, Mapping

from thrift.protocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TMessageType
from thrift.transport import TTransport

from cyclone import thrift_convert as C
from cyclone.series import (
    CycloneError,
    DeleteResult,
    Error,
    FindResult,
    Points,
    ReadAllResult,
    ReadResult,
    SeriesMetadata,
)
from cyclone_if import Cyclone

_FRAME = struct.Struct("!I")
_HEADER_PEEK = 4096

#: Calls that are not retried once the request may have reached the server.
NOT_IDEMPOTENT = frozenset({"rename_series", "start_verify", "cancel_verify", "set_read_from_all"})


class ThriftClientError(CycloneError):
    """Base of the errors a ThriftClient call raises."""


class ThriftRequestError(ThriftClientError):
    """The server answered with an exception (bad request, unknown method, internal error)."""

    def __init__(self, description: str, kind: int = 0) -> None:
        super().__init__(description, recoverable=kind == TApplicationException.INTERNAL_ERROR)
        self.kind = kind


class ThriftConnectionError(ThriftClientError, ConnectionError):
    """The server could not be reached or dropped the connection. Recoverable."""

    def __init__(self, description: str) -> None:
        ThriftClientError.__init__(self, description, recoverable=True)


def _as_points(value: Points | Iterable[tuple[int, float]]) -> Points:
    return value if isinstance(value, Points) else Points.from_pairs(value)


class ThriftClient:
    """A client of one Cyclone server's Thrift service.

    host/port: the server's `thrift_port` (or `unix_path` for a unix socket).
    timeout: seconds to wait for each reply (None = forever).
    connect_timeout: seconds to wait for a connection.
    retries: reconnect-and-retry attempts after a connection failure.
    max_frame_bytes: largest reply accepted (a bigger one closes the connection).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 2000, timeout: float | None = 60.0,
                 connect_timeout: float = 5.0, retries: int = 1, unix_path: str | None = None,
                 max_frame_bytes: int = 1 << 31) -> None:
        self.host = host
        self.port = port
        self.unix_path = unix_path
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.max_frame_bytes = max_frame_bytes
        self._sock: socket.socket | None = None
        self._fresh = False  # connected and not used yet
        self._seqid = 0
        self._lock = threading.Lock()
        self.reconnects = 0

    # -- connection ----------------------------------------------------------------
    def __repr__(self) -> str:
        where = self.unix_path or f"{self.host}:{self.port}"
        return f"ThriftClient({where})"

    def __enter__(self) -> "ThriftClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now (calls connect on demand anyway)."""
        with self._lock:
            self._ensure_connected()

    def close(self) -> None:
        """Close the connection; the next call reconnects."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def _ensure_connected(self) -> socket.socket:
        if self._sock is not None and not self._fresh and self._peer_closed(self._sock):
            self.close()
        if self._sock is None:
            try:
                if self.unix_path:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(self.connect_timeout)
                    sock.connect(self.unix_path)
                else:
                    sock = socket.create_connection((self.host, self.port), self.connect_timeout)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as e:
                raise ThriftConnectionError(f"cannot connect to {self!r}: {e}") from None
            sock.settimeout(self.timeout)
            self._sock = sock
            self._fresh = True
        return self._sock

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        """True if the server closed (or reset) an idle connection."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True

    def _recv_exactly(self, sock: socket.socket, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = sock.recv_into(view[got:], min(n - got, 1 << 22))
            if k == 0:
                raise ConnectionResetError("connection closed by the server")
            got += k
        return buf

    def _exchange(self, name: str, payload: bytes) -> bytearray:
        """Send one framed request and return the reply payload (with reconnects)."""
        attempts = 0
        while True:
            sock = self._ensure_connected()
            sent = False
            try:
                self._fresh = False
                if len(payload) < 65536:
                    sock.sendall(_FRAME.pack(len(payload)) + payload)
                else:
                    sock.sendall(_FRAME.pack(len(payload)))
                    sent = True
                    sock.sendall(payload)
                sent = True
                (n,) = _FRAME.unpack(self._recv_exactly(sock, 4))
                if n > self.max_frame_bytes:
                    self.close()
                    raise ThriftConnectionError(f"{self!r}: reply of {n} bytes exceeds max_frame_bytes")
                return self._recv_exactly(sock, n)
            except socket.timeout:
                self.close()
                raise ThriftConnectionError(f"{self!r}: {name} timed out after {self.timeout} s") from None
            except OSError as e:
                self.close()
                if attempts >= self.retries or (sent and name in NOT_IDEMPOTENT):
                    raise ThriftConnectionError(f"{self!r}: {name} failed: {e}") from None
                attempts += 1
                self.reconnects += 1

    # -- message plumbing ------------------------------------------------------------
    def _begin(self, name: str) -> tuple[TTransport.TMemoryBuffer, Any, int]:
        self._seqid = (self._seqid + 1) & 0x7FFFFFFF
        otrans = TTransport.TMemoryBuffer()
        oprot = TBinaryProtocol.TBinaryProtocolAccelerated(otrans)
        oprot.writeMessageBegin(name, TMessageType.CALL, self._seqid)
        return otrans, oprot, self._seqid

    def _open_reply(self, name: str, seqid: int, payload: bytearray) -> int:
        """Check the reply's message header; returns where the result struct starts.
        An exception reply raises ThriftRequestError."""
        # the header is small: parse it from a bounded copy (replies can be huge)
        itrans = TTransport.TMemoryBuffer(bytes(memoryview(payload)[:_HEADER_PEEK]))
        iprot = TBinaryProtocol.TBinaryProtocolAccelerated(itrans)
        try:
            fname, mtype, rseqid = iprot.readMessageBegin()
        except Exception as e:
            self.close()
            raise ThriftConnectionError(f"{self!r}: unreadable reply to {name}: {e}") from None
        if rseqid != seqid or fname != name:
            self.close()  # out of step with the server: start over on a new connection
            raise ThriftConnectionError(
                f"{self!r}: reply to {fname!r} #{rseqid} while waiting for {name!r} #{seqid}")
        pos = itrans.cstringio_buf.tell()
        if mtype == TMessageType.EXCEPTION:
            x = TApplicationException()
            try:
                x.read(self._protocol_at(payload, pos))
            except Exception as e:
                raise ThriftRequestError(f"{name}: undecodable server error: {e}") from None
            raise ThriftRequestError(f"{name}: server error: {x.message}", x.type or 0)
        return pos

    @staticmethod
    def _protocol_at(payload: bytearray, pos: int) -> Any:
        itrans = TTransport.TMemoryBuffer(bytes(payload))
        itrans.cstringio_buf.seek(pos)
        return TBinaryProtocol.TBinaryProtocolAccelerated(itrans)

    def _read_result(self, name: str, payload: bytearray, pos: int) -> Any:
        """Decode `<name>_result` with the generated code; its success value."""
        result = getattr(Cyclone, f"{name}_result")()
        try:
            result.read(self._protocol_at(payload, pos))
        except Exception as e:
            raise ThriftRequestError(f"{name}: undecodable reply: {type(e).__name__}: {e}") from None
        if result.success is None:
            raise ThriftRequestError(f"{name}: the server sent no result",
                                     TApplicationException.MISSING_RESULT)
        return result.success

    def _call(self, name: str, args: Any) -> Any:
        """Generic call: encode args with the generated code, decode `<name>_result`."""
        with self._lock:
            otrans, oprot, seqid = self._begin(name)
            args.write(oprot)
            oprot.writeMessageEnd()
            payload = self._exchange(name, otrans.getvalue())
            pos = self._open_reply(name, seqid, payload)
        return self._read_result(name, payload, pos)

    def _call_raw(self, name: str, body: bytes | None, args: Any, fast_decode: Any) -> Any:
        """Call with pre-encoded args (`body`, or `args` via the generated code) and a
        numpy reply decoder, falling back to the generated decoder. Returns
        (decoded, True) from the fast decoder or (success, False) from the generic one."""
        with self._lock:
            otrans, oprot, seqid = self._begin(name)
            if body is not None:
                otrans.write(body)
            else:
                args.write(oprot)
            oprot.writeMessageEnd()
            payload = self._exchange(name, otrans.getvalue())
            pos = self._open_reply(name, seqid, payload)
        try:
            return fast_decode(payload, pos), True
        except C.NotCanonical:
            return self._read_result(name, payload, pos), False

    # -- write commands ---------------------------------------------------------------
    def update_metadata(self, metadata_by_key: Mapping[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        """Create series or change their archives; returns {key: Error} for failed keys.

        Existing series: skip_existing leaves them alone, truncate_existing
        recreates them empty, neither resamples their data into the new layout.
        """
        args = Cyclone.update_metadata_args(
            metadata=C.metadata_map_to_thrift(metadata_by_key), create_new=create_new,
            skip_existing_series=skip_existing, truncate_existing_series=truncate_existing,
            skip_buffering=skip_buffering, local_only=local_only)
        return self._errors_call("update_metadata", None, args)

    def delete_series(self, patterns: Iterable[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        """Delete whole series by key or pattern ("a.**" = a subtree); counts per pattern."""
        args = Cyclone.delete_series_args(patterns=list(patterns), deferred=deferred, local_only=local_only)
        return C.delete_results_from_thrift(self._call("delete_series", args))

    def rename_series(self, renames: Mapping[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        """Rename series {old: new}; with merge, old's points go into an existing new."""
        args = Cyclone.rename_series_args(renames=dict(renames), merge=merge, local_only=local_only)
        return self._errors_call("rename_series", None, args)

    def write(self, points_by_key: Mapping[str, Points | Iterable[tuple[int, float]]],
              skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        """Write points ({key: Points or [(timestamp, value), ...]}); a NaN value
        deletes the point. Returns {key: Error} for the keys that failed."""
        pts = {key: _as_points(v) for key, v in points_by_key.items()}
        return self._errors_call("write", C.encode_write_args(pts, skip_buffering, local_only), None)

    def _errors_call(self, name: str, body: bytes | None, args: Any) -> dict[str, Error]:
        result, fast = self._call_raw(name, body, args, C.decode_errors_success)
        return result if fast else C.errors_from_thrift(result)

    # -- read commands -----------------------------------------------------------------
    def read(self, patterns: Iterable[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        """Read [start, end) (Unix seconds) for keys or patterns:
        {pattern: {key: ReadResult}} with dense values (NaN = no data)."""
        args = Cyclone.read_args(targets=list(patterns), start_time=int(start), end_time=int(end),
                                 local_only=local_only)
        result, fast = self._call_raw("read", None, args, C.decode_read_success)
        return result if fast else C.read_results_from_thrift(result)

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        """Metadata and every stored point of one series (not a pattern)."""
        args = Cyclone.read_all_args(series=key, local_only=local_only)
        result, fast = self._call_raw("read_all", None, args, C.decode_read_all_success)
        return result if fast else C.read_all_result_from_thrift(result)

    def find(self, patterns: Iterable[str], local_only: bool = False) -> dict[str, FindResult]:
        """Keys and directories ("x.*") matching each pattern."""
        args = Cyclone.find_args(patterns=list(patterns), local_only=local_only)
        return C.find_results_from_thrift(self._call("find", args))

    def stats(self) -> dict[str, int]:
        """The server's counters."""
        return C.stats_from_thrift(self._call("stats", Cyclone.stats_args()))

    # -- administration -------------------------------------------------------------------
    def get_verify_status(self) -> dict[str, int]:
        """Counters of the current or last verify run."""
        return C.stats_from_thrift(self._call("get_verify_status", Cyclone.get_verify_status_args()))

    def start_verify(self, repair: bool = False) -> bool:
        """Start a verify run (moving misplaced series if repair); False if not started."""
        return bool(self._call("start_verify", Cyclone.start_verify_args(repair=bool(repair))))

    def cancel_verify(self) -> bool:
        """Cancel the running verify; False if none was running."""
        return bool(self._call("cancel_verify", Cyclone.cancel_verify_args()))

    def get_read_from_all(self) -> bool:
        return bool(self._call("get_read_from_all", Cyclone.get_read_from_all_args()))

    def set_read_from_all(self, read_from_all: bool) -> bool:
        """Set read-from-all; returns the previous value."""
        return bool(self._call("set_read_from_all", Cyclone.set_read_from_all_args(read_from_all=bool(read_from_all))))
