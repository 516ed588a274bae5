"""The server process: startup errors, graceful SIGTERM, hot reload, self-metrics."""

from __future__ import annotations

import json
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np

from tests.integration.conftest import PYTHON, REPO, CycloneProcess, base_config, free_port


def _run_expecting_failure(tmp_path, config_text: str, timeout: float = 30) -> subprocess.CompletedProcess:
    path = tmp_path / "conf.json"
    path.write_text(config_text)
    return subprocess.run([PYTHON, "-m", "cyclone", str(path)], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=timeout)


def test_bad_config_exits_2_with_message(tmp_path) -> None:
    r = _run_expecting_failure(tmp_path, '{"store_config": {"type": "disk"}, "log_level": 1}')
    assert r.returncode == 2
    assert "store_config.directory: missing" in r.stderr
    r = _run_expecting_failure(tmp_path, '{ this is not json')
    assert r.returncode == 2
    assert "not valid JSON" in r.stderr
    r = subprocess.run([PYTHON, "-m", "cyclone", str(tmp_path / "missing.json")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert "cannot read" in r.stderr


def test_port_in_use_exits_nonzero_with_message(tmp_path) -> None:
    cfg = base_config(tmp_path / "data")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        cfg["pickle_listen"] = [f"127.0.0.1:{port}"]
        r = _run_expecting_failure(tmp_path, json.dumps(cfg))
    assert r.returncode == 1
    assert f"cannot listen for pickle protocol on 127.0.0.1:{port}: address already in use" in r.stderr


def test_the_harness_knows_the_servers_listeners_from_anothers(cyclone_server: CycloneProcess) -> None:
    # wait_ready must not take a port someone else answers on for the server's
    # (at log_level >= 2 the server prints no "ready" line to wait for)
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        assert not cyclone_server._listens_on(foreign.getsockname()[1])
    assert cyclone_server._listens_on(cyclone_server.line_port)
    assert cyclone_server._listens_on(cyclone_server.pickle_port)


def test_console_script_and_module_entry_points(tmp_path) -> None:
    r = subprocess.run([PYTHON, "-m", "cyclone", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "config" in r.stdout
    script = REPO / ".venv" / "bin" / "cyclone"
    if script.exists():
        r = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "config" in r.stdout


def test_sigterm_loses_nothing(cyclone_factory) -> None:
    """200,000 points, SIGTERM right after the last send returns, restart, all there."""
    srv = cyclone_factory(rules=[["**", "1:1h", 0, "average"]])
    srv.start()
    now = int(time.time())
    n_series, per_series = 2000, 100      # 200,000 points
    base_ts = now - 1000
    # line protocol for the first half, pickle for the second; both connections stay open
    line_sock = socket.create_connection(("127.0.0.1", srv.line_port))
    pickle_sock = socket.create_connection(("127.0.0.1", srv.pickle_port))
    half = n_series // 2
    chunks = []
    for i in range(per_series):
        chunks.append("".join(f"term.s{s} {s * 1000 + i} {base_ts + i}\n" for s in range(half)).encode())
    for c in chunks:
        line_sock.sendall(c)
    for i in range(per_series):
        items = [(f"term.s{s}", (base_ts + i, float(s * 1000 + i))) for s in range(half, n_series)]
        payload = pickle.dumps(items, protocol=2)
        pickle_sock.sendall(struct.pack("!L", len(payload)) + payload)
    srv.signal(signal.SIGTERM)                 # immediately after the last send returned
    code = srv.wait(timeout=120)
    line_sock.close()
    pickle_sock.close()
    assert code == 0, srv.output()[-3000:]
    out = srv.output()
    assert "shutdown complete" in out
    srv.start()
    total = 0
    for s in range(n_series):
        pts = srv.read_points(f"term.s{s}")
        assert pts == {base_ts + i: float(s * 1000 + i) for i in range(per_series)}, f"term.s{s}"
        total += len(pts)
    assert total == 200_000
    with srv.shell() as sh:
        assert sh.cmd("find +count term.*") == "2000 series, 0 directories"
    assert srv.stop() == 0


def test_sigint_is_graceful_too(cyclone_server: CycloneProcess) -> None:
    now = int(time.time())
    cyclone_server.send_lines([f"int.a {i} {now - 100 + i}" for i in range(50)])
    cyclone_server.signal(signal.SIGINT)
    assert cyclone_server.wait(60) == 0
    assert len(cyclone_server.read_points("int.a")) == 50


def test_udp_datagrams_already_received_survive_sigterm(cyclone_server: CycloneProcess) -> None:
    now = int(time.time())
    grams = [f"term.udp {i} {now - 200 + i}\n".encode() for i in range(150)]
    cyclone_server.send_udp(grams)
    cyclone_server.signal(signal.SIGTERM)
    assert cyclone_server.wait(60) == 0
    assert cyclone_server.read_points("term.udp") == {now - 200 + i: float(i) for i in range(150)}


def test_self_metrics_written_as_series(cyclone_factory) -> None:
    srv = cyclone_factory(stats_report_usecs=300_000)
    srv.start()
    now = int(time.time())
    srv.send_lines([f"sm.a 1 {now - 5}", "garbage"])
    srv.wait_points("sm.a", {now - 5: 1.0})

    def reported() -> bool:
        pts = srv.read_points("cyclone.testhost.line_tcp.points")
        return bool(pts) and max(pts.values()) >= 1

    srv.wait_for(reported, timeout=20)
    assert max(srv.read_points("cyclone.testhost.line_tcp.bad_lines").values()) >= 1
    # per-store counters, named by tree position
    srv.wait_for(lambda: srv.read_points("cyclone.testhost.store.query.write_buffer.write_batches"))
    srv.wait_for(lambda: srv.wsp_path("cyclone.testhost.store.query.write_buffer.cached_disk.x").parent.is_dir())
    srv.wait_for(lambda: srv.read_points("cyclone.testhost.server.uptime_secs"))
    with srv.shell() as sh:
        text = sh.cmd("stats")
    assert "line_tcp.points = 1" in text
    assert "store.query.write_buffer.queue_points = " in text


def test_hot_reload_applies_live_fields(cyclone_factory) -> None:
    srv = cyclone_factory(rules=[["ok.**", "1:1h", 0, "average"]])
    srv.start()
    now = int(time.time())
    srv.send_lines([f"ok.a 1 {now - 5}", f"later.a 1 {now - 5}"])
    srv.wait_points("ok.a", {now - 5: 1.0})
    srv.wait_for(lambda: srv.stats()["ingest.keys_refused"] == 1)
    # new autocreate rules, a live store field, and a field that needs a restart
    cfg = dict(srv.config)
    cfg["autocreate_rules"] = [["**", "1:1h", 0, "average"]]
    cfg["store_config"]["substore"]["batch_size"] = 77
    cfg["store_threads"] = 3
    time.sleep(1.1)  # a new mtime even on coarse-grained filesystems
    srv.write_config(cfg)
    srv.wait_for(lambda: "config reloaded" in srv.output(), timeout=20)
    srv.wait_for(lambda: "write_buffer.batch_size" in srv.output(), timeout=20)
    assert "store_threads changed; restart the server to apply" in srv.output()
    srv.send_lines([f"later.b 2 {now - 4}"])
    srv.wait_points("later.b", {now - 4: 2.0})
    # a broken edit is logged and the running config kept
    time.sleep(1.1)
    srv.config_path.write_text("{ broken")
    srv.wait_for(lambda: "config reload failed" in srv.output(), timeout=20)
    srv.send_lines([f"later.c 3 {now - 3}"])
    srv.wait_points("later.c", {now - 3: 3.0})
    assert srv.stop() == 0


def test_many_connections(cyclone_server: CycloneProcess) -> None:
    now = int(time.time())
    before = cyclone_server.stats()["line_tcp.connections"]  # the readiness probe connected once
    socks = [socket.create_connection(("127.0.0.1", cyclone_server.line_port)) for _ in range(50)]
    for i, s in enumerate(socks):
        s.sendall(f"conn.c{i} {i} {now - 10}\n".encode())
    for s in socks:
        s.close()
    for i in range(50):
        cyclone_server.wait_points(f"conn.c{i}", {now - 10: float(i)})
    st = cyclone_server.stats()
    assert st["line_tcp.connections"] == before + 50
    cyclone_server.wait_for(lambda: cyclone_server.stats()["line_tcp.connections_open"] == 0)


def test_same_timestamp_last_write_wins_across_buffers(cyclone_server: CycloneProcess) -> None:
    now = int(time.time())
    with socket.create_connection(("127.0.0.1", cyclone_server.line_port)) as s:
        for v in range(200):
            s.sendall(f"order.k {v} {now - 7}\n".encode())
    cyclone_server.wait_for(lambda: cyclone_server.stats()["ingest.points_written"] == 200)
    cyclone_server.wait_points("order.k", {now - 7: 199.0})


def test_large_single_buffer(cyclone_server: CycloneProcess) -> None:
    now = int(time.time())
    n = 50_000
    data = "".join(f"big.k{i % 500} {i} {now - 3000 + i // 500}\n" for i in range(n)).encode()
    with socket.create_connection(("127.0.0.1", cyclone_server.line_port)) as s:
        s.sendall(data)
    cyclone_server.wait_for(lambda: cyclone_server.stats()["ingest.points_written"] == n, timeout=60)
    got = cyclone_server.wait_points("big.k7", {now - 3000 + j: float(j * 500 + 7) for j in range(100)})
    assert np.isclose(sum(got.values()), sum(j * 500 + 7 for j in range(100)))


def test_free_port_helper_is_sane() -> None:
    p = free_port()
    assert 1024 < p < 65536
    assert sys.version_info >= (3, 11)
