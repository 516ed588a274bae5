"""Ingest benchmark: the same load into Cyclone and into carbon-cache, in one run.

For each protocol (line TCP, pickle) and shape (series x points per series:
10,000 x 10, 100,000 x 1, 1,000 x 100), a fresh server (a `python -m
cyclone` process, or `carbon-cache.py --nodaemon` from PyPI carbon 1.1.10
with MAX_CACHE_SIZE, MAX_UPDATES_PER_SECOND and MAX_CREATES_PER_MINUTE all
inf) gets the whole load over one TCP connection, interval by interval
(every series' point i, then every series' point i+1, ...), pickle in
frames of 500 datapoints like carbon-relay sends. Measured:

- accepted pts/s: points / time until the client's last send returned and
  the server closed the connection after reading everything;
- persisted pts/s: points / time until every point is readable from the
  whisper files. That time is the last modification time (st_mtime) of the
  series' files, taken once a check has found every file holding exactly
  its points. The check (two small preads a file, in this process) runs
  only while the server is quiet (under 10% of a core for QUIET_SECS), so it
  takes no CPU from the server it measures and adds no lag of its own: a
  checker polling during the writes is either slow to see the last file
  (round-robin: once past the write front, it must go round every missing
  file before it comes back) or favours one write order;
- CPU seconds (user+system, and the system part alone) of the server
  process during the run, and its peak RSS (VmHWM), via psutil / procfs.
  File creation is mostly kernel time: on a disk where creating an inode is
  slow, the kernel column shows it for both servers. Every run's files stay
  until the bench ends, because on ext4 without a journal creating files
  within a few minutes of deleting many costs up to 1 ms each (the kernel
  skips recently deleted inodes one by one while their inode table blocks
  are dirty); start the bench several minutes after deleting a large tree.
  Before each run the bench syncs, so no run pays for the writeback of the
  files the one before it made. Cyclone's modules are byte-compiled first, as
  pip did for carbon's.

Both servers use the same retention (60s:1d, one archive) and the same
key layout (bench.g<N>.s<M>, 1,000 series per directory).

Usage:
  .venv/bin/python bench/ingest_bench.py            # full run (~5-10 min on 2 cores)
  .venv/bin/python bench/ingest_bench.py --quick    # a tenth of the points
  options: --only cyclone|carbon, --protocols line,pickle, --shapes 10000x10,...,
           --write-threads N, --tmp DIR, --keep
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CARBON_CACHE = Path(PYTHON).parent / "carbon-cache.py"

STEP = 60
RETENTION_POINTS = 1440  # 60s:1d
HEADER_BYTES = 16 + 12   # metadata + one archive info
POINT = np.dtype([("t", ">u4"), ("v", ">f8")])
FRAME_ITEMS = 500
SHAPES = [(10_000, 10), (100_000, 1), (1_000, 100)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key_of(s: int) -> str:
    return f"bench.g{s // 1000}.s{s}"


def value_of(s: int, i: int) -> float:
    return s * 0.25 + i


@dataclass
class Load:
    n_series: int
    n_points: int
    base_ts: int

    @property
    def total(self) -> int:
        return self.n_series * self.n_points

    def ts(self, i: int) -> int:
        return self.base_ts + i * STEP

    def line_payload(self) -> bytes:
        parts = []
        for i in range(self.n_points):
            ts = self.ts(i)
            parts.append("".join(f"{key_of(s)} {value_of(s, i)!r} {ts}\n" for s in range(self.n_series)))
        return "".join(parts).encode()

    def pickle_payload(self) -> bytes:
        items = [(key_of(s), (self.ts(i), value_of(s, i)))
                 for i in range(self.n_points) for s in range(self.n_series)]
        out = []
        for start in range(0, len(items), FRAME_ITEMS):
            body = pickle.dumps(items[start:start + FRAME_ITEMS], protocol=2)
            out.append(struct.pack("!L", len(body)) + body)
        return b"".join(out)


class Checker:
    """Which series still lack points on disk; no whisper library.

    whisper places a point in a one-archive file at slot
    ((ts - base) / step) % points, where base is the timestamp in slot 0 (the
    first point ever written); a series' points are consecutive intervals,
    so their slots are one range, read and compared in one go.
    """

    def __init__(self, data_dir: Path, load: Load) -> None:
        self.data_dir = data_dir
        self.load = load
        self.remaining = list(range(load.n_series))
        self.expected_ts = np.array([load.ts(i) for i in range(load.n_points)], dtype=np.int64)
        self.offsets = np.arange(load.n_points, dtype=np.float64)

    def path(self, s: int) -> str:
        return f"{self.data_dir}/bench/g{s // 1000}/s{s}.wsp"

    def complete(self, s: int) -> bool:
        """Two small preads: slot 0 for the archive's base, then the slots that
        must hold the series' points (one range, or two where the ring wraps),
        compared with the bytes they must contain."""
        try:
            fd = os.open(self.path(s), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            head = os.pread(fd, 4, HEADER_BYTES)
            if len(head) < 4:
                return False
            base = struct.unpack(">L", head)[0]
            if base == 0:
                return False
            load = self.load
            first = ((load.ts(0) - base) // STEP) % RETENTION_POINTS
            n = load.n_points
            size = POINT.itemsize
            if first + n <= RETENTION_POINTS:
                raw = os.pread(fd, n * size, HEADER_BYTES + first * size)
            else:
                raw = (os.pread(fd, (RETENTION_POINTS - first) * size, HEADER_BYTES + first * size)
                       + os.pread(fd, (first + n - RETENTION_POINTS) * size, HEADER_BYTES))
        finally:
            os.close(fd)
        return raw == self.expected_bytes(s)

    def expected_bytes(self, s: int) -> bytes:
        rec = np.empty(self.load.n_points, dtype=POINT)
        rec["t"] = self.expected_ts
        rec["v"] = s * 0.25 + self.offsets
        return rec.tobytes()

    def sweep(self) -> int:
        """Check every series not yet complete; returns how many still are not."""
        self.remaining = [s for s in self.remaining if not self.complete(s)]
        return len(self.remaining)

    def last_write_ns(self) -> int:
        """The latest st_mtime of the series' files (call once all are complete)."""
        return max(os.stat(self.path(s)).st_mtime_ns for s in range(self.load.n_series))


