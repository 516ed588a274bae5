"""Every Thrift method over a real socket against a real server process.

One server (`python -m cyclone conf.json`, query -> write_buffer ->
cached_disk, autocreate for `test.**`) serves the module; each test uses
its own key prefix. Results are checked exactly, including the error
descriptions of bad input.
"""

from __future__ import annotations

import math
import socket
import struct
import threading
import time

import numpy as np
import pytest
from thrift.protocol import TBinaryProtocol
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.transport import TSocket, TTransport

from cyclone.client import ThriftClient, ThriftConnectionError, ThriftRequestError
from cyclone.series import ArchiveArg, DeleteResult, Error, FindResult, Points, SeriesMetadata
from cyclone_if import Cyclone
from cyclone_if import ttypes as T
from tests.client.cyclone_server import CycloneServer, free_port

pytestmark = pytest.mark.timeout(120)

STEP = 10
NOT_EXIST = "{}: series does not exist and no autocreate rule matches"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = CycloneServer(tmp_path_factory.mktemp("thrift"))
    srv.start()
    yield srv
    srv.stop()
    out = srv.output()
    assert "Traceback" not in out.replace("thrift read: the store raised", ""), out[-5000:]


@pytest.fixture
def client(server):
    c = ThriftClient("127.0.0.1", server.thrift_port, timeout=30)
    yield c
    c.close()


def t_base() -> int:
    """An aligned timestamp 10 minutes ago (well inside the 1-day archive)."""
    now = int(time.time())
    return now - now % 600 - 600


def window(frm: int, until: int, step: int = STEP) -> tuple[int, int]:
    """The (start, end) whisper's fetch reports for [from, until]."""
    start = frm - frm % step + step
    end = until - until % step + step
    return start, end


def dense(rr) -> list[float | None]:
    return [None if math.isnan(v) else v for v in rr.values.tolist()]


def raw_client(port: int) -> tuple[Cyclone.Client, TTransport.TFramedTransport]:
    """The generated client (what an old Cyclone client uses), framed + binary."""
    sock = TSocket.TSocket("127.0.0.1", port)
    sock.setTimeout(30_000)
    trans = TTransport.TFramedTransport(sock)
    proto = TBinaryProtocol.TBinaryProtocol(trans)
    trans.open()
    return Cyclone.Client(proto), trans


# ----------------------------------------------------------------- write / read
def test_write_then_read_exact(client):
    t0 = t_base()
    errors = client.write({
        "test.wr.a": [(t0, 1.0), (t0 + 10, 2.5), (t0 + 30, -3.0)],
        "test.wr.b": Points([t0 + 20], [7.0]),
    })
    assert errors == {}
    result = client.read(["test.wr.*", "test.wr.a"], t0 - 10, t0 + 50)
    start, end = window(t0 - 10, t0 + 50)
    assert (start, end) == (t0, t0 + 60)
    assert set(result) == {"test.wr.*", "test.wr.a"}
    assert sorted(result["test.wr.*"]) == ["test.wr.a", "test.wr.b"]
    a = result["test.wr.*"]["test.wr.a"]
    assert a.error is None
    assert (a.start_time, a.end_time, a.step) == (t0, t0 + 60, STEP)
    assert dense(a) == [1.0, 2.5, None, -3.0, None, None]
    b = result["test.wr.*"]["test.wr.b"]
    assert dense(b) == [None, None, 7.0, None, None, None]
    assert dense(result["test.wr.a"]["test.wr.a"]) == dense(a)


def test_write_skip_buffering_reaches_disk(client):
    t0 = t_base()
    assert client.write({"test.wd.a": [(t0, 4.0), (t0 + 10, 5.0)]}, skip_buffering=True) == {}
    ra = client.read_all("test.wd.a")
    assert ra.error is None
    assert ra.points.pairs() == [(t0, 4.0), (t0 + 10, 5.0)]


