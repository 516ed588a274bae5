"""Query benchmark (issue: the HTTP API): Cyclone vs graphite-web on the same whisper files.

(a) /render?format=json of 1,000 series x 1 day at 10 s (8,640 points each);
(b) /metrics/find for `a.*.c.*` over 100,000 series (1,000 matches), in
    the default treejson format and in the cluster pickle format (which
    carries each leaf's interval, so both servers read every header).

Both servers run in the same run on the same files: Cyclone (`python -m
cyclone conf.json`, or the test helper's mini server while server.py is a
stub) with its data directory, and graphite-web 1.1.10 from the venv with
STANDARD_DIRS pointing at that directory (standard finder, no cluster),
served by a threaded wsgiref server. Each request is made once to warm
up, then timed `--reps` times (median reported). The answers are checked
equal before timing. Prints a markdown table.

The whisper files are written directly with numpy (the byte layout of
whisper 1.1; one file is checked against `whisper.fetch`), which keeps
the setup of 101,000 files to seconds.

Usage: .venv/bin/python bench/query_bench.py [--reps N] [--series 1000] [--find-series 100000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import pickle
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.test_http_helpers import GraphiteWeb, HttpCyclone, make_config  # noqa: E402

POINT = np.dtype([("t", ">u4"), ("v", ">f8")])


def whisper_bytes(archives: list[tuple[int, int]], first: int, values_per_archive: list[np.ndarray],
                  xff: float = 0.0, agg: int = 1) -> bytes:
    """A whole whisper file: header, archive table, then each archive's points from slot 0."""
    header = struct.pack("!2LfL", agg, max(s * n for s, n in archives), xff, len(archives))
    offset = 16 + 12 * len(archives)
    table = b""
    bodies = []
    for (spp, n), values in zip(archives, values_per_archive):
        table += struct.pack("!3L", offset, spp, n)
        pts = np.zeros(n, dtype=POINT)
        k = len(values)
        start = first - first % spp
        pts["t"][:k] = start + spp * np.arange(k)
        pts["v"][:k] = values
        bodies.append(pts.tobytes())
        offset += n * 12
    return header + table + b"".join(bodies)


def make_render_data(data_dir: Path, n_series: int, now: int) -> tuple[int, int]:
    """n_series files render.h<i>.cpu, one archive at 10 s, every slot filled.

    The archive holds 1 day + 1 hour so that a 1-day window is never clamped
    by a second ticking between the request's `now` and the server's clock.
    """
    spp, n = 10, 9000
    first = now - now % spp - (n - 1) * spp
    rng = np.random.default_rng(7)
    base = np.round(rng.random(n) * 100, 3)
    for i in range(n_series):
        d = data_dir / "render" / f"h{i:04d}"
        d.mkdir(parents=True, exist_ok=True)
        values = base + i
        values[(np.arange(n) + i) % 97 == 0] = 0.0
        (d / "cpu.wsp").write_bytes(whisper_bytes([(spp, n)], first, [values]))
    return first, spp


