"""LineClient / PickleClient: exact bytes, batching, reconnects (against real sockets)."""

from __future__ import annotations

import math
import pickle
import socket
import struct
import threading
import time

import pytest

from cyclone.client import LineClient, PickleClient, StreamClientError
from cyclone.client.line import split_datagrams
from cyclone.client.stream import format_value
from cyclone.series import Points

pytestmark = pytest.mark.timeout(60)


class Sink:
    """A TCP server on 127.0.0.1 that records what each connection sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytearray] = []
        self.open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            buf = bytearray()
            with self._lock:
                self.connections.append(buf)
                self.open.append(conn)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True).start()

    def _read(self, conn: socket.socket, buf: bytearray) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                buf.extend(data)

    def received(self) -> bytes:
        with self._lock:
            return b"".join(bytes(b) for b in self.connections)

    def wait_for(self, n_bytes: int, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.received()
            if len(data) >= n_bytes:
                return data
            time.sleep(0.01)
        return self.received()

    def drop_connections(self) -> None:
        with self._lock:
            conns, self.open = self.open, []
        for c in conns:
            c.shutdown(socket.SHUT_RDWR)
            c.close()

    def close(self) -> None:
        self._stop = True
        self.drop_connections()
        self.sock.close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def test_format_value():
    assert [format_value(v) for v in (1.0, -3.0, 2.5, 1e20, math.nan, math.inf, 0.1)] == \
        ["1", "-3", "2.5", "1e+20", "nan", "inf", "0.1"]


def test_line_client_bytes_and_batching(sink):
    c = LineClient("127.0.0.1", sink.port, batch_size=3)
    c.write("a.b", 1.5, 100)
    c.write("a.c", 2, 110.9)
    assert c.buffered == 2 and sink.received() == b""
    c.write("a.d", math.nan, 120)  # third point: the batch goes out
    assert c.buffered == 0
    expected = b"a.b 1.5 100\na.c 2 110\na.d nan 120\n"
    assert sink.wait_for(len(expected)) == expected
    c.write("x", 7)  # no timestamp: the server's now
    c.write_points({"p.q": Points([200, 210], [1.0, 2.0]), "p.r": [(300, 3.25)]})
    c.close()
    rest = b"x 7\np.q 1 200\np.q 2 210\np.r 3.25 300\n"
    assert sink.wait_for(len(expected + rest)) == expected + rest
    assert (c.points_sent, c.batches_sent) == (7, 3)
    assert len(sink.connections) == 1


def test_pickle_client_frames(sink):
    c = PickleClient("127.0.0.1", sink.port, batch_size=2, protocol=4)
    before = int(time.time())
    c.write("a.b", 1.5, 100)
    c.write("a.c", 3, None)
    c.write("a.d", -1.0, 120)
    c.close()

    def complete_frames() -> list:
        data, frames = sink.received(), []
        while len(data) >= 4:
            (n,) = struct.unpack("!L", data[:4])
            if len(data) < 4 + n:
                break
            frames.append(pickle.loads(data[4:4 + n]))
            data = data[4 + n:]
        return frames

    deadline = time.monotonic() + 20
    while len(complete_frames()) < 2 and time.monotonic() < deadline:  # frames may arrive apart
        time.sleep(0.01)
    frames = complete_frames()
    assert len(frames) == 2
    assert frames[0][0] == ("a.b", (100, 1.5))
    key, (ts, value) = frames[0][1]
    assert key == "a.c" and value == 3.0 and before <= ts <= int(time.time())
    assert frames[1] == [("a.d", (120, -1.0))]


def test_stream_client_reconnects_after_the_server_closed(sink):
    c = LineClient("127.0.0.1", sink.port, batch_size=1)
    c.write("a", 1, 1)
    assert sink.wait_for(6) == b"a 1 1\n"
    sink.drop_connections()
    time.sleep(0.1)
    c.write("b", 2, 2)  # the dead connection is noticed before sending
    c.write("c", 3, 3)
    assert sink.wait_for(18) == b"a 1 1\nb 2 2\nc 3 3\n"
    assert len(sink.connections) == 2
    c.close()


def test_stream_client_unreachable_keeps_points():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = LineClient("127.0.0.1", port, batch_size=10, retries=1, retry_delay=0.01, timeout=1)
    c.write("a", 1, 1)
    with pytest.raises(StreamClientError):
        c.flush()
    assert c.buffered == 1
    with pytest.raises(StreamClientError):
        c.close()


def test_split_datagrams():
    lines = b"".join(f"key.{i} {i} 100\n".encode() for i in range(100))
    parts = split_datagrams(lines, 64)
    assert b"".join(parts) == lines
    assert all(len(p) <= 64 and p.endswith(b"\n") for p in parts)
    long_line = b"x" * 100 + b" 1 1\n"
    assert split_datagrams(b"a 1 1\n" + long_line + b"b 2 2\n", 50) == [b"a 1 1\n", long_line, b"b 2 2\n"]
    assert split_datagrams(b"", 10) == []


def test_line_client_udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        c = LineClient("127.0.0.1", rx.getsockname()[1], udp=True, max_datagram_bytes=40)
        for i in range(6):
            c.write(f"udp.k{i}", i, 1000 + i)
        c.close()
        got = b""
        datagrams = 0
        while got.count(b"\n") < 6:
            got += rx.recv(65536)
            datagrams += 1
    assert got == b"".join(f"udp.k{i} {i} {1000 + i}\n".encode() for i in range(6))
    assert datagrams == 3