def test_write_per_key_errors(client):
    t0 = t_base()
    errors = client.write({
        "test.we.ok": [(t0, 1.0)],
        "other.unknown": [(t0, 1.0)],
        "test..bad": [(t0, 1.0)],
        "test.we./slash": [(t0, 1.0)],
    })
    assert errors == {
        "other.unknown": Error(NOT_EXIST.format("other.unknown")),
        "test..bad": Error("invalid key 'test..bad': empty component ('..') at index 4"),
        "test.we./slash": Error("invalid key 'test.we./slash': '/' (path separator) at index 8 is not allowed"),
    }
    assert dense(client.read(["test.we.ok"], t0 - 10, t0)["test.we.ok"]["test.we.ok"]) == [1.0]


def test_write_error_map_has_every_key_on_the_wire(server):
    """Old clients index the result by key: success entries are empty Errors."""
    t0 = t_base()
    raw, trans = raw_client(server.thrift_port)
    try:
        res = raw.write({"test.raw.a": [T.Datapoint(t0, 1.0)], "other.raw": [T.Datapoint(t0, 1.0)]},
                        False, False)
    finally:
        trans.close()
    assert res == {
        "test.raw.a": T.Error("", False, False),
        "other.raw": T.Error(NOT_EXIST.format("other.raw"), False, False),
    }


@pytest.mark.parametrize("skip_buffering", [False, True])
def test_nan_write_deletes_points(client, skip_buffering):
    t0 = t_base()
    key = f"test.nan.{int(skip_buffering)}"
    assert client.write({key: [(t0, 1.0), (t0 + 10, 2.0), (t0 + 20, 3.0)]}, skip_buffering=True) == {}
    assert client.write({key: [(t0 + 10, math.nan), (t0 + 20, math.nan)]},
                        skip_buffering=skip_buffering) == {}
    rr = client.read([key], t0 - 10, t0 + 20)[key][key]
    assert dense(rr) == [1.0, None, None]
    if skip_buffering:
        assert client.read_all(key).points.pairs() == [(t0, 1.0)]


def test_read_patterns_and_errors(client):
    t0 = t_base()
    assert client.write({"test.rp.x": [(t0, 1.0)]}, skip_buffering=True) == {}
    res = client.read(["test.rp.nothing", "test.rp.*", "test.rp.[", "test.rp.x{", "a..b"], t0 - 10, t0)
    assert res["test.rp.nothing"] == {}
    assert list(res["test.rp.*"]) == ["test.rp.x"]
    assert res["test.rp.["]["test.rp.["].error == Error("invalid pattern 'test.rp.[': unbalanced '[' at index 8")
    assert res["test.rp.x{"]["test.rp.x{"].error == Error("invalid pattern 'test.rp.x{': unbalanced '{' at index 9")
    assert res["a..b"]["a..b"].error == Error("invalid key 'a..b': empty component ('..') at index 1")
    assert set(res) == {"test.rp.nothing", "test.rp.*", "test.rp.[", "test.rp.x{", "a..b"}


def test_read_lower_archive_window(client):
    """A range older than the first archive is answered by the 60 s archive."""
    now = int(time.time())
    t_old = now - 3 * 86400
    t_old -= t_old % 60
    assert client.write({"test.old.a": [(t_old, 6.0)]}, skip_buffering=True) == {}
    rr = client.read(["test.old.a"], t_old - 60, t_old + 60)["test.old.a"]["test.old.a"]
    assert rr.step == 60
    assert (rr.start_time, rr.end_time) == window(t_old - 60, t_old + 60, 60)
    assert dense(rr) == [6.0, None]


# ----------------------------------------------------------------- update_metadata
def md(*archives: tuple[int, int], xff: float = 0.5, agg: int = 1) -> SeriesMetadata:
    return SeriesMetadata([ArchiveArg(p, n) for p, n in archives], xff, agg)


