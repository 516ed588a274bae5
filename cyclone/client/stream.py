"""Shared machinery of the carbon-style stream clients (LineClient, PickleClient).

A stream client buffers points and sends them in batches over one
persistent TCP (or unix socket) connection. The protocols have no replies,
so a client cannot know what the server stored; it can only make sure
every batch was handed to a live connection:

- before sending on a reused connection it checks that the server has not
  closed it (a server restart), and reconnects if so;
- a send that fails is retried on a new connection (`retries` times) with
  the whole batch (a point sent twice is harmless: the last value for a
  timestamp wins, and it is the same value);
- `flush()` returns once everything buffered is written to the socket;
  `close()` flushes first.
"""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from typing import Any, Iterable, Mapping

from cyclone.series import Points


class StreamClientError(ConnectionError):
    """A batch could not be sent (after the retries); the points stay buffered."""


class StreamClient:
    """Base class: buffering, batching, connection and reconnects.

    Subclasses implement `_encode(batch) -> bytes` for a list of
    (key, timestamp, value) with timestamp None meaning "now".
    """

    default_port = 0

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, batch_size: int = 10000,
                 timeout: float = 10.0, retries: int = 2, retry_delay: float = 0.2,
                 unix_path: str | None = None) -> None:
        self.host = host
        self.port = self.default_port if port is None else port
        self.unix_path = unix_path
        self.batch_size = max(1, batch_size)
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self._sock: socket.socket | None = None
        self._buffer: list[tuple[str, int | None, float]] = []
        self._lock = threading.RLock()
        self.points_sent = 0
        self.batches_sent = 0
        self.reconnects = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.unix_path or f'{self.host}:{self.port}'})"

    def __enter__(self) -> "StreamClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- buffering ---------------------------------------------------------------
    def write(self, key: str, value: float, timestamp: int | float | None = None) -> None:
        """Queue one point (timestamp None = now); sends when a batch is full."""
        with self._lock:
            self._buffer.append((key, None if timestamp is None else int(timestamp), float(value)))
            if len(self._buffer) >= self.batch_size:
                self.flush()

    def write_points(self, points_by_key: Mapping[str, Points | Iterable[tuple[int, float]]]) -> None:
        """Queue many points: {key: Points or [(timestamp, value), ...]}."""
        with self._lock:
            for key, pts in points_by_key.items():
                if isinstance(pts, Points):
                    pairs = zip(pts.timestamps.tolist(), pts.values.tolist())
                else:
                    pairs = ((int(t), float(v)) for t, v in pts)
                self._buffer.extend((key, t, v) for t, v in pairs)
            while len(self._buffer) >= self.batch_size:
                self._send_batch(self.batch_size)

    @property
    def buffered(self) -> int:
        """Points queued but not sent yet."""
        return len(self._buffer)

    def flush(self) -> None:
        """Send everything queued. Raises StreamClientError if the server is unreachable."""
        with self._lock:
            while self._buffer:
                self._send_batch(self.batch_size)

    def close(self) -> None:
        """Flush, then close the connection."""
        try:
            self.flush()
        finally:
            self._disconnect()

    # -- connection ------------------------------------------------------------
    def _connect(self) -> socket.socket:
        if self.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.unix_path)
        else:
            sock = socket.create_connection((self.host, self.port), self.timeout)
        sock.settimeout(self.timeout)
        return sock

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _peer_closed(sock: socket.socket) -> bool:
        """The server never talks on these protocols: readable means closed (or junk)."""
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True

    def _send_batch(self, n: int) -> None:
        batch = self._buffer[:n]
        payload = self._encode(batch)
        self._send(payload)
        del self._buffer[:len(batch)]
        self.points_sent += len(batch)
        self.batches_sent += 1

    def _send(self, payload: bytes) -> None:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.reconnects += 1
                time.sleep(self.retry_delay * attempt)
            try:
                if self._sock is not None and self._peer_closed(self._sock):
                    self._disconnect()
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.sendall(payload)
                return
            except OSError as e:
                last = e
                self._disconnect()
        raise StreamClientError(f"{self!r}: cannot send {len(payload)} bytes: {last}")

    def _encode(self, batch: list[tuple[str, int | None, float]]) -> bytes:
        raise NotImplementedError


def format_value(v: float) -> str:
    """A value as the line protocol writes it: integers without ".0", others with
    repr (every bit kept), NaN as "nan" (which deletes the point)."""
    if v != v:
        return "nan"
    if v in (math.inf, -math.inf):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)
