"""A real carbon-relay (PyPI carbon 1.1.10) forwarding pickle to Cyclone.

The relay runs in the foreground from .venv/bin/carbon-relay.py with a temp
carbon.conf (GRAPHITE_ROOT, STORAGE_DIR, LOG_DIR in tmp; its own receiver
ports free on 127.0.0.1; DESTINATIONS = Cyclone's pickle port). Points sent
to the relay (line and pickle) must arrive in Cyclone's whisper files exactly.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import CycloneProcess, free_port

RELAY = Path(sys.executable).parent / "carbon-relay.py"

pytestmark = pytest.mark.skipif(not RELAY.exists(), reason="carbon-relay.py (PyPI carbon) not installed")


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"carbon-relay exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"carbon-relay not listening on {port}:\n{log.read_text(errors='replace')}")


@pytest.fixture
def relay_factory(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(cyclone_pickle_port: int, method: str) -> tuple[int, int]:
        root = tmp_path / "graphite"
        conf = root / "conf"
        for d in (conf, root / "storage" / "whisper", root / "log"):
            d.mkdir(parents=True, exist_ok=True)
        line_port, pickle_port = free_port(), free_port()
        dest = f"127.0.0.1:{cyclone_pickle_port}:a"
        (conf / "carbon.conf").write_text(f"""
[cache]
STORAGE_DIR = {root}/storage
LOCAL_DATA_DIR = {root}/storage/whisper
WHITELISTS_DIR = {root}/storage/lists
LOG_DIR = {root}/log
PID_DIR = {root}/storage

[relay]
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line_port}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle_port}
ENABLE_UDP_LISTENER = False
RELAY_METHOD = {method}
REPLICATION_FACTOR = 1
DESTINATIONS = {dest}
DESTINATION_PROTOCOL = pickle
MAX_QUEUE_SIZE = 1000000
MAX_DATAPOINTS_PER_MESSAGE = 500
QUEUE_LOW_WATERMARK_PCT = 0.8
USE_FLOW_CONTROL = True
""")
        (conf / "storage-schemas.conf").write_text("[default]\npattern = .*\nretentions = 1s:1h\n")
        (conf / "relay-rules.conf").write_text(f"[default]\ndefault = true\ndestinations = {dest}\n")
        log = root / "log" / "relay.out"
        env = dict(os.environ, GRAPHITE_ROOT=str(root), GRAPHITE_CONF_DIR=str(conf))
        proc = subprocess.Popen([sys.executable, str(RELAY), f"--config={conf / 'carbon.conf'}",
                                 f"--rules={conf / 'relay-rules.conf'}", "--nodaemon",
                                 f"--logdir={root / 'log'}", f"--pidfile={root / 'relay.pid'}", "start"],
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=str(root))
        procs.append(proc)
        _wait_port(line_port, proc, log)
        _wait_port(pickle_port, proc, log)
        return line_port, pickle_port

    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


@pytest.mark.parametrize("method", ["rules", "consistent-hashing"])
def test_relay_forwards_pickle_to_cyclone(cyclone_factory, relay_factory, method: str) -> None:
    srv: CycloneProcess = cyclone_factory(rules=[["**", "1:1h", 0, "average"]]).start()
    line_port, pickle_port = relay_factory(srv.pickle_port, method)
    now = int(time.time())
    expected: dict[str, dict[int, float]] = {}
    # line protocol into the relay
    lines = []
    for s in range(50):
        key = f"relay.{method.replace('-', '_')}.line.s{s}"
        for i in range(40):
            ts, value = now - 600 + i, s * 100 + i * 0.5
            lines.append(f"{key} {value!r} {ts}\n")
            expected.setdefault(key, {})[ts] = value
    with socket.create_connection(("127.0.0.1", line_port)) as sock:
        sock.sendall("".join(lines).encode())
    # pickle protocol into the relay (protocol 2, tuples, like a python 2 relay chain)
    items = []
    for s in range(50):
        key = f"relay.{method.replace('-', '_')}.pickle.s{s}"
        for i in range(40):
            ts, value = now - 500 + i, -s - i / 4
            items.append((key, (ts, value)))
            expected.setdefault(key, {})[ts] = value
    with socket.create_connection(("127.0.0.1", pickle_port)) as sock:
        for start in range(0, len(items), 300):
            payload = pickle.dumps(items[start:start + 300], protocol=2)
            sock.sendall(struct.pack("!L", len(payload)) + payload)
    for key, pts in expected.items():
        srv.wait_points(key, pts, timeout=60)
    stats = srv.stats()
    assert stats["pickle.points"] >= 4000
    assert stats["pickle.refused_pickles"] == 0 and stats["pickle.bad_frames"] == 0
