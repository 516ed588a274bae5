"""Benchmark: cyclone.store.whisper against the PyPI whisper package, same process.

    .venv/bin/python -m bench.whisper_bench [--runs 7] [--dir /tmp]

Every row is the median over `--runs` runs of the time per call (each run
repeats the call enough times to last a few milliseconds; whisper's and our
runs alternate so load from other processes hits both alike). Layout:
10s:1d,1m:30d,1h:5y (the file is 1.1 MB). Rows marked "fd" use the
file-descriptor API with a held fd and a cached header, which is what the
server does; their ratio is against whisper's path-based call.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time

import numpy as np
import whisper as W

from cyclone.store import whisper as C

LAYOUT = [(10, 8640), (60, 43200), (3600, 43800)]
NOW = 1_700_000_000
DAY, MONTH, YEARS5 = 86400, 30 * 86400, 5 * 365 * 86400


def _calibrate(fn, min_time: float) -> int:
    fn()  # warm up
    n = 1
    while n < 1 << 16:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_time:
            break
        n *= 2
    return n


def _batch(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def paired(fn_a, fn_b, runs: int, min_time: float = 0.005) -> tuple[float, float]:
    """Median seconds per call of fn_a() and fn_b(), runs interleaved (a, b, a, b, ...)
    so that load from other processes hits both alike."""
    na, nb = _calibrate(fn_a, min_time), _calibrate(fn_b, min_time)
    sa, sb = [], []
    for _ in range(runs):
        sa.append(_batch(fn_a, na))
        sb.append(_batch(fn_b, nb))
    return statistics.median(sa), statistics.median(sb)


def fill(path: str) -> None:
    """Data in every archive: 5 years hourly, 30 days per minute, 1 day per 10 s."""
    rng = np.random.default_rng(1)
    fd = os.open(path, os.O_RDWR)
    try:
        h = C.read_header(fd, path)
        for step, span in ((3600, YEARS5 - 3600), (60, MONTH - 60), (10, DAY - 10)):
            ts = np.arange(NOW - span, NOW + 1, step, dtype=np.int64)
            vals = rng.normal(100.0, 15.0, len(ts)).round(3)
            vals[rng.random(len(ts)) < 0.02] = np.nan  # some gaps
            keep = ~np.isnan(vals)
            C.update_many_fd(fd, h, ts[keep], vals[keep], NOW)
    finally:
        os.close(fd)


def fmt(seconds: float) -> str:
    if seconds >= 1e-3:
        return "%.2f ms" % (seconds * 1e3)
    return "%.1f µs" % (seconds * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--dir", default=None, help="where to put the files (default: a temp dir)")
    args = ap.parse_args()
    runs = args.runs
    work = tempfile.mkdtemp(prefix="whisper_bench_", dir=args.dir)
    rows: list[tuple[str, float, float]] = []
    try:
        # --- create ---------------------------------------------------------
        counter = [0]

        def creator(mod, **kw):
            def go():
                counter[0] += 1
                p = os.path.join(work, "c%d.wsp" % counter[0])
                mod.create(p, list(LAYOUT), **kw)
                os.unlink(p)
            return go

        def create_fd():
            counter[0] += 1
            p = os.path.join(work, "c%d.wsp" % counter[0])
            fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            C.create_fd(fd, LAYOUT)
            os.close(fd)
            os.unlink(p)

        rows.append(("create (zero-filled, whisper's default)", *paired(creator(W), creator(C), runs)))
        rows.append(("create sparse=True", *paired(creator(W, sparse=True), creator(C, sparse=True), runs)))
        rows.append(("fd: open + create_fd (sparse) + close",
                     *paired(creator(W, sparse=True), create_fd, runs)))

        # --- a filled file, one copy per library (byte-identical) ------------
        base = os.path.join(work, "base.wsp")
        C.create(base, list(LAYOUT))
        fill(base)
        pw, pc = os.path.join(work, "w.wsp"), os.path.join(work, "c.wsp")
        shutil.copy(base, pw)
        shutil.copy(base, pc)
        fd = os.open(pc, os.O_RDWR)
        header = C.read_header(fd, pc)

        # --- update_many of 360 points (1 hour of 10 s data, propagating) ----
        ts = list(range(NOW - 3590, NOW + 1, 10))
        rng = np.random.default_rng(2)
        points = list(zip(ts, rng.normal(50.0, 5.0, len(ts)).tolist()))
        ts_a = np.array(ts, dtype=np.int64)
        vals_a = np.array([v for _, v in points])
        w_many = lambda: W.update_many(pw, points, now=NOW)  # noqa: E731
        rows.append(("update_many 360 points", *paired(w_many, lambda: C.update_many(pc, points, now=NOW), runs)))
        assert open(pw, "rb").read() == open(pc, "rb").read(), "update_many results differ"
        rows.append(("fd: update_many_fd 360 points",
                     *paired(w_many, lambda: C.update_many_fd(fd, header, ts_a, vals_a, NOW), runs)))
        one = points[-1:]
        rows.append(("fd: update_many_fd 1 point (vs update_many 1 point)",
                     *paired(lambda: W.update_many(pw, one, now=NOW),
                             lambda: C.update_many_fd(fd, header, ts_a[-1:], vals_a[-1:], NOW), runs)))

        # --- 1,000 single updates ------------------------------------------
        singles = [(NOW - 10 * i, float(i % 97)) for i in range(1000)]

        def thousand(mod, path):
            def go():
                for t, v in singles:
                    mod.update(path, v, t, now=NOW)
            return go

        def thousand_fd():
            for t, v in singles:
                C.update_fd(fd, header, v, t, NOW)
        rows.append(("1,000 single update()", *paired(thousand(W, pw), thousand(C, pc), runs, 0.0)))
        assert open(pw, "rb").read() == open(pc, "rb").read(), "update results differ"
        rows.append(("fd: 1,000 update_fd", *paired(thousand(W, pw), thousand_fd, runs, 0.0)))

        # --- fetches --------------------------------------------------------
        for label, span in (("1 day", DAY), ("30 days", MONTH), ("5 years", YEARS5)):
            frm = NOW - span
            assert W.fetch(pw, frm, NOW, now=NOW) == C.fetch(pc, frm, NOW, now=NOW), label
            w_fetch = lambda: W.fetch(pw, frm, NOW, now=NOW)  # noqa: E731
            rows.append(("fetch %s" % label, *paired(w_fetch, lambda: C.fetch(pc, frm, NOW, now=NOW), runs)))
            rows.append(("fd: fetch_fd %s" % label,
                         *paired(w_fetch, lambda: C.fetch_fd(fd, header, frm, NOW, NOW), runs)))
        os.close(fd)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("whisper %s vs cyclone.store.whisper; layout 10s:1d,1m:30d,1h:5y; median of %d runs"
          % (getattr(W, "__version__", "1.1.x"), runs))
    print("python %s, numpy %s, %d CPUs, load average %.2f %.2f %.2f"
          % (platform.python_version(), np.__version__, os.cpu_count() or 0, *os.getloadavg()))
    print()
    print("| operation | whisper | cyclone | speedup |")
    print("|---|---:|---:|---:|")
    for name, t_w, t_c in rows:
        print("| %s | %s | %s | %.1fx |" % (name, fmt(t_w), fmt(t_c), t_w / t_c))


if __name__ == "__main__":
    main()
