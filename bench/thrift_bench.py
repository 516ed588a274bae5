"""Thrift benchmarks (issue: Thrift API and the Python client library).

Starts a real server (`python -m cyclone conf.json`: query -> write_buffer ->
cached_disk, in a temp directory) unless --port names a running one, then
measures over a real socket with `cyclone.client.ThriftClient`:

(a) `write` of 10,000 series x 10 points per call: points/s per call as the
    client sees it (the write buffer accepts the points), and sustained
    points/s until the buffer has flushed everything to disk. The series
    exist before timing (created by an untimed first call), so this is the
    steady state, not file creation;
(b) `read` of 1,000 series x 1 day at 10 s resolution (8,640 points each)
    with one pattern: seconds per call and points/s, with the ThriftClient
    (numpy codec) and with the plain generated client (one Python object
    per point) for comparison.

Prints a markdown table. Usage:
    .venv/bin/python bench/thrift_bench.py [--quick] [--port PORT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from thrift.protocol import TBinaryProtocol  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402

from cyclone.client import ThriftClient  # noqa: E402
from cyclone.series import Points  # noqa: E402
from cyclone_if import Cyclone  # noqa: E402

DAY = 86400
STEP = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: str) -> tuple[subprocess.Popen, int]:
    ports = {name: free_port() for name in ("line", "udp", "pickle", "shell", "http", "thrift")}
    config = {
        "hostname": "bench",
        "line_stream_listen": [f"127.0.0.1:{ports['line']}"],
        "line_datagram_listen": [f"127.0.0.1:{ports['udp']}"],
        "pickle_listen": [f"127.0.0.1:{ports['pickle']}"],
        "shell_listen": [f"127.0.0.1:{ports['shell']}"],
        "http_listen": [f"127.0.0.1:{ports['http']}"],
        "thrift_port": f"127.0.0.1:{ports['thrift']}",
        "stats_report_usecs": 0,
        "log_level": 2,
        "store_config": {"type": "query", "substore": {
            "type": "write_buffer", "num_write_threads": 1,
            "substore": {"type": "cached_disk", "directory": os.path.join(workdir, "data"),
                         "open_file_cache_size": 4096}}},
        "autocreate_rules": [["bench.**", "10:1d", 0, "average"]],
    }
    path = os.path.join(workdir, "cyclone.conf.json")
    with open(path, "w") as f:
        json.dump(config, f)
    log = open(os.path.join(workdir, "server.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "cyclone", path], cwd=workdir, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {open(os.path.join(workdir, 'server.log')).read()}")
        try:
            socket.create_connection(("127.0.0.1", ports["thrift"]), 0.5).close()
            return proc, ports["thrift"]
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def wait_flushed(client: ThriftClient, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = client.stats()
        queued = sum(v for k, v in stats.items()
                     if k.endswith(("write_buffer.queue_points", "write_buffer.queue_series",
                                    "write_buffer.queue_metadata")))
        if queued == 0:
            return
        time.sleep(0.05)
    raise RuntimeError("write buffer did not drain")


def bench_write(client: ThriftClient, n_series: int, n_points: int, calls: int) -> dict[str, float]:
    keys = [f"bench.w.h{i // 100:03d}.m{i % 100:02d}" for i in range(n_series)]
    now = int(time.time())
    base = now - now % STEP - (calls + 1) * n_points * STEP
    rng = np.random.default_rng(0)

    def batch(c: int) -> dict[str, Points]:
        ts = base + (c * n_points + np.arange(n_points)) * STEP
        return {k: Points(ts, rng.normal(size=n_points)) for k in keys}

    # untimed: create the series, let the files exist
    assert client.write(batch(0)) == {}
    wait_flushed(client)
    batches = [batch(c + 1) for c in range(calls)]
    per_call = []
    start = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        errors = client.write(b)
        per_call.append(time.perf_counter() - t)
        assert errors == {}, list(errors.items())[:3]
    accepted = time.perf_counter() - start
    wait_flushed(client)
    total = time.perf_counter() - start
    points = n_series * n_points
    return {
        "call_median_s": statistics.median(per_call),
        "call_points_per_s": points / statistics.median(per_call),
        "sustained_points_per_s": points * calls / total,
        "accepted_points_per_s": points * calls / accepted,
    }


def fill_read_series(client: ThriftClient, n_series: int) -> tuple[int, int]:
    now = int(time.time())
    end = now - now % STEP
    ts = np.arange(end - DAY + STEP, end + STEP, STEP, dtype=np.int64)
    values = np.sin(np.arange(len(ts)) / 100.0)
    per_call = 50
    for i in range(0, n_series, per_call):
        chunk = {f"bench.r.s{j:05d}": Points(ts, values + j) for j in range(i, min(n_series, i + per_call))}
        assert client.write(chunk, skip_buffering=True) == {}
    return int(ts[0]), int(ts[-1])


def bench_read(client: ThriftClient, port: int, n_series: int, repeats: int) -> dict[str, float]:
    fill_read_series(client, n_series)
    now = int(time.time())
    frm, until = now - DAY, now
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = client.read(["bench.r.*"], frm, until)["bench.r.*"]
        times.append(time.perf_counter() - t)
    assert len(res) == n_series
    points = sum(int(np.count_nonzero(~np.isnan(rr.values))) for rr in res.values())
    # the generated client: one ttypes.Datapoint per point
    sock = TSocket.TSocket("127.0.0.1", port)
    sock.setTimeout(600_000)
    # (the generated transport refuses frames over 16 MB unless told otherwise)
    trans = TTransport.TFramedTransport(sock, max_frame_size=TTransport.HARD_MAX_FRAME_SIZE)
    raw = Cyclone.Client(TBinaryProtocol.TBinaryProtocolAccelerated(trans))
    trans.open()
    raw_times = []
    for _ in range(max(1, repeats // 2)):
        t = time.perf_counter()
        r = raw.read(["bench.r.*"], frm, until, False)
        raw_times.append(time.perf_counter() - t)
    trans.close()
    assert sum(len(rr.data) for rr in r["bench.r.*"].values()) == points
    return {
        "points": points,
        "median_s": statistics.median(times),
        "points_per_s": points / statistics.median(times),
        "raw_median_s": statistics.median(raw_times),
        "raw_points_per_s": points / statistics.median(raw_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, help="use a running server's thrift port")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    args = parser.parse_args()
    w_series, w_points, w_calls = (10_000, 10, 5)
    r_series, r_repeats = (1_000, 3)
    if args.quick:
        w_series, w_calls, r_series, r_repeats = 1_000, 2, 100, 2
    workdir = None
    proc = None
    port = args.port
    if port is None:
        workdir = tempfile.mkdtemp(prefix="thrift-bench-")
        proc, port = start_server(workdir)
    try:
        client = ThriftClient("127.0.0.1", port, timeout=600)
        w = bench_write(client, w_series, w_points, w_calls)
        r = bench_read(client, port, r_series, r_repeats)
        client.close()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nThrift bench ({os.cpu_count()} CPUs, server + client on one machine)\n")
    print("| operation | per call | time per call (median) | points/s |")
    print("|---|---|---:|---:|")
    print(f"| write (accepted by the write buffer) | {w_series:,} series x {w_points} points "
          f"| {w['call_median_s'] * 1000:.1f} ms | {w['call_points_per_s']:,.0f} |")
    print(f"| write, sustained to disk ({w_calls} calls + flush) | {w_series:,} series x {w_points} points "
          f"| - | {w['sustained_points_per_s']:,.0f} |")
    print(f"| read, ThriftClient (numpy codec) | {r_series:,} series x 1 day @ 10 s "
          f"({r['points']:,} points) | {r['median_s'] * 1000:.0f} ms | {r['points_per_s']:,.0f} |")
    print(f"| read, generated client (objects per point) | {r_series:,} series x 1 day @ 10 s "
          f"| {r['raw_median_s'] * 1000:.0f} ms | {r['raw_points_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
