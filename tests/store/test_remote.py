"""RemoteStore against a real Cyclone server process: every call, peer down (recoverable
errors), a write buffer in front riding out a restart, the pool bound, timeouts."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from cyclone.series import ArchiveArg, Points, SeriesMetadata
from cyclone.store.autocreate import AutocreateRules
from cyclone.client.thrift import ThriftClient
from cyclone.store.remote import RemoteStore, committed_writes
from cyclone.store.write_buffer import WriteBufferStore
from tests.client.cyclone_server import CycloneServer, free_port

pytestmark = pytest.mark.timeout(120)

RULES = [["test.**", "10:1d,60:30d", 0, "average"]]


def base_time() -> int:
    t = int(time.time())
    return t - t % 60 - 3600


@pytest.fixture
def server(tmp_path):
    (tmp_path / "srv").mkdir()
    srv = CycloneServer(tmp_path / "srv").start()
    yield srv
    srv.stop()


def test_every_call_round_trips(server):
    store = RemoteStore("127.0.0.1", server.thrift_port, connection_limit=2, timeout=10)
    try:
        t0 = base_time()
        md = SeriesMetadata([ArchiveArg(10, 100)], 0.0, 4)
        assert store.update_metadata({"test.a.x": md}, skip_buffering=True) == {}
        data = {f"test.a.k{i}": Points(t0 + 10 * np.arange(4), np.arange(4) + i) for i in range(20)}
        assert store.write(data, skip_buffering=True) == {}
        got = store.read(["test.a.k3", "test.a.*"], t0 - 10, t0 + 100)
        assert got["test.a.k3"]["test.a.k3"].datapoints() == [(t0 + 10 * j, float(j + 3)) for j in range(4)]
        assert sorted(got["test.a.*"]) == sorted([*data, "test.a.x"])
        ra = store.read_all("test.a.x")
        assert ra.error is None and ra.metadata == md
        assert store.read_all("test.a.k1").points.pairs() == [(t0 + 10 * j, float(j + 1)) for j in range(4)]
        assert store.find(["test.*"])["test.*"].results == ["test.a.*"]
        assert store.rename_series({"test.a.k0": "test.b.k0"}) == {}
        assert store.find(["test.b.*"])["test.b.*"].results == ["test.b.k0"]
        deleted = store.delete_series(["test.a.k1*"])
        assert deleted["test.a.k1*"].disk_series_deleted == 11  # k1, k10..k19
        # a refused key comes back as that key's own error, not recoverable
        errors = store.write({"bad key": Points([t0], [1.0]), "test.a.k2": Points([t0], [5.0])})
        assert set(errors) == {"bad key"} and not errors["bad key"].recoverable
        stats = store.stats()
        assert stats["connects"] >= 1 and stats["connections_open"] <= 2
    finally:
        store.close()


def test_skip_buffering_reaches_the_peer_only_when_committed(server):
    """A write buffer flushes with skip_buffering=True: the peer's own buffer takes such
    writes, unless the caller asked for committed writes (repair, a client's skip_buffering)."""
    store = RemoteStore("127.0.0.1", server.thrift_port)
    peer = ThriftClient("127.0.0.1", server.thrift_port)

    def counters() -> tuple[int, int]:
        st = peer.stats()
        return (st.get("store.query.write_buffer.points_buffered", 0),
                st.get("store.query.write_buffer.cached_disk.points_written", 0))
    try:
        t0 = base_time()
        assert store.write({"test.c.a": Points([t0], [1.0])}, skip_buffering=True) == {}
        buffered_before, _ = counters()
        assert buffered_before == 1  # taken by the peer's write buffer
        with committed_writes():
            assert store.write({"test.c.b": Points([t0], [2.0])}, skip_buffering=True) == {}
        buffered, _written = counters()
        assert buffered == buffered_before  # straight to the peer's disk ...
        rr = store.read_all("test.c.b")  # ... so read_all (which skips buffers) sees it
        assert rr.points.pairs() == [(t0, 2.0)]
    finally:
        peer.close()
        store.close()


def test_peer_down_gives_recoverable_errors_fast():
    store = RemoteStore("127.0.0.1", free_port(), timeout=5, retry_interval=1.0)
    try:
        t0 = time.monotonic()
        errors = store.write({"test.k1": Points([1], [1.0]), "test.k2": Points([1], [2.0])})
        assert set(errors) == {"test.k1", "test.k2"}
        assert all(e.recoverable for e in errors.values())
        assert store.update_metadata({"test.k": SeriesMetadata([ArchiveArg(10, 10)])})["test.k"].recoverable
        assert store.read(["test.*"], 0, 100)["test.*"]["test.*"].error.recoverable
        assert store.read_all("test.k1").error.recoverable
        assert store.find(["test.*"])["test.*"].error.recoverable
        assert store.delete_series(["test.*"])["test.*"].error.recoverable
        assert store.rename_series({"test.a": "test.b"})["test.a"].recoverable
        assert time.monotonic() - t0 < 3
        stats = store.stats()
        assert stats["connect_failures"] >= 1 and stats["fast_failures"] >= 1 and stats["peer_down"] == 1
    finally:
        store.close()


def test_timeout_is_recoverable():
    # a peer that accepts connections and never answers
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    store = RemoteStore("127.0.0.1", listener.getsockname()[1], timeout=0.5)
    try:
        t0 = time.monotonic()
        errors = store.write({"test.k": Points([1], [1.0])})
        assert errors["test.k"].recoverable and "timed out" in errors["test.k"].description
        assert time.monotonic() - t0 < 3
    finally:
        store.close()
        listener.close()


def test_connection_limit_bounds_the_pool(server):
    store = RemoteStore("127.0.0.1", server.thrift_port, connection_limit=2, timeout=10)
    t0 = base_time()
    failures = []
    peak = []

    def worker(n: int) -> None:
        for i in range(10):
            errs = store.write({f"test.pool.w{n}.k{i}": Points([t0], [float(i)])}, skip_buffering=True)
            if errs:
                failures.append(errs)
            peak.append(store.stats()["connections_open"])

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not failures
        assert max(peak) <= 2
        assert store.stats()["connects"] <= 2
        assert len(store.find(["test.pool.**"])["test.pool.**"].results) == 80
    finally:
        store.close()


def test_write_buffer_keeps_points_across_a_peer_restart(tmp_path):
    (tmp_path / "srv").mkdir()
    srv = CycloneServer(tmp_path / "srv")
    srv.start()
    remote = RemoteStore("127.0.0.1", srv.thrift_port, timeout=5, retry_interval=0.2)
    buffer = WriteBufferStore(remote, AutocreateRules(RULES), retry_delay=0.2)
    t0 = base_time()
    try:
        assert buffer.write({"test.r.before": Points([t0], [1.0])}) == {}
        assert buffer.flush(timeout=20)
        srv.stop()
        # written while the peer is down: queued, retried, not lost
        for i in range(50):
            assert buffer.write({f"test.r.k{i}": Points([t0 + 10 * j for j in range(3)],
                                                         [i, i + 1, i + 2])}) == {}
        time.sleep(1.0)
        assert buffer.stats()["points_requeued"] > 0
        assert buffer.buffered_points() == 150
        # a read of the down peer fails recoverably (the caller may retry)
        rr = buffer.read(["test.r.k7"], t0 - 10, t0 + 100)["test.r.k7"]["test.r.k7"]
        assert rr.error is not None and rr.error.recoverable
        srv.start()
        assert buffer.flush(timeout=30)
        assert buffer.stats().get("points_dropped", 0) == 0
        got = remote.read([f"test.r.k{i}" for i in range(50)], t0 - 10, t0 + 100)
        for i in range(50):
            key = f"test.r.k{i}"
            assert got[key][key].datapoints() == [(t0, float(i)), (t0 + 10, i + 1.0), (t0 + 20, i + 2.0)]
        # pooled connections from before the restart were replaced transparently
        assert remote.read_all("test.r.before").points.pairs() == [(t0, 1.0)]
    finally:
        if not srv.alive():  # the buffer's close flushes: give it its peer back
            srv.start()
        buffer.close()
        srv.stop()


def test_config_builds_remote_store(tmp_path):
    from cyclone.store.factory import build_store, validate_store_config

    cfg = validate_store_config("s", {"type": "remote", "hostname": "127.0.0.1", "port": 1}, str(tmp_path))
    assert cfg["connection_limit"] == 8 and cfg["timeout"] == 10
    store = build_store(cfg, AutocreateRules(RULES))
    try:
        assert isinstance(store, RemoteStore) and store.is_remote
        assert store.apply_config({"connection_limit": 3, "timeout": 2.5}) == ["connection_limit", "timeout"]
        assert store.connection_limit == 3 and store.timeout == 2.5
    finally:
        store.close()


def test_write_buffer_close_gives_up_on_a_peer_that_stays_down(tmp_path):
    """close() retries a down peer for close_timeout_secs, then drops and counts
    what it could not write instead of blocking shutdown forever."""
    remote = RemoteStore("127.0.0.1", free_port(), timeout=1, retry_interval=0.1)
    buffer = WriteBufferStore(remote, AutocreateRules(RULES), retry_delay=0.1, close_timeout_secs=1.5)
    t0 = base_time()
    for i in range(20):
        assert buffer.write({f"test.down.k{i}": Points([t0, t0 + 10], [1.0, 2.0])}) == {}
    started = time.monotonic()
    buffer.close()
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 15
    assert buffer.stats()["points_dropped_at_close"] == 40