def test_update_metadata_create_skip_truncate(client):
    t0 = t_base()
    key = "test.md.a"
    assert client.update_metadata({key: md((10, 360), (60, 1440), xff=0.25, agg=4)}, skip_buffering=True) == {}
    ra = client.read_all(key)
    assert ra.error is None
    assert ra.metadata == md((10, 360), (60, 1440), xff=0.25, agg=4)
    assert len(ra.points) == 0
    assert client.write({key: [(t0, 1.0)]}, skip_buffering=True) == {}
    # skip_existing: nothing changes
    assert client.update_metadata({key: md((60, 10))}, skip_existing=True, skip_buffering=True) == {}
    ra = client.read_all(key)
    assert ra.metadata == md((10, 360), (60, 1440), xff=0.25, agg=4)
    assert ra.points.pairs() == [(t0, 1.0)]
    # truncate_existing: new layout, no data
    assert client.update_metadata({key: md((10, 720), xff=0.0, agg=2)}, truncate_existing=True,
                                  skip_buffering=True) == {}
    ra = client.read_all(key)
    assert ra.metadata == md((10, 720), xff=0.0, agg=2)
    assert len(ra.points) == 0


def test_update_metadata_resample_keeps_data(client):
    t0 = t_base()
    key = "test.md.resample"
    assert client.update_metadata({key: md((10, 360))}, skip_buffering=True) == {}
    pts = [(t0 + 10 * i, float(i)) for i in range(6)]
    assert client.write({key: pts}, skip_buffering=True) == {}
    # neither skip nor truncate: resample into the new layout
    assert client.update_metadata({key: md((10, 720), (60, 200), agg=3)}, skip_buffering=True) == {}
    ra = client.read_all(key)
    assert ra.error is None
    assert ra.metadata == md((10, 720), (60, 200), agg=3)
    assert ra.points.pairs() == pts


def test_update_metadata_errors(client):
    res = client.update_metadata({
        "test.mde.nocreate": md((10, 100)),
        "a..b": md((10, 100)),
        "test.mde.badagg": md((10, 100), agg=99),
        "test.mde.badxff": md((10, 100), xff=1.5),
        "test.mde.noarchives": SeriesMetadata([], 0.5, 1),
        "test.mde.ok": md((10, 100)),
    }, create_new=False, skip_buffering=True)
    assert res == {
        "test.mde.nocreate": Error("test.mde.nocreate: series does not exist"),
        "a..b": Error("invalid key 'a..b': empty component ('..') at index 1"),
        "test.mde.badagg": Error("test.mde.badagg: unknown aggregation method 99"),
        "test.mde.badxff": Error("test.mde.badxff: x_files_factor must be in [0, 1]"),
        "test.mde.noarchives": Error("test.mde.noarchives: metadata has no archives"),
        "test.mde.ok": Error("test.mde.ok: series does not exist"),
    }
    res = client.update_metadata({"test.mde.badarchive": md((0, 100))}, skip_buffering=True)
    assert list(res) == ["test.mde.badarchive"]
    assert res["test.mde.badarchive"].description.startswith("test.mde.badarchive: ")
    assert client.find(["test.mde.*"]) == {"test.mde.*": FindResult(None, [])}


def test_update_metadata_buffered_then_visible(client):
    key = "test.mdb.a"
    assert client.update_metadata({key: md((10, 100))}) == {}
    assert client.find(["test.mdb.*"])["test.mdb.*"].results == [key]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ra = client.read_all(key)
        if ra.error is None:
            break
        time.sleep(0.05)
    assert ra.metadata == md((10, 100))


# ----------------------------------------------------------------- find
def test_find(client):
    t0 = t_base()
    keys = ["test.find.a.x", "test.find.a.y", "test.find.b", "test.find.c.d.e"]
    assert client.write({k: [(t0, 1.0)] for k in keys}, skip_buffering=True) == {}
    res = client.find(["test.find.*", "test.find.**", "test.find.a.?", "test.find.{b,c}",
                       "test.find.nothing.*", "test.find.[", "test..find"])
    assert res == {
        "test.find.*": FindResult(None, ["test.find.a.*", "test.find.b", "test.find.c.*"]),
        "test.find.**": FindResult(None, sorted(keys)),
        "test.find.a.?": FindResult(None, ["test.find.a.x", "test.find.a.y"]),
        "test.find.{b,c}": FindResult(None, ["test.find.b", "test.find.c.*"]),
        "test.find.nothing.*": FindResult(None, []),
        "test.find.[": FindResult(Error("invalid pattern 'test.find.[': unbalanced '[' at index 10"), []),
        "test..find": FindResult(Error("invalid pattern 'test..find': empty component ('..') at index 4"), []),
    }


