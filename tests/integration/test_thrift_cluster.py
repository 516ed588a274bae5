"""The Thrift admin methods wired to a real hash store (verify, read-from-all).

A server whose tree is a hash store over two local disk stores: the
methods must reach the server's verify / read-from-all state, and a series
planted on the wrong substore must be found (verify) and moved (repair).
"""

from __future__ import annotations

import time

import pytest

from cyclone.client import ThriftClient
from tests.client.cyclone_server import CycloneServer, default_config

pytestmark = pytest.mark.timeout(120)


def hash_config(tmp_path):
    config = default_config(tmp_path / "data")
    config["store_config"] = {"type": "hash", "precision": 8, "stores": {
        "a": {"type": "disk", "directory": str(tmp_path / "data_a")},
        "b": {"type": "disk", "directory": str(tmp_path / "data_b")},
    }}
    return config


def wait_verify_done(c: ThriftClient, runs: int, timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = c.get_verify_status()
        if status["runs"] >= runs and status["running"] == 0:
            return status
        time.sleep(0.05)
    raise AssertionError(f"verify did not finish: {status}")


def test_admin_methods_with_a_hash_store(tmp_path):
    now = int(time.time())
    t0 = now - now % 600 - 600
    keys = [f"test.cl.k{i}" for i in range(40)]
    with CycloneServer(tmp_path, hash_config(tmp_path)) as srv, \
            ThriftClient("127.0.0.1", srv.thrift_port) as c:
        status = c.get_verify_status()
        assert status["hash_store_configured"] == 1
        assert (status["running"], status["runs"], status["misplaced"]) == (0, 0, 0)
        # read-from-all: set returns the previous value
        assert c.get_read_from_all() is False
        assert c.set_read_from_all(True) is False
        assert c.get_read_from_all() is True
        assert c.set_read_from_all(False) is True
        assert c.get_read_from_all() is False
        assert c.cancel_verify() is False  # nothing running

        assert c.write({k: [(t0, float(i))] for i, k in enumerate(keys)}, skip_buffering=True) == {}
        # every key is where the ring wants it: verify finds nothing to move
        assert c.start_verify(False) is True
        status = wait_verify_done(c, 1)
        assert (status["series_scanned"], status["misplaced"], status["moved"], status["errors"]) == (40, 0, 0, 0)

        # plant one series on the wrong substore: a rename through the hash store
        # would be routed, so move the file on disk (plain disk stores: no caches)
        a_files = sorted((tmp_path / "data_a").rglob("*.wsp"))
        b_files = sorted((tmp_path / "data_b").rglob("*.wsp"))
        assert a_files and b_files and len(a_files) + len(b_files) == 40
        src = a_files[0]
        rel = src.relative_to(tmp_path / "data_a")
        key = ".".join(rel.with_suffix("").parts)
        dst = tmp_path / "data_b" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
        assert c.read([key], t0 - 10, t0)[key] == {}  # the owner (a) no longer has it
        c.set_read_from_all(True)
        assert list(c.read([key], t0 - 10, t0)[key]) == [key]  # read-from-all finds it on b
        c.set_read_from_all(False)

        assert c.start_verify(True) is True
        status = wait_verify_done(c, 2)
        assert (status["repair"], status["misplaced"], status["moved"], status["errors"]) == (1, 1, 1, 0)
        rr = c.read([key], t0 - 10, t0)[key][key]
        assert rr.values.tolist() == [float(keys.index(key))]
        stats = c.stats()
        assert stats["verify_runs"] == 2
