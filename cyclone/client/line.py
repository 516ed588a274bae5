"""LineClient: carbon's plaintext protocol, `<key> <value> [timestamp]\\n`, over TCP or UDP.

    from cyclone.client import LineClient

    with LineClient("127.0.0.1", 2003) as c:     # TCP; flushes on close
        c.write("test.cpu.user", 12.5)            # timestamp: the server's now
        c.write("test.cpu.user", 13.0, 1700000000)
        c.write_points({"test.cpu.sys": [(1700000000, 1.0), (1700000060, 2.0)]})

TCP: points are buffered and sent `batch_size` at a time over a persistent
connection that is re-opened if the server went away (see
`cyclone.client.stream`). UDP (`udp=True`): each flush sends datagrams of
at most `max_datagram_bytes`, split at line boundaries; nothing confirms
delivery. A value of NaN deletes the point at that timestamp.
"""

from __future__ import annotations

import socket
from typing import Any

from cyclone.client.stream import StreamClient, StreamClientError, format_value


class LineClient(StreamClient):
    """Plaintext line protocol client (TCP by default, UDP with udp=True)."""

    default_port = 2003

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, udp: bool = False,
                 max_datagram_bytes: int = 8192, **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.udp = udp
        self.max_datagram_bytes = max_datagram_bytes
        self._udp_sock: socket.socket | None = None

    def _encode(self, batch: list[tuple[str, int | None, float]]) -> bytes:
        return "".join(
            f"{key} {format_value(value)}\n" if ts is None else f"{key} {format_value(value)} {ts}\n"
            for key, ts, value in batch
        ).encode("utf-8")

    def _send(self, payload: bytes) -> None:
        if not self.udp:
            super()._send(payload)
            return
        if self._udp_sock is None:
            family = socket.AF_UNIX if self.unix_path else socket.AF_INET
            self._udp_sock = socket.socket(family, socket.SOCK_DGRAM)
        where: Any = self.unix_path or (self.host, self.port)
        try:
            for datagram in split_datagrams(payload, self.max_datagram_bytes):
                self._udp_sock.sendto(datagram, where)
        except OSError as e:
            raise StreamClientError(f"{self!r}: cannot send a datagram: {e}") from None

    def _disconnect(self) -> None:
        super()._disconnect()
        sock, self._udp_sock = self._udp_sock, None
        if sock is not None:
            sock.close()


def split_datagrams(payload: bytes, limit: int) -> list[bytes]:
    """Split newline-terminated lines into chunks of at most `limit` bytes
    (a single longer line goes alone)."""
    out: list[bytes] = []
    start = 0
    n = len(payload)
    while start < n:
        end = start + limit
        if end >= n:
            out.append(payload[start:])
            break
        cut = payload.rfind(b"\n", start, end)
        if cut < start:  # one line longer than the limit
            cut = payload.find(b"\n", end)
            if cut < 0:
                cut = n - 1
        out.append(payload[start:cut + 1])
        start = cut + 1
    return out
