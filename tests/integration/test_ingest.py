"""Ingest over real sockets into a real server process: line TCP, UDP, pickle.

Every test reads the whisper files back with the PyPI `whisper` package and
compares exact values.
"""

from __future__ import annotations

import math
import os
import pickle
import socket
import struct
import time

import pytest

from tests.integration.conftest import CycloneProcess


def _now() -> int:
    return int(time.time())


def test_line_tcp_lands_exactly(cyclone_server: CycloneProcess) -> None:
    now = _now()
    t0 = now - 600
    lines = []
    expected: dict[str, dict[int, float]] = {}
    for s in range(20):
        key = f"tcp.host{s % 4}.metric{s}"
        for i in range(30):
            value = s * 1000 + i * 0.25 - 7
            lines.append(f"{key} {value!r} {t0 + i}")
            expected.setdefault(key, {})[t0 + i] = value
    cyclone_server.send_lines(lines)
    for key, pts in expected.items():
        cyclone_server.wait_points(key, pts)


def test_line_value_forms_and_timestamps(cyclone_server: CycloneProcess) -> None:
    now = _now()
    cyclone_server.send_lines([
        f"forms.sci 1e3 {now - 100}",
        f"forms.neg -2.5 {now - 100}",
        f"forms.float_ts 42 {now - 100}.97",          # float timestamp: truncated
        f"forms.tabs\t5\t{now - 99}\r",                # tabs and CRLF
        f"forms.carbon_now 9 -1",                      # carbon's "now"
        "forms.no_ts 77",                               # missing timestamp = now
        f"forms.inf inf {now - 100}",                  # refused
        f"forms.sci 2E-3 {now - 99}",
    ])
    cyclone_server.wait_points("forms.sci", {now - 100: 1000.0, now - 99: 0.002})
    cyclone_server.wait_points("forms.neg", {now - 100: -2.5})
    cyclone_server.wait_points("forms.float_ts", {now - 100: 42.0})
    cyclone_server.wait_points("forms.tabs", {now - 99: 5.0})
    for key, value in (("forms.no_ts", 77.0), ("forms.carbon_now", 9.0)):
        pts = cyclone_server.wait_for(lambda: cyclone_server.read_points(key))
        assert list(pts.values()) == [value]
        (ts,) = pts
        assert now - 2 <= ts <= _now() + 1
    assert not cyclone_server.wsp_path("forms.inf").exists()
    stats = cyclone_server.stats()
    assert stats["line_tcp.bad_lines"] == 1
    assert stats["line_tcp.points"] == 7


def test_nan_deletes_a_point(cyclone_server: CycloneProcess) -> None:
    now = _now()
    key = "nan.series"
    cyclone_server.send_lines([f"{key} 1 {now - 30}", f"{key} 2 {now - 20}", f"{key} 3 {now - 10}"])
    cyclone_server.wait_points(key, {now - 30: 1.0, now - 20: 2.0, now - 10: 3.0})
    cyclone_server.send_lines([f"{key} nan {now - 20}"])
    cyclone_server.wait_points(key, {now - 30: 1.0, now - 10: 3.0})


