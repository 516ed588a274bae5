"""Store benchmarks (issue: the store tree).

(a) points/s through write_buffer -> cached_disk into 10,000 series x 100
    points, timed until everything is flushed to disk;
(b) peak RSS per buffered datapoint with 1,000,000 points buffered across
    100,000 series (flushing held back), measured in a fresh process;
(c) a read of 1 day at 10 s resolution for 1,000 series.

Usage: .venv/bin/python bench/store_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyclone.series import Points  # noqa: E402
from cyclone.store.autocreate import AutocreateRules  # noqa: E402
from cyclone.store.disk import CachedDiskStore  # noqa: E402
from cyclone.store.write_buffer import WriteBufferStore  # noqa: E402


def bench_ingest(n_series: int, n_points: int) -> tuple[float, float]:
    rules = AutocreateRules([["**", "10s:1d,1m:30d,1h:5y", 0, "average"]])
    with tempfile.TemporaryDirectory() as d:
        disk = CachedDiskStore(d, rules)
        wb = WriteBufferStore(disk, rules, num_write_threads=1, batch_size=1000)
        now = int(time.time())
        t0 = now - n_points * 10
        ts = np.arange(t0, t0 + n_points * 10, 10, dtype=np.int64)
        keys = [f"bench.host{i // 100}.metric{i % 100}" for i in range(n_series)]
        start = time.perf_counter()
        # 10 batches in time order, every series in every batch: how a real feed arrives
        per = max(1, n_points // 10)
        for b in range(0, n_points, per):
            wb.write({k: Points(ts[b:b + per], np.full(len(ts[b:b + per]), float(i)))
                      for i, k in enumerate(keys)})
        accepted = time.perf_counter() - start
        wb.flush()
        total = time.perf_counter() - start
        wb.close()
    return n_series * n_points / accepted, n_series * n_points / total


def bench_memory(n_series: int, per_series: int) -> float:
    code = f"""
import gc, os, time, numpy as np, psutil
from cyclone.series import Points
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.empty import EmptyStore
from cyclone.store.write_buffer import WriteBufferStore
rules = AutocreateRules([["**", "60:1d", 0, "average"]])
class Hold(EmptyStore):
    def write(self, *a, **k):
        time.sleep(3600)
keys = [f"mem.host{{i // 100}}.metric{{i % 100}}" for i in range({n_series})]
gc.collect()
proc = psutil.Process()
base = proc.memory_info().rss
wb = WriteBufferStore(Hold(), rules, max_buffered_points=0)
wb._stop.set()  # the flush thread exits while the buffer is empty: everything stays buffered
with wb._lock:
    wb._wakeup.notify_all()
wb._coordinator.join()
now = int(time.time())
# fed like the protocols feed it: one receive buffer's batch (5,000 series) at a time
for j in range({per_series}):
    for b in range(0, len(keys), 5000):
        wb.write({{k: Points(np.array([now - j * 60]), np.array([float(j)])) for k in keys[b:b + 5000]}})
gc.collect()
print((proc.memory_info().rss - base) / ({n_series} * {per_series}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def bench_read(n_series: int) -> float:
    rules = AutocreateRules([["**", "10s:1d,1m:30d,1h:5y", 0, "average"]])
    with tempfile.TemporaryDirectory() as d:
        disk = CachedDiskStore(d, rules)
        now = int(time.time())
        ts = np.arange(now - 86400, now, 10, dtype=np.int64)
        vals = np.arange(len(ts), dtype=np.float64)
        for i in range(n_series):
            disk.write({f"read.s{i // 100}.m{i % 100}": Points(ts, vals)})
        times = []
        for _ in range(5):
            start = time.perf_counter()
            res = disk.read(["read.*.*"], now - 86400, now)
            times.append(time.perf_counter() - start)
            assert len(res["read.*.*"]) == n_series
        disk.close()
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 10 if args.quick else 1
    accepted, persisted = bench_ingest(10_000 // n, 100)
    bytes_per_point = bench_memory(100_000 // n, 10)
    read_s = bench_read(1_000 // n)
    print("| figure | value |")
    print("|---|---|")
    print(f"| (a) write_buffer->cached_disk, {10_000 // n} series x 100 points: accepted | {accepted:,.0f} points/s |")
    print(f"| (a) ... until flushed to disk | {persisted:,.0f} points/s |")
    print(f"| (b) RSS per buffered point, {1_000_000 // n:,} points / {100_000 // n:,} series | {bytes_per_point:.1f} bytes |")
    print(f"| (c) read 1 day @10 s of {1_000 // n} series | {read_s * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
