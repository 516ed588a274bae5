"""Multi-process cluster tests: real `python -m cyclone` nodes on 127.0.0.1.

- test_cluster_expand_3_to_4_nodes: 3 nodes, 50,000 points for 5,000 series
  written to random nodes over line TCP and Thrift, every series read back
  exactly from every node and stored only on its owner; then a 4th node,
  all configs switched to 4 nodes, restart, `verify start repair` on every
  node (shell) while a reader checks that reads never miss data; afterwards
  every series is only on its owner and reads back from every node.
- test_cluster_peer_outage_loses_nothing: one node stopped for 10 s while
  writes continue through the others; after its restart every point
  written during the outage reads back from every node.

Select them with `pytest -m cluster` (or `pytest tests/integration/test_cluster.py`).
Every node is stopped in teardown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cyclone.client.thrift import ThriftClient
from cyclone.series import Points
from cyclone.store.hash import CarbonHashRing
from tests.client.cyclone_server import CycloneServer, free_port

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

PROMPT = b"cyclone> "
RULES = [["cyclone.**", "60:1d", 0, "average"], ["**", "60:2d", 0, "average"]]
REPLICAS = 100


# -- harness --------------------------------------------------------------------------
class Node:
    """One cluster node: its name, ports and data directory (fixed across restarts)."""

    def __init__(self, root: Path, index: int) -> None:
        self.index = index
        self.name = f"('127.0.0.1', 'node{index}')"
        self.dir = root / f"node{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.line_port = free_port()
        self.thrift_port = free_port()
        self.shell_port = free_port()
        self.ports = {"line": self.line_port, "pickle": free_port(), "http": free_port(),
                      "shell": self.shell_port, "thrift": self.thrift_port}
        self.server: CycloneServer | None = None

    def config(self, members: list["Node"], read_from_all: bool = False) -> dict[str, Any]:
        stores: dict[str, Any] = {}
        for m in members:
            if m is self:
                stores[m.name] = {"type": "write_buffer", "num_write_threads": 2,
                                  "substore": {"type": "cached_disk", "directory": str(self.data_dir)}}
            else:
                stores[m.name] = {"type": "write_buffer", "num_write_threads": 1,
                                  "substore": {"type": "remote", "hostname": "127.0.0.1",
                                               "port": m.thrift_port, "connection_limit": 4,
                                               "timeout": 10}}
        return {
            "hostname": f"node{self.index}",
            "line_stream_listen": [f"127.0.0.1:{self.line_port}"],
            "line_datagram_listen": [],
            "pickle_listen": [f"127.0.0.1:{self.ports['pickle']}"],
            "shell_listen": [f"127.0.0.1:{self.shell_port}"],
            "http_listen": [f"127.0.0.1:{self.ports['http']}"],
            "thrift_port": f"127.0.0.1:{self.thrift_port}",
            "store_threads": 4,
            "stats_report_usecs": 0,
            "log_level": 2,
            "store_config": {"type": "hash", "precision": -REPLICAS, "local": self.name,
                             "read_from_all": read_from_all, "stores": stores},
            "autocreate_rules": RULES,
        }

    def start(self, members: list["Node"], read_from_all: bool = False) -> None:
        self.server = CycloneServer(self.dir, self.config(members, read_from_all), startup_timeout=30)
        self.server.start()  # returns once every listener accepts connections

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=20)

    def client(self) -> ThriftClient:
        return ThriftClient("127.0.0.1", self.thrift_port, timeout=60)

    def shell(self, command: str) -> str:
        with socket.create_connection(("127.0.0.1", self.shell_port), timeout=30) as s:
            _read_until_prompt(s)
            s.sendall(command.encode() + b"\n")
            return _read_until_prompt(s)

    def local_keys(self) -> set[str]:
        keys = set()
        for dirpath, _dirs, files in os.walk(self.data_dir):
            rel = os.path.relpath(dirpath, self.data_dir)
            prefix = "" if rel == "." else rel.replace(os.sep, ".") + "."
            keys.update(prefix + f[:-4] for f in files if f.endswith(".wsp"))
        return keys


def start_all(nodes_: list[Node], members: list[Node], read_from_all: bool = False) -> None:
    """Start nodes concurrently (each waits for its own listeners)."""
    with ThreadPoolExecutor(len(nodes_)) as pool:
        list(pool.map(lambda n: n.start(members, read_from_all), nodes_))


def stop_all(nodes_: list[Node]) -> None:
    with ThreadPoolExecutor(len(nodes_)) as pool:
        list(pool.map(lambda n: n.stop(), nodes_))


def stats_of(node: Node) -> dict[str, int]:
    with node.client() as c:
        return c.stats()


def wait_drained(members: list[Node], timeout: float = 120) -> None:
    """Until no node has points queued (ingest or any write buffer), twice in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        queued = {}
        for m in members:
            st = stats_of(m)
            queued[m.index] = st.get("ingest.queued_points", 0) + sum(
                v for k, v in st.items() if k.endswith(("queue_points", "queue_metadata")))
        quiet = quiet + 1 if not any(queued.values()) else 0
        assert time.monotonic() < deadline, f"write buffers not drained: {queued}"
        time.sleep(0.3)