def test_udp_several_lines_per_datagram(cyclone_server: CycloneProcess) -> None:
    now = _now()
    expected: dict[str, dict[int, float]] = {}
    datagrams = []
    for d in range(20):
        lines = []
        for i in range(10):
            key = f"udp.d{d % 5}"
            ts = now - 500 + d * 10 + i
            value = d + i / 8
            lines.append(f"{key} {value!r} {ts}")
            expected.setdefault(key, {})[ts] = value
        # the last line of a datagram may lack its newline
        datagrams.append(("\n".join(lines) + ("\n" if d % 2 else "")).encode())
    cyclone_server.send_udp(datagrams)
    for key, pts in expected.items():
        cyclone_server.wait_points(key, pts)
    stats = cyclone_server.stats()
    assert stats["line_udp.datagrams"] == 20
    assert stats["line_udp.points"] == 200


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("container", ["list", "tuple"])
def test_pickle_lands_exactly(cyclone_server: CycloneProcess, protocol: int, container: str) -> None:
    now = _now()
    wrap = list if container == "list" else tuple
    items = []
    expected: dict[str, dict[int, float]] = {}
    for s in range(10):
        key = f"pickle.p{protocol}.{container}.s{s}"
        for i in range(20):
            ts = now - 300 + i
            value = s * 1.5 + i * 1e-3 if i % 3 else s * 10 + i  # floats and ints
            items.append(wrap([key, wrap([ts, value])]))
            expected.setdefault(key, {})[ts] = float(value)
    with cyclone_server.pickle_conn() as sock:
        # several frames on one connection, split across sends
        for chunk_start in range(0, len(items), 70):
            cyclone_server.send_pickle(wrap(items[chunk_start:chunk_start + 70]), protocol, sock)
    for key, pts in expected.items():
        cyclone_server.wait_points(key, pts)


def test_pickle_frame_split_byte_by_byte(cyclone_server: CycloneProcess) -> None:
    now = _now()
    payload = pickle.dumps([("split.frame", (now - 5, 3.25)), ("split.frame", (now - 4, 4.5))], protocol=2)
    frame = struct.pack("!L", len(payload)) + payload
    with cyclone_server.pickle_conn() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in frame:
            sock.send(bytes([b]))
            time.sleep(0.001)
    cyclone_server.wait_points("split.frame", {now - 5: 3.25, now - 4: 4.5})


def test_malformed_lines_do_not_stop_good_ones(cyclone_server: CycloneProcess) -> None:
    now = _now()
    lines = [
        f"mixed.good 1 {now - 50}",
        "just_a_key",
        f"mixed.bad value {now - 50}",
        f"mixed.bad_ts 1 yesterday",
        f"too many fields 1 {now}",
        "",
        f"mixed.good 2 {now - 49}",
        f"nul\x00key 5 {now - 50}",                # NUL in a key: a per-key store error
        f"mixed.good 3 {now - 48}",
        "x" * 10000,                              # longer than max_line_bytes
        f"bad..key 5 {now - 50}",                 # invalid key: a per-key store error
        f"mixed.good 4 {now - 47}",
    ]
    cyclone_server.send_lines(lines)
    cyclone_server.wait_points("mixed.good", {now - 50: 1.0, now - 49: 2.0, now - 48: 3.0, now - 47: 4.0})

    def counted() -> dict[str, int]:
        st = cyclone_server.stats()
        return st if st["ingest.invalid_keys"] >= 1 else {}

    stats = cyclone_server.wait_for(counted)
    # just_a_key, bad value, bad ts, too many fields, the 10000-byte line;
    # the NUL line has two fields ("\x00\x01\x02" is one token) so it reaches the store as a bad key
    assert stats["line_tcp.bad_lines"] == 5
    assert stats["ingest.invalid_keys"] == 2
    assert stats["ingest.points_refused"] == 2
    # the server still serves
    cyclone_server.send_lines([f"after.bad 1 {now - 10}"])
    cyclone_server.wait_points("after.bad", {now - 10: 1.0})
    assert "bad lines" in cyclone_server.output()


def test_unterminated_long_line_is_discarded_then_stream_continues(cyclone_server: CycloneProcess) -> None:
    now = _now()
    with socket.create_connection(("127.0.0.1", cyclone_server.line_port)) as s:
        s.sendall(f"long.ok 1 {now - 9}\n".encode())
        s.sendall(b"y" * 20000)      # no newline for far longer than max_line_bytes
        time.sleep(0.2)
        s.sendall(b"yyy tail of the long line\n" + f"long.ok 2 {now - 8}\n".encode())
        s.sendall(f"long.ok 3 {now - 7}".encode())  # last line without newline: parsed at close
    cyclone_server.wait_points("long.ok", {now - 9: 1.0, now - 8: 2.0, now - 7: 3.0})
    assert cyclone_server.stats()["line_tcp.bad_lines"] == 1