# ----------------------------------------------------------------- delete / rename
def test_delete_series(client):
    t0 = t_base()
    on_disk = ["test.del.a.x", "test.del.a.y", "test.del.b", "test.del.t.u.v"]
    assert client.write({k: [(t0, 1.0)] for k in on_disk}, skip_buffering=True) == {}
    assert client.write({"test.del.a.buffered": [(t0, 2.0)]}) == {}  # only in the write buffer
    res = client.delete_series(["test.del.a.*", "test.del.b", "test.del.missing", "test.del.t.**",
                                "test.del.[", "a..b"])
    # the buffered series may have been flushed already: then it counts on disk
    a = res.pop("test.del.a.*")
    assert a.error is None
    assert (a.disk_series_deleted, a.buffer_series_deleted) in {(2, 1), (3, 0), (3, 1)}
    assert res == {
        "test.del.b": DeleteResult(None, 1, 0),
        "test.del.missing": DeleteResult(None, 0, 0),
        "test.del.t.**": DeleteResult(None, 1, 0),
        "test.del.[": DeleteResult(Error("invalid pattern 'test.del.[': unbalanced '[' at index 9"), 0, 0),
        "a..b": DeleteResult(Error("invalid pattern 'a..b': empty component ('..') at index 1"), 0, 0),
    }
    assert client.find(["test.del.**"])["test.del.**"].results == []
    assert client.read(["test.del.a.buffered"], t0 - 10, t0)["test.del.a.buffered"] == {}


def test_rename_series(client):
    t0 = t_base()
    assert client.write({"test.ren.src": [(t0, 1.0)], "test.ren.src2": [(t0 + 10, 2.0)],
                         "test.ren.dst2": [(t0, 5.0)], "test.ren.src3": [(t0, 3.0)],
                         "test.ren.dst3": [(t0 + 20, 4.0)]}, skip_buffering=True) == {}
    assert client.rename_series({"test.ren.src": "test.ren.moved.dst"}) == {}
    assert client.read_all("test.ren.moved.dst").points.pairs() == [(t0, 1.0)]
    assert client.read_all("test.ren.src").error == Error("test.ren.src: series does not exist")
    # existing destination without merge: refused; with merge: combined
    assert client.rename_series({"test.ren.src2": "test.ren.dst2"}) == {
        "test.ren.src2": Error("test.ren.dst2: destination exists (use merge)")}
    assert client.rename_series({"test.ren.src3": "test.ren.dst3"}, merge=True) == {}
    assert client.read_all("test.ren.dst3").points.pairs() == [(t0, 3.0), (t0 + 20, 4.0)]
    assert client.rename_series({"test.ren.nothing": "test.ren.x", "test.ren.dst2": "a..b"}) == {
        "test.ren.nothing": Error("test.ren.nothing: series does not exist"),
        "test.ren.dst2": Error("invalid key 'a..b': empty component ('..') at index 1"),
    }


# ----------------------------------------------------------------- read_all
def test_read_all(client):
    t0 = t_base()
    pts = [(t0 + 10 * i, i * 1.5) for i in range(20)]
    assert client.write({"test.ra.a": pts}, skip_buffering=True) == {}
    ra = client.read_all("test.ra.a")
    assert ra.error is None
    assert ra.metadata == md((10, 8640), (60, 43200), xff=0.0, agg=1)
    assert ra.points.pairs() == pts
    missing = client.read_all("test.ra.missing")
    assert missing.error == Error("test.ra.missing: series does not exist")
    assert missing.metadata is None and len(missing.points) == 0
    assert client.read_all("a..b").error == Error("invalid key 'a..b': empty component ('..') at index 1")


# ----------------------------------------------------------------- stats / admin
def test_stats(client):
    before = client.stats()
    client.find(["test.nothing.*"])
    after = client.stats()
    assert all(isinstance(v, int) for v in after.values())
    assert after["thrift.find_calls"] == before.get("thrift.find_calls", 0) + 1
    assert after["thrift.connections_open"] >= 1
    assert any(k.startswith("store.query.write_buffer.cached_disk.") for k in after), sorted(after)[:50]
    assert "store.query.write_buffer.queue_points" in after