QUIET_SECS = 0.25      # the server counts as quiet when its CPU time grew less than
QUIET_CPU_SHARE = 0.1  # this share of QUIET_SECS in the last QUIET_SECS


def cpu_secs(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def wait_until_persisted(proc: psutil.Process, checker: Checker, deadline: float) -> None:
    """Check the files each time the server has been quiet for QUIET_SECS, until
    every series is complete or the deadline passes."""
    before = cpu_secs(proc)
    while time.perf_counter() < deadline:
        time.sleep(QUIET_SECS)
        now = cpu_secs(proc)
        if now - before < QUIET_SECS * QUIET_CPU_SHARE and not checker.sweep():
            return
        before = cpu_secs(proc)


class Server:
    name = "?"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.proc: subprocess.Popen | None = None
        self.line_port = free_port()
        self.pickle_port = free_port()
        self.log = workdir / "server.log"

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def start(self) -> None:
        cmd, env = self.command()
        self.proc = subprocess.Popen(cmd, cwd=str(self.workdir), env=env, stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        for port in (self.line_port, self.pickle_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name} not listening on {port}")
                    time.sleep(0.05)
        time.sleep(0.5)  # let startup work (imports, first timers) settle before measuring CPU

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def peak_rss(self) -> int:
        assert self.proc is not None
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return psutil.Process(self.proc.pid).memory_info().rss


class CycloneServer(Server):
    name = "cyclone"

    def __init__(self, workdir: Path, write_threads: int = 1) -> None:
        super().__init__(workdir)
        self.write_threads = write_threads  # 1: the shipped cyclone.conf.json's num_write_threads

    def command(self) -> tuple[list[str], dict[str, str]]:
        cfg = {
            "hostname": "bench",
            "line_stream_listen": [f"127.0.0.1:{self.line_port}"],
            "line_datagram_listen": [],
            "pickle_listen": [f"127.0.0.1:{self.pickle_port}"],
            "shell_listen": [f"127.0.0.1:{free_port()}"],
            "http_listen": [],
            "thrift_port": f"127.0.0.1:{free_port()}",
            "log_level": 2,
            "store_config": {"type": "query", "substore": {
                "type": "write_buffer", "num_write_threads": self.write_threads, "batch_size": 1000,
                "substore": {"type": "cached_disk", "directory": str(self.data_dir)}}},
            "autocreate_rules": [["**", "60:1d", 0.5, "average"]],
        }
        conf = self.workdir / "cyclone.conf.json"
        conf.write_text(json.dumps(cfg, indent=1))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        return [PYTHON, "-m", "cyclone", str(conf)], env


class CarbonServer(Server):
    name = "carbon"

    def command(self) -> tuple[list[str], dict[str, str]]:
        root = self.workdir
        conf = root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (root / "log").mkdir(exist_ok=True)
        (conf / "carbon.conf").write_text(f"""
[cache]
STORAGE_DIR = {root}/storage
LOCAL_DATA_DIR = {self.data_dir}
WHITELISTS_DIR = {root}/storage/lists
LOG_DIR = {root}/log
PID_DIR = {root}
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {self.line_port}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {self.pickle_port}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {free_port()}
ENABLE_UDP_LISTENER = False
USE_FLOW_CONTROL = True
LOG_UPDATES = False
LOG_CREATES = False
LOG_CACHE_HITS = False
LOG_LISTENER_CONNECTIONS = False
WHISPER_AUTOFLUSH = False
WHISPER_FALLOCATE_CREATE = True
CACHE_WRITE_STRATEGY = sorted
""")
        (conf / "storage-schemas.conf").write_text("[default]\npattern = .*\nretentions = 60s:1d\n")
        env = dict(os.environ, GRAPHITE_ROOT=str(root), GRAPHITE_CONF_DIR=str(conf))
        return [PYTHON, str(CARBON_CACHE), f"--config={conf / 'carbon.conf'}", "--nodaemon",
                f"--logdir={root / 'log'}", f"--pidfile={root / 'carbon.pid'}", "start"], env


@dataclass
class Result:
    system: str
    protocol: str
    shape: str
    points: int
    accept_secs: float
    persist_secs: float
    cpu_secs: float
    sys_secs: float
    peak_rss: int
    complete: bool

    @property
    def accept_rate(self) -> float:
        return self.points / self.accept_secs

    @property
    def persist_rate(self) -> float:
        return self.points / self.persist_secs


def send_and_measure_accept(port: int, payload: bytes) -> float:
    """Seconds until the server has read every byte.

    The client half-closes after the last send; twisted (both servers) closes
    the connection when it reads that EOF, which comes after all the data.
    """
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        view = memoryview(payload)
        for start in range(0, len(payload), 1 << 20):
            s.sendall(view[start:start + (1 << 20)])
        s.shutdown(socket.SHUT_WR)
        s.settimeout(600)
        while s.recv(65536):
            pass
    return time.perf_counter() - t0


def run_one(system: str, protocol: str, shape: tuple[int, int], payloads: dict, tmp: Path, write_threads: int,
            timeout: float) -> Result:
    n_series, n_points = shape
    # write back what earlier runs left dirty: otherwise the kernel throttles or
    # flushes it during this run, which then pays for the one before it
    os.sync()
    workdir = Path(tempfile.mkdtemp(prefix=f"{system}-{protocol}-", dir=tmp))
    server: Server = CycloneServer(workdir, write_threads) if system == "cyclone" else CarbonServer(workdir)
    load: Load = payloads["load"]
    payload = payloads[protocol]
    server.start()
    try:
        proc = psutil.Process(server.proc.pid)
        cpu0 = proc.cpu_times()
        t0_ns = time.time_ns()
        port = server.line_port if protocol == "line" else server.pickle_port
        accept = send_and_measure_accept(port, payload)
        checker = Checker(server.data_dir, load)
        wait_until_persisted(proc, checker, time.perf_counter() + timeout)
        complete = not checker.remaining
        persist = (checker.last_write_ns() - t0_ns) / 1e9 if complete else math.inf
        cpu1 = proc.cpu_times()
        cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
        sys_cpu = cpu1.system - cpu0.system
        rss = server.peak_rss()
    finally:
        server.stop()
    return Result(system, protocol, f"{n_series:,} x {n_points}", load.total, accept, persist, cpu, sys_cpu,
                  rss, complete)


def table(results: list[Result]) -> str:
    out = ["| shape (series x points) | protocol | system | accepted pts/s | persisted pts/s | "
           "time to disk (s) | CPU s (of which kernel) | peak RSS MB |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    by = {(r.shape, r.protocol, r.system): r for r in results}
    for r in results:
        flag = "" if r.complete else " (INCOMPLETE)"
        out.append(f"| {r.shape} | {r.protocol} | {r.system}{flag} | {r.accept_rate:,.0f} | "
                   f"{r.persist_rate:,.0f} | {r.persist_secs:.2f} | {r.cpu_secs:.2f} ({r.sys_secs:.2f}) | "
                   f"{r.peak_rss / 2**20:.0f} |")
        if r.system == "carbon" and (r.shape, r.protocol, "cyclone") in by:
            c = by[(r.shape, r.protocol, "cyclone")]
            out.append(f"| {r.shape} | {r.protocol} | **cyclone / carbon** | "
                       f"**{c.accept_rate / r.accept_rate:.2f}x** | **{c.persist_rate / r.persist_rate:.2f}x** | "
                       f"{c.persist_secs / r.persist_secs:.2f}x | {c.cpu_secs / max(r.cpu_secs, 1e-9):.2f}x | "
                       f"{c.peak_rss / r.peak_rss:.2f}x |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the series per shape")
    ap.add_argument("--only", choices=["cyclone", "carbon"], help="benchmark one system only")
    ap.add_argument("--protocols", default="line,pickle")
    ap.add_argument("--shapes", default=",".join(f"{s}x{p}" for s, p in SHAPES),
                    help="comma-separated SERIESxPOINTS")
    ap.add_argument("--timeout", type=float, default=240, help="seconds to wait for the disk per run")
    ap.add_argument("--tmp", default=None, help="directory for the data (default: system temp)")
    ap.add_argument("--keep", action="store_true",
                    help="leave the data directories in place (default: deleted at the end); a full run "
                         "leaves about 5 GB (carbon fallocates every file), so delete them between runs")
    ap.add_argument("--write-threads", type=int, default=1,
                    help="Cyclone's write_buffer num_write_threads")
    args = ap.parse_args()
    if args.only != "cyclone" and not CARBON_CACHE.exists():
        print(f"carbon-cache.py not found at {CARBON_CACHE} (pip install carbon==1.1.10)", file=sys.stderr)
        return 2
    systems = [args.only] if args.only else ["cyclone", "carbon"]
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if args.quick:
        shapes = [(max(1, s // 10), p) for s, p in shapes]
    # carbon's modules were byte-compiled by pip; ours, installed editable, may not
    # be (PYTHONDONTWRITEBYTECODE): compiling from source costs memory at startup
    for package in (REPO / "cyclone", REPO / "thrift" / "gen-py"):
        compileall.compile_dir(str(package), quiet=1)
    # every run's data stays until the end: on ext4 without a journal, creating a
    # file within minutes of many deletes scans the recently deleted inodes, so a
    # run that followed the previous run's cleanup would pay for it
    tmp = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=args.tmp or tempfile.gettempdir()))
    try:
        return run_all(args, systems, shapes, tmp)
    finally:
        if args.keep:
            print(f"data kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_all(args: argparse.Namespace, systems: list[str], shapes: list[tuple[int, int]], tmp: Path) -> int:
    results: list[Result] = []
    t_start = time.time()
    for shape in shapes:
        load = Load(shape[0], shape[1], int(time.time()) - shape[1] * STEP - 120)
        load.base_ts -= load.base_ts % STEP
        payloads = {"load": load}
        protocols = args.protocols.split(",")
        if "line" in protocols:
            payloads["line"] = load.line_payload()
        if "pickle" in protocols:
            payloads["pickle"] = load.pickle_payload()
        for protocol in protocols:
            for system in systems:
                r = run_one(system, protocol, shape, payloads, tmp, args.write_threads, args.timeout)
                results.append(r)
                print(f"  {system:8s} {protocol:6s} {r.shape:>14s}: accepted {r.accept_rate:>10,.0f}/s, "
                      f"persisted {r.persist_rate:>10,.0f}/s in {r.persist_secs:6.2f} s, CPU {r.cpu_secs:6.2f} s "
                      f"(kernel {r.sys_secs:5.2f}), "
                      f"peak RSS {r.peak_rss / 2**20:5.0f} MB{'' if r.complete else ' INCOMPLETE'}",
                      file=sys.stderr, flush=True)
    print()
    print(table(results))
    print()
    print(f"({len(results)} runs in {time.time() - t_start:.0f} s; {os.cpu_count()} CPUs; "
          f"command: {' '.join([Path(sys.argv[0]).name] + sys.argv[1:])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