def test_oversized_pickle_refused(cyclone_factory) -> None:
    srv = cyclone_factory(max_pickle_frame_bytes=10_000).start()
    now = _now()
    with srv.pickle_conn() as sock:
        srv.send_pickle([("big.before", (now - 3, 1.0))], 2, sock)
        # announce a 1 MB frame: refused from the length prefix alone, connection closed
        sock.sendall(struct.pack("!L", 1_000_000) + b"\x80\x02" + b"x" * 5000)
        sock.settimeout(10)
        assert _closed_by_peer(sock)
    srv.wait_points("big.before", {now - 3: 1.0})
    stats = srv.stats()
    assert stats["pickle.oversized_frames"] == 1
    srv.send_pickle([("big.after", (now - 2, 2.0))])
    srv.wait_points("big.after", {now - 2: 2.0})


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_calling_os_system_is_refused(cyclone_server: CycloneProcess, tmp_path, protocol: int) -> None:
    now = _now()
    marker = tmp_path / f"pwned{protocol}"
    with cyclone_server.pickle_conn() as sock:
        cyclone_server.send_pickle([("evil.before", (now - 3, 1.0))], protocol, sock)
        cyclone_server.send_pickle([("evil.key", (now - 2, 5.0)), _Evil(str(marker))], protocol, sock)
        cyclone_server.send_pickle([("evil.after_in_same_conn", (now - 1, 1.0))], protocol, sock)
        sock.settimeout(10)
        assert _closed_by_peer(sock)
    cyclone_server.wait_points("evil.before", {now - 3: 1.0})
    time.sleep(0.3)
    assert not marker.exists()
    assert not cyclone_server.wsp_path("evil.key").exists()
    stats = cyclone_server.stats()
    assert stats["pickle.refused_pickles"] == 1
    assert "global posix.system is not allowed" in cyclone_server.output() or \
        "global os.system is not allowed" in cyclone_server.output()
    # still serving
    cyclone_server.send_pickle([("evil.after", (now - 1, 7.0))], protocol)
    cyclone_server.wait_points("evil.after", {now - 1: 7.0})


def test_pickle_other_globals_and_bad_shapes(cyclone_server: CycloneProcess) -> None:
    now = _now()
    import collections
    import datetime

    # any global at all is refused (even harmless ones)
    for obj in ([("g.dt", (now, datetime.date(2020, 1, 1)))], collections.OrderedDict(a=1)):
        with cyclone_server.pickle_conn() as sock:
            cyclone_server.send_pickle(obj, 2, sock)
            sock.settimeout(10)
            assert _closed_by_peer(sock)
    # wrong shapes: counted, skipped, the connection and the good items survive
    with cyclone_server.pickle_conn() as sock:
        cyclone_server.send_pickle({"not": "a list"}, 2, sock)
        sock.sendall(struct.pack("!L", 5) + b"junk!")
        cyclone_server.send_pickle([("shape.ok", (now - 5, 1.0)), ("shape.bad",), ("shape.bad2", 5),
                                    (7, (now, 1.0)), ("shape.str", ("%d" % (now - 4), "2.5")),
                                    ("shape.inf", (now, float("inf"))), ("shape.ok", [now - 3, 2])], 2, sock)
    srv = cyclone_server
    srv.wait_points("shape.ok", {now - 5: 1.0, now - 3: 2.0})
    srv.wait_points("shape.str", {now - 4: 2.5})
    stats = srv.stats()
    assert stats["pickle.refused_pickles"] == 2
    assert stats["pickle.bad_frames"] == 2
    assert stats["pickle.bad_points"] == 4


def _py2_pickle(items: list[tuple[bytes, int, float]]) -> bytes:
    """What python 2's carbon-relay sends: protocol 2 with py2 `str` keys (SHORT_BINSTRING)."""
    out = b"\x80\x02]"
    for key, ts, value in items:
        out += b"U" + bytes([len(key)]) + key + b"J" + struct.pack("<i", ts) + b"G" + struct.pack(">d", value)
        out += b"\x86\x86a"
    return out + b"."