def test_verify_and_read_from_all_without_hash_store(client):
    assert client.get_verify_status() == {"hash_store_configured": 0}
    assert client.start_verify(True) is False
    assert client.start_verify(False) is False
    assert client.cancel_verify() is False
    assert client.get_read_from_all() is False
    assert client.set_read_from_all(True) is False
    assert client.get_read_from_all() is False


# ----------------------------------------------------------------- bad input on the wire
def _frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def _message(name: str, seqid: int, body: bytes, mtype: int = TMessageType.CALL) -> bytes:
    otrans = TTransport.TMemoryBuffer()
    oprot = TBinaryProtocol.TBinaryProtocol(otrans)
    oprot.writeMessageBegin(name, mtype, seqid)
    otrans.write(body)
    return otrans.getvalue()


def _recv_frame(sock: socket.socket) -> bytes | None:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack("!I", head)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_exception(payload: bytes) -> tuple[str, int, TApplicationException]:
    iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(payload))
    name, mtype, seqid = iprot.readMessageBegin()
    assert mtype == TMessageType.EXCEPTION
    x = TApplicationException()
    x.read(iprot)
    return name, seqid, x


def _connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.thrift_port), timeout=10)
    return s


def test_garbage_header_closes_only_that_connection(server, client):
    before = client.stats()["thrift.protocol_errors"]
    with _connect(server) as s:
        s.sendall(_frame(b"\x00\x01garbage-not-thrift"))
        assert _recv_frame(s) is None  # closed
    assert client.stats()["thrift.protocol_errors"] == before + 1
    assert client.find(["test.*"])["test.*"].error is None


def test_undecodable_arguments_get_an_exception_reply(server, client):
    before = client.stats()["thrift.protocol_errors"]
    with _connect(server) as s:
        # write: a map claiming 1000 entries, then the frame ends
        body = struct.pack("!bh", TType.MAP, 1) + struct.pack("!bbi", TType.STRING, TType.LIST, 1000)
        s.sendall(_frame(_message("write", 7, body)))
        name, seqid, x = _read_exception(_recv_frame(s))
        assert (name, seqid, x.type) == ("write", 7, TApplicationException.PROTOCOL_ERROR)
        assert x.message.startswith("write: cannot decode the request: ")
        # the same connection still works
        s.sendall(_frame(_message("get_read_from_all", 8, b"\x00")))
        reply = _recv_frame(s)
        iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(reply))
        assert iprot.readMessageBegin() == ("get_read_from_all", TMessageType.REPLY, 8)
        res = Cyclone.get_read_from_all_result()
        res.read(iprot)
        assert res.success is False
    assert client.stats()["thrift.protocol_errors"] == before + 1


def test_wrong_argument_types_are_per_request(server, client):
    with _connect(server) as s:
        # read with targets sent as a string and start_time as a double
        body = (struct.pack("!bh", TType.STRING, 1) + struct.pack("!i", 3) + b"abc"
                + struct.pack("!bh", TType.DOUBLE, 2) + struct.pack("!d", 1.5) + b"\x00")
        s.sendall(_frame(_message("read", 3, body)))
        iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(_recv_frame(s)))
        assert iprot.readMessageBegin() == ("read", TMessageType.REPLY, 3)
        res = Cyclone.read_result()
        res.read(iprot)
        assert res.success == {}
        # read with a target but no times: a per-target error
        body = (struct.pack("!bh", TType.LIST, 1) + struct.pack("!bi", TType.STRING, 1)
                + struct.pack("!i", 6) + b"test.x" + b"\x00")
        s.sendall(_frame(_message("read", 4, body)))
        iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(_recv_frame(s)))
        assert iprot.readMessageBegin() == ("read", TMessageType.REPLY, 4)
        res = Cyclone.read_result()
        res.read(iprot)
        err = res.success["test.x"]["test.x"].error
        assert err.description == "read: start_time and end_time are required (i64 Unix seconds)"
        # a write whose datapoints lack values: an error for that key only
        t0 = t_base()
        bad_dp = struct.pack("!bh", TType.I64, 1) + struct.pack("!q", t0) + b"\x00"
        good_dp = (struct.pack("!bh", TType.I64, 1) + struct.pack("!q", t0)
                   + struct.pack("!bh", TType.DOUBLE, 2) + struct.pack("!d", 9.0) + b"\x00")
        body = (struct.pack("!bh", TType.MAP, 1) + struct.pack("!bbi", TType.STRING, TType.LIST, 2)
                + struct.pack("!i", 10) + b"test.wt.bd" + struct.pack("!bi", TType.STRUCT, 1) + bad_dp
                + struct.pack("!i", 10) + b"test.wt.ok" + struct.pack("!bi", TType.STRUCT, 1) + good_dp
                + b"\x00")
        s.sendall(_frame(_message("write", 5, body)))
        iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(_recv_frame(s)))
        assert iprot.readMessageBegin() == ("write", TMessageType.REPLY, 5)
        res = Cyclone.write_result()
        res.read(iprot)
        assert res.success == {
            "test.wt.bd": T.Error("test.wt.bd: datapoint 0 has no valid value (None)", False, False),
            "test.wt.ok": T.Error("", False, False),
        }
    assert dense(client.read(["test.wt.ok"], t0 - 10, t0)["test.wt.ok"]["test.wt.ok"]) == [9.0]