def _read_until_prompt(s: socket.socket) -> str:
    buf = b""
    while not buf.endswith(PROMPT):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf[: -len(PROMPT)].decode()


def parse_status(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" = ")
        if sep and value.strip().lstrip("-").isdigit():
            out[name.strip()] = int(value)
    return out


@pytest.fixture
def nodes(tmp_path):
    made: list[Node] = []

    def make(n: int) -> list[Node]:
        for _ in range(n):
            made.append(Node(tmp_path, len(made) + 1))
        return made[-n:]

    yield make
    for node in made:  # never leave a process behind
        try:
            node.stop()
        except Exception:
            if node.server is not None and node.server.proc is not None:
                node.server.kill()


def send_lines(node: Node, lines: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", node.line_port), timeout=30) as s:
        s.sendall("".join(lines).encode())
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        try:  # wait until the server has read everything and closed
            while s.recv(4096):
                pass
        except OSError:
            pass


def owner_of(members: list[Node], key: str) -> Node:
    ring = CarbonHashRing([m.name for m in members], REPLICAS)
    return members[ring.node_for(key)]


def read_exact(node: Node, expected: dict[str, list[tuple[int, float]]], start: int, end: int,
               batch: int = 500) -> list[str]:
    """Keys whose read from `node` differs from `expected` (errors count as different)."""
    bad = []
    keys = list(expected)
    with node.client() as c:
        for i in range(0, len(keys), batch):
            part = keys[i:i + batch]
            got = c.read(part, start, end)
            for key in part:
                rr = got.get(key, {}).get(key)
                if rr is None or rr.error is not None or rr.datapoints() != expected[key]:
                    bad.append(key)
    return bad


def wait_exact(members: list[Node], expected, start, end, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = {m.index: list(expected) for m in members}
    while True:
        for m in members:
            if pending[m.index]:
                pending[m.index] = read_exact(m, {k: expected[k] for k in pending[m.index]}, start, end)
        if not any(pending.values()):
            return
        if time.monotonic() > deadline:
            summary = {i: (len(v), v[:3]) for i, v in pending.items() if v}
            raise AssertionError(f"series not readable exactly from every node: {summary}")
        time.sleep(0.5)


def write_dataset(members: list[Node], n_series: int, n_points: int, t0: int,
                  seed: int) -> dict[str, list[tuple[int, float]]]:
    """Points to random nodes: half the series over line TCP, half over Thrift."""
    rnd = random.Random(seed)
    expected: dict[str, list[tuple[int, float]]] = {}
    line_batches: dict[int, list[str]] = {m.index: [] for m in members}
    thrift_batches: dict[int, dict[str, list[tuple[int, float]]]] = {m.index: {} for m in members}
    for i in range(n_series):
        key = f"cl.g{i % 17}.h{(i // 17) % 13}.s{i}"
        pts = [(t0 + 60 * j, round(rnd.uniform(-1e6, 1e6), 3)) for j in range(n_points)]
        expected[key] = pts
        for ts, v in pts:
            target = rnd.choice(members).index
            if i % 2:
                line_batches[target].append(f"{key} {v!r} {ts}\n")
            else:
                thrift_batches[target].setdefault(key, []).append((ts, v))
    for m in members:
        send_lines(m, line_batches[m.index])
        with m.client() as c:
            batch = thrift_batches[m.index]
            keys = list(batch)
            for i in range(0, len(keys), 1000):
                errors = c.write({k: Points.from_pairs(batch[k]) for k in keys[i:i + 1000]})
                assert errors == {}, list(errors.items())[:3]
    return expected


def assert_placement(members: list[Node], keys) -> None:
    where: dict[str, list[int]] = {}
    for m in members:
        for k in m.local_keys():
            where.setdefault(k, []).append(m.index)
    wrong = {k: (where.get(k), owner_of(members, k).index) for k in keys
             if where.get(k) != [owner_of(members, k).index]}
    assert not wrong, f"{len(wrong)} series not (only) on their owner, e.g. {list(wrong.items())[:5]}"


# -- the tests ---------------------------------------------------------------------------
def test_cluster_expand_3_to_4_nodes(nodes):
    t_begin = time.monotonic()
    first = nodes(3)
    start_all(first, first)
    t0 = int(time.time()) // 60 * 60 - 3 * 3600
    start, end = t0 - 60, t0 + 3600
    expected = write_dataset(first, 5000, 10, t0, seed=11)
    assert sum(len(v) for v in expected.values()) == 50_000
    t_written = time.monotonic() - t_begin
    wait_drained(first)
    t_drained = time.monotonic() - t_begin
    wait_exact(first, expected, start, end, timeout=60)
    t_read = time.monotonic() - t_begin
    stop_all(first)  # a clean stop flushes every buffer to disk
    assert_placement(first, expected)

    # a 4th node; every config lists 4 nodes (the new one last) and reads from all
    (fourth,) = nodes(1)
    members = first + [fourth]
    start_all(members, members, read_from_all=True)
    t_restarted = time.monotonic() - t_begin
    moving = {k for k in expected if owner_of(first, k) is not owner_of(members, k)}
    assert 0.15 * len(expected) < len(moving) < 0.35 * len(expected)

    # a reader checks exact reads from random nodes while the repairs run
    stop_reading = threading.Event()
    misses: list[tuple[int, str]] = []
    reads_done = [0]

    def reader() -> None:
        rnd = random.Random(5)
        keys = sorted(moving) + sorted(set(expected) - moving)[:500]
        while not stop_reading.is_set():
            node = rnd.choice(members)
            sample = {k: expected[k] for k in rnd.sample(keys, 200)}
            for key in read_exact(node, sample, start, end, batch=200):
                misses.append((node.index, key))
            reads_done[0] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for n in members:
            assert n.shell("verify start repair").strip() == "verify+repair started"
        deadline = time.monotonic() + 120
        statuses: dict[int, dict[str, int]] = {}
        while True:
            statuses = {n.index: parse_status(n.shell("verify status")) for n in members}
            if all(s.get("running") == 0 and s.get("runs") == 1 for s in statuses.values()):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.5)
    finally:
        stop_reading.set()
        thread.join(60)
    t_repaired = time.monotonic() - t_begin
    assert reads_done[0] > 0
    assert not misses, f"{len(misses)} reads missed data during the repair, e.g. {misses[:5]}"
    assert sum(s["moved"] for s in statuses.values()) == len(moving)
    assert sum(s["misplaced"] for s in statuses.values()) == len(moving)
    assert all(s["errors"] == 0 for s in statuses.values()), statuses
    # every series once, plus moved ones that reached their owner before its own walk passed them
    assert len(expected) <= sum(s["series_scanned"] for s in statuses.values()) <= len(expected) + len(moving)

    # after the repair: reads from every node with read-from-all off
    for n in members:
        n.shell("read-from-all off")
        assert "off" in n.shell("read-from-all").lower()
    wait_exact(members, expected, start, end, timeout=30)
    stop_all(members)
    assert_placement(members, expected)
    print(f"\nwritten {t_written:.1f}s, drained {t_drained:.1f}s, read back {t_read:.1f}s, "
          f"4 nodes up {t_restarted:.1f}s, repaired {t_repaired:.1f}s ({reads_done[0]} reads of 200 "
          f"series meanwhile), total {time.monotonic() - t_begin:.1f}s")


def test_cluster_peer_outage_loses_nothing(nodes):
    members = nodes(3)
    start_all(members, members)
    victim, alive = members[1], [members[0], members[2]]
    t_base = int(time.time()) // 60 * 60 - 6 * 3600
    keys = [f"out.k{i}" for i in range(300)]
    assert {owner_of(members, k).index for k in keys} == {1, 2, 3}
    expected: dict[str, list[tuple[int, float]]] = {k: [] for k in keys}
    step = [0]
    rnd = random.Random(3)

    def write_round(targets: list[Node]) -> None:
        """One new point for every key (a new minute), through random live nodes."""
        ts = t_base + 60 * step[0]
        step[0] += 1
        lines: dict[int, list[str]] = {t.index: [] for t in targets}
        for k in keys:
            v = float(rnd.randint(0, 10**6))
            expected[k].append((ts, v))
            lines[rnd.choice(targets).index].append(f"{k} {v!r} {ts}\n")
        for t in targets:
            send_lines(t, lines[t.index])

    for _ in range(3):
        write_round(members)
    wait_exact(members, expected, t_base - 60, t_base + 86400, timeout=60)

    victim.stop()
    outage_start = time.monotonic()
    during_from = step[0]
    while time.monotonic() - outage_start < 10:
        write_round(alive)
        time.sleep(0.5)
    during = step[0] - during_from
    assert during >= 10
    # the points for the stopped node are queued on the others and retried
    with alive[0].client() as c:
        stats = c.stats()
    assert sum(v for k, v in stats.items() if k.endswith("points_requeued")) > 0

    victim.start(members)
    for _ in range(3):
        write_round(members)
    wait_exact(members, expected, t_base - 60, t_base + 86400, timeout=60)
    n_points = sum(len(v) for v in expected.values())
    assert n_points == len(keys) * step[0]
    stop_all(members)
    assert_placement(members, keys)
