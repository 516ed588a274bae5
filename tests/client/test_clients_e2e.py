"""Every client against one real server process: what one client writes, the others read."""

from __future__ import annotations

import math
import time

import pytest

from cyclone.client import HTTPClient, HTTPClientError, LineClient, PickleClient, ThriftClient
from cyclone.client.http import safe_unpickle
from cyclone.series import Points
from tests.client.cyclone_server import CycloneServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = CycloneServer(tmp_path_factory.mktemp("clients"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def thrift(server):
    c = ThriftClient("127.0.0.1", server.thrift_port)
    yield c
    c.close()


@pytest.fixture(scope="module")
def http(server):
    return HTTPClient("127.0.0.1", server.http_port, timeout=30)


def t_base() -> int:
    now = int(time.time())
    return now - now % 600 - 600


def wait_values(thrift: ThriftClient, key: str, frm: int, until: int, expected: list, timeout: float = 10):
    """Poll a read until it shows `expected` (ingest is asynchronous)."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        rr = thrift.read([key], frm, until)[key].get(key)
        if rr is not None:
            got = [None if math.isnan(v) else v for v in rr.values.tolist()]
            if got == expected:
                return
        time.sleep(0.05)
    assert got == expected


def test_line_tcp_client(server, thrift):
    t0 = t_base()
    with LineClient("127.0.0.1", server.line_port, batch_size=2) as c:
        c.write("test.line.a", 1.5, t0)
        c.write("test.line.a", 2, t0 + 10)
        c.write_points({"test.line.b": Points([t0 + 20], [-4.0])})
    wait_values(thrift, "test.line.a", t0 - 10, t0 + 20, [1.5, 2.0, None])
    wait_values(thrift, "test.line.b", t0 - 10, t0 + 20, [None, None, -4.0])


def test_line_udp_client(server, thrift):
    t0 = t_base()
    with LineClient("127.0.0.1", server.udp_port, udp=True, max_datagram_bytes=64) as c:
        for i in range(10):
            c.write(f"test.udp.k{i}", float(i), t0)
    for i in range(10):
        wait_values(thrift, f"test.udp.k{i}", t0 - 10, t0, [float(i)])


def test_pickle_client(server, thrift):
    t0 = t_base()
    with PickleClient("127.0.0.1", server.pickle_port, batch_size=3) as c:
        c.write_points({"test.pk.a": [(t0, 3.5), (t0 + 10, 4.5)], "test.pk.b": [(t0, 1.0)]})
        c.write("test.pk.b", math.nan, t0)  # NaN deletes the point just written
    wait_values(thrift, "test.pk.a", t0 - 10, t0 + 10, [3.5, 4.5])
    time.sleep(0.3)
    wait_values(thrift, "test.pk.b", t0 - 10, t0 + 10, [None, None])


def test_http_client_render_and_find(server, thrift, http):
    t0 = t_base()
    assert thrift.write({"test.http.x.a": [(t0, 1.5), (t0 + 10, 2.0)], "test.http.x.b": [(t0, 3.0)]},
                        skip_buffering=True) == {}
    body = http.render(["test.http.x.*"], from_=t0 - 10, until=t0 + 20)
    assert [(s["target"], s["datapoints"]) for s in body] == [
        ("test.http.x.a", [[1.5, t0], [2.0, t0 + 10], [None, t0 + 20]]),
        ("test.http.x.b", [[3.0, t0], [None, t0 + 10], [None, t0 + 20]]),
    ]
    pk = http.render("test.http.x.a", from_=t0 - 10, until=t0 + 20, format="pickle")
    assert [(s["name"], s["pathExpression"], s["start"], s["end"], s["step"], s["values"]) for s in pk] == [
        ("test.http.x.a", "test.http.x.a", t0, t0 + 30, 10, [1.5, 2.0, None])]
    series = http.render_series(["sumSeries(test.http.x.*)"], t0 - 10, t0 + 20)
    rr = series["sumSeries(test.http.x.*)"]
    assert (rr.start_time, rr.end_time, rr.step) == (t0, t0 + 30, 10)
    assert [None if math.isnan(v) else v for v in rr.values.tolist()] == [4.5, 2.0, None]
    found = http.find("test.http.*")
    assert found == [{"path": "test.http.x", "is_leaf": False}]
    leaves = http.find("test.http.x.*", format="pickle")
    assert [(f["path"], f["is_leaf"]) for f in leaves] == [("test.http.x.a", True), ("test.http.x.b", True)]
    tree = http.find("test.http.*", format="treejson")
    assert tree == [{"text": "x", "id": "test.http.x", "allowChildren": 1, "expandable": 1, "leaf": 0}]
    assert "http.render_format_json" in http.stats()
    with pytest.raises(HTTPClientError) as info:
        http.render("sumSeries(", from_=t0)
    assert info.value.status == 400
    assert b"unbalanced parenthesis" in info.value.body


def test_safe_unpickle_refuses_classes():
    import pickle

    assert safe_unpickle(pickle.dumps([{"a": (1, 2.5, None, True)}])) == [{"a": (1, 2.5, None, True)}]
    with pytest.raises(pickle.UnpicklingError):
        safe_unpickle(pickle.dumps(Points([1], [2.0])))