def make_find_data(data_dir: Path, n_series: int) -> int:
    """n_series tiny files <l1>.h<NN>.<l3>.m<N>; `a.*.c.*` matches n_series / 100."""
    l1 = [chr(ord("a") + i) for i in range(10)]
    l3 = [chr(ord("c") + i) for i in range(10)]
    per_dir = 10
    hosts = max(1, n_series // (len(l1) * len(l3) * per_dir))
    body = whisper_bytes([(60, 10)], 0, [np.empty(0)])
    count = 0
    for a in l1:
        for h in range(hosts):
            for c in l3:
                d = data_dir / a / f"h{h:03d}" / c
                d.mkdir(parents=True, exist_ok=True)
                for m in range(per_dir):
                    (d / f"m{m}.wsp").write_bytes(body)
                    count += 1
    return count


def timed_get(port: int, path: str, params: dict, timeout: float = 600) -> tuple[float, int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.request("GET", path + "?" + urlencode(params, doseq=True))
        resp = conn.getresponse()
        body = resp.read()
        return time.perf_counter() - t0, resp.status, body
    finally:
        conn.close()


def measure(port: int, path: str, params: dict, reps: int) -> tuple[float, bytes]:
    _t, status, body = timed_get(port, path, params)  # warm-up (and the answer to compare)
    assert status == 200, (status, body[:300])
    times = []
    for _ in range(reps):
        t, status, _b = timed_get(port, path, params)
        assert status == 200
        times.append(t)
    return statistics.median(times), body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per request (median)")
    ap.add_argument("--series", type=int, default=1000, help="series rendered")
    ap.add_argument("--find-series", type=int, default=100_000, help="series in the find tree")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cyclone-query-bench-"))
    now = int(time.time())
    t0 = time.perf_counter()
    srv = HttpCyclone(tmp / "cyclone", config=make_config(tmp / "cyclone" / "data"))
    data_dir = srv.data_dir
    first, step = make_render_data(data_dir, args.series, now)
    n_find = make_find_data(data_dir, args.find_series)
    setup_secs = time.perf_counter() - t0

    import whisper  # the reference reader: the generated bytes must be real whisper files

    (w_start, w_end, w_step), w_values = whisper.fetch(str(data_dir / "render" / "h0001" / "cpu.wsp"),
                                                        now - 3600, now, now=now)
    assert w_step == 10 and None not in w_values[:-1], "generated whisper file does not read back"

    rows = []
    with srv:
        # graphite-web's own fetch/find timeouts (6 s / 3 s) would cut the big render short
        gw = GraphiteWeb(tmp / "graphite-web", whisper_dir=data_dir,
                         extra_settings={"FETCH_TIMEOUT": 600.0, "FIND_TIMEOUT": 600.0})
        with gw:
            until = now
            frm = now - 86400
            render_params = {"target": "render.*.cpu", "from": frm, "until": until, "now": now,
                             "format": "json"}
            c_render, c_body = measure(srv.http_port, "/render", render_params, args.reps)
            g_render, g_body = measure(gw.port, "/render", render_params, max(1, args.reps - 1))
            c_json, g_json = json.loads(c_body), json.loads(g_body)
            assert len(c_json) == args.series and c_json == g_json, "render answers differ"
            points = sum(len(s["datapoints"]) for s in c_json)
            del c_json, g_json, c_body, g_body
            rows.append((f"/render json: {args.series} series x 1 day at 10 s ({points:,} points)",
                         c_render, g_render, 5))

            for fmt in ("treejson", "pickle"):
                find_params = {"query": "a.*.c.*", "format": fmt}
                c_find, c_fbody = measure(srv.http_port, "/metrics/find", find_params, args.reps + 2)
                g_find, g_fbody = measure(gw.port, "/metrics/find", find_params, args.reps + 2)
                if fmt == "treejson":
                    c_res, g_res = json.loads(c_fbody), json.loads(g_fbody)
                    matches = len(c_res)
                    assert c_res == g_res, "find answers differ"
                else:
                    c_res = sorted(n["path"] for n in pickle.loads(c_fbody))
                    g_res = sorted(n["path"] for n in pickle.loads(g_fbody))
                    matches = len(c_res)
                    assert c_res == g_res, "find answers differ"
                what = "distinct names" if fmt == "treejson" else "paths"
                rows.append((f"/metrics/find `a.*.c.*` {fmt}: {n_find:,} series, {matches:,} {what}",
                             c_find, g_find, 10))
    total = time.perf_counter() - t0

    print()
    print(f"Cyclone mode: {srv.mode} server; graphite-web 1.1.10 (standard finder, same files); "
          f"median of {args.reps} (graphite-web render: {max(1, args.reps - 1)}) after a warm-up; "
          f"setup {setup_secs:.1f} s, total {total:.0f} s")
    print()
    print("| request | Cyclone | graphite-web | speedup | target |")
    print("|---|---:|---:|---:|---:|")
    ok = True
    for name, c, g, target in rows:
        ratio = g / c if c > 0 else float("inf")
        ok &= ratio >= target
        print(f"| {name} | {c * 1000:.0f} ms | {g * 1000:.0f} ms | {ratio:.1f}x | >= {target}x |")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"\nkept {tmp}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