def test_unknown_method_and_oversized_frame(server, client):
    before = client.stats()
    with _connect(server) as s:
        s.sendall(_frame(_message("no_such_method", 11, b"\x00")))
        name, seqid, x = _read_exception(_recv_frame(s))
        assert (name, seqid, x.type) == ("no_such_method", 11, TApplicationException.UNKNOWN_METHOD)
        assert x.message == "Unknown function no_such_method"
        # a length prefix over the limit (256 MiB) closes the connection at once
        s.sendall(struct.pack("!I", 0xFFFFFFF0) + b"x" * 100)
        assert _recv_frame(s) is None
    after = client.stats()
    assert after["thrift.unknown_methods"] == before["thrift.unknown_methods"] + 1
    assert after["thrift.frames_too_large"] == before["thrift.frames_too_large"] + 1


def test_non_canonical_encoding_uses_the_generated_decoder(server, client):
    """Datapoint fields in reverse order (legal Thrift): same result, slow path counted."""
    t0 = t_base()
    before = client.stats()["thrift.slow_path_decodes"]
    dp = (struct.pack("!bh", TType.DOUBLE, 2) + struct.pack("!d", 3.25)
          + struct.pack("!bh", TType.I64, 1) + struct.pack("!q", t0) + b"\x00")
    body = (struct.pack("!bh", TType.MAP, 1) + struct.pack("!bbi", TType.STRING, TType.LIST, 1)
            + struct.pack("!i", 10) + b"test.nc.aa" + struct.pack("!bi", TType.STRUCT, 1) + dp
            + struct.pack("!bh", TType.BOOL, 2) + b"\x01" + b"\x00")
    with _connect(server) as s:
        s.sendall(_frame(_message("write", 1, body)))
        iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(_recv_frame(s)))
        assert iprot.readMessageBegin() == ("write", TMessageType.REPLY, 1)
        res = Cyclone.write_result()
        res.read(iprot)
        assert res.success == {"test.nc.aa": T.Error("", False, False)}
    assert client.read_all("test.nc.aa").points.pairs() == [(t0, 3.25)]
    assert client.stats()["thrift.slow_path_decodes"] == before + 1


def test_generated_client_round_trip(server):
    """An unmodified generated client (e.g. an old Cyclone tool) sees the same data."""
    t0 = t_base()
    raw, trans = raw_client(server.thrift_port)
    try:
        assert raw.update_metadata({"test.gen.a": T.SeriesMetadata([T.ArchiveArg(10, 360)], 0.5, 1)},
                                   True, False, False, True, False) == {"test.gen.a": T.Error("", False, False)}
        assert raw.write({"test.gen.a": [T.Datapoint(t0, 1.0), T.Datapoint(t0 + 20, 2.0)]}, True, False) == {
            "test.gen.a": T.Error("", False, False)}
        res = raw.read(["test.gen.*"], t0 - 10, t0 + 30, False)
        assert res == {"test.gen.*": {"test.gen.a": T.ReadResult(
            None, [T.Datapoint(t0, 1.0), T.Datapoint(t0 + 20, 2.0)], t0, t0 + 40, 10)}}
        ra = raw.read_all("test.gen.a", False)
        assert ra == T.ReadAllResult(None, T.SeriesMetadata([T.ArchiveArg(10, 360)], 0.5, 1),
                                     [T.Datapoint(t0, 1.0), T.Datapoint(t0 + 20, 2.0)])
        assert raw.find(["test.gen.*"], False) == {"test.gen.*": T.FindResult(None, ["test.gen.a"])}
        assert raw.delete_series(["test.gen.a"], False, False) == {"test.gen.*".replace("*", "a"):
                                                                    T.DeleteResult(None, 1, 0)}
    finally:
        trans.close()