def test_python2_style_and_bytes_keys(cyclone_server: CycloneProcess) -> None:
    now = _now()
    payload = _py2_pickle([(b"py2.key", now - 5, 1.0), (b"py2.key", now - 4, 2.0)])
    assert pickle.loads(payload) == [("py2.key", (now - 5, 1.0)), ("py2.key", (now - 4, 2.0))]
    with cyclone_server.pickle_conn() as sock:
        sock.sendall(struct.pack("!L", len(payload)) + payload)
        # protocol 3+ bytes keys (BINBYTES), one of them not UTF-8
        cyclone_server.send_pickle([(b"bytes.key", (now - 5, 1.0)), (b"bytes.key", (now - 4, 2.0)),
                                    (b"\xff\xfe", (now - 4, 2.0))], 3, sock)
    cyclone_server.wait_points("py2.key", {now - 5: 1.0, now - 4: 2.0})
    cyclone_server.wait_points("bytes.key", {now - 5: 1.0, now - 4: 2.0})
    stats = cyclone_server.wait_for(lambda: (s := cyclone_server.stats())["ingest.invalid_keys"] and s)
    assert stats["ingest.invalid_keys"] == 1
    assert stats["pickle.refused_pickles"] == 0


def test_unix_socket_listeners(cyclone_factory, tmp_path) -> None:
    import tempfile

    sockdir = tempfile.mkdtemp(prefix="cy", dir="/tmp")  # unix paths must be short
    line_path = os.path.join(sockdir, "line.sock")
    pickle_path = os.path.join(sockdir, "pickle.sock")
    udp_path = os.path.join(sockdir, "udp.sock")
    srv = cyclone_factory(rules=None)
    srv.config["line_stream_listen"].append(line_path)
    srv.config["pickle_listen"].append(pickle_path)
    srv.config["line_datagram_listen"].append(udp_path)
    srv.write_config()
    srv.start()
    now = _now()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(line_path)
        s.sendall(f"unix.line 1.5 {now - 5}\n".encode())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(pickle_path)
        payload = pickle.dumps([("unix.pickle", (now - 5, 2.5))], 2)
        s.sendall(struct.pack("!L", len(payload)) + payload)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(f"unix.dgram 3.5 {now - 5}\n".encode(), udp_path)
    srv.wait_points("unix.line", {now - 5: 1.5})
    srv.wait_points("unix.pickle", {now - 5: 2.5})
    srv.wait_points("unix.dgram", {now - 5: 3.5})
    assert srv.stop() == 0
    # a restart reuses the (stale) socket paths
    srv.start()
    assert srv.stop() == 0


def test_backpressure_pauses_and_loses_nothing(cyclone_factory) -> None:
    srv = cyclone_factory()
    wb = srv.config["store_config"]["substore"]
    wb["max_buffered_points"] = 2000
    wb["batch_size"] = 50
    wb["max_write_batches_per_second"] = 20    # slow flushing: ~1000 series/s
    srv.write_config()
    srv.start()
    now = _now()
    n_series, n_points = 400, 25
    lines = [f"bp.s{s} {s + i / 100!r} {now - 100 + i}" for i in range(n_points) for s in range(n_series)]
    srv.send_lines(lines)
    for s in range(0, n_series, 37):
        srv.wait_points(f"bp.s{s}", {now - 100 + i: s + i / 100 for i in range(n_points)}, timeout=60)
    stats = srv.wait_for(lambda: (st := srv.stats())["ingest.points_written"] == n_series * n_points and st,
                         timeout=60)
    assert stats["line_tcp.paused"] >= 1
    assert stats["ingest.backpressure_pauses"] >= 1
    assert stats["ingest.backpressure_resumes"] >= 1
    assert stats["ingest.paused"] == 0
    for s in range(n_series):
        assert len(srv.read_points(f"bp.s{s}")) == n_points


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