# ----------------------------------------------------------------- scale, pipelining, threads
def test_many_series_round_trip(client):
    t0 = t_base()
    n = 3000
    rng = np.random.default_rng(1)
    data = {f"test.many.k{i:05d}": Points(t0 + 10 * np.arange(10), rng.normal(size=10)) for i in range(n)}
    assert client.write(data) == {}
    res = client.read(["test.many.*"], t0 - 10, t0 + 90)["test.many.*"]
    assert len(res) == n
    for key, pts in data.items():
        rr = res[key]
        assert (rr.start_time, rr.end_time, rr.step) == (t0, t0 + 100, 10)
        np.testing.assert_array_equal(rr.values, pts.values)


def test_concurrent_clients(server):
    t0 = t_base()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with ThriftClient("127.0.0.1", server.thrift_port) as c:
                for j in range(20):
                    key = f"test.conc.w{i}.k{j}"
                    assert c.write({key: [(t0, float(i * 100 + j))]}) == {}
                    rr = c.read([key], t0 - 10, t0)[key][key]
                    assert dense(rr) == [float(i * 100 + j)]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with ThriftClient("127.0.0.1", server.thrift_port) as c:
        assert len(c.find(["test.conc.**"])["test.conc.**"].results) == 120


def test_pipelined_requests_answered_in_order(server):
    with _connect(server) as s:
        frames = b"".join(_frame(_message("get_read_from_all", i, b"\x00")) for i in range(1, 30))
        s.sendall(frames)
        for i in range(1, 30):
            iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(_recv_frame(s)))
            assert iprot.readMessageBegin() == ("get_read_from_all", TMessageType.REPLY, i)


# ----------------------------------------------------------------- connection handling
def test_connection_refused_is_a_recoverable_error():
    c = ThriftClient("127.0.0.1", free_port(), connect_timeout=2, retries=1)
    with pytest.raises(ThriftConnectionError) as info:
        c.find(["x"])
    assert info.value.recoverable is True
    assert info.value.to_error().recoverable is True


def test_request_error_raises(server):
    c = ThriftClient("127.0.0.1", server.thrift_port)
    try:
        # a client bug simulated on the wire: an unknown method through the client plumbing
        with pytest.raises(ThriftRequestError) as info:
            c._call("no_such_method", Cyclone.stats_args())
        assert info.value.kind == TApplicationException.UNKNOWN_METHOD
        assert c.get_read_from_all() is False  # the connection is still usable
    finally:
        c.close()


def test_client_reconnects_after_server_restart(tmp_path):
    srv = CycloneServer(tmp_path)
    srv.start()
    c = ThriftClient("127.0.0.1", srv.thrift_port, retries=1)
    try:
        t0 = t_base()
        assert c.write({"test.rc.a": [(t0, 1.0)]}, skip_buffering=True) == {}
        srv.stop()
        with pytest.raises(ThriftConnectionError):
            c.find(["test.*"])
        srv.start()
        assert c.read_all("test.rc.a").points.pairs() == [(t0, 1.0)]
        # the server closes the idle connection (restart): the next call reconnects silently
        srv.stop()
        srv.start()
        assert c.rename_series({"test.rc.a": "test.rc.b"}) == {}
        assert c.find(["test.rc.*"])["test.rc.*"].results == ["test.rc.b"]
        assert c.reconnects >= 0
    finally:
        c.close()
        srv.stop()
