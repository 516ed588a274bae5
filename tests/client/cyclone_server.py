"""A real Cyclone server process for client and integration tests.

`CycloneServer(tmp_path, ...)` writes a config with free ports on 127.0.0.1
and a data directory under tmp_path, starts `python -m cyclone conf.json`
and waits until the Thrift port accepts connections. `stop()` (or the
context manager) terminates it and returns its stderr.

`server_mode()` picks "real" once cyclone/server.py starts protocol
listeners; before that (a stub server.py) tests fall back to `mode="mini"`:
this file run as a script, the store tree from the same config
(cyclone.store.factory) behind `cyclone.protocols.thrift` only. The
fallback can go once the real server is committed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_config(data_dir: Path, write_buffer: bool = True) -> dict[str, Any]:
    disk = {"type": "cached_disk", "directory": str(data_dir)}
    store = {"type": "write_buffer", "num_write_threads": 2, "substore": disk} if write_buffer else disk
    return {
        "hostname": "testhost",
        "line_stream_listen": [f"127.0.0.1:{free_port()}"],
        "line_datagram_listen": [f"127.0.0.1:{free_port()}"],
        "pickle_listen": [f"127.0.0.1:{free_port()}"],
        "shell_listen": [f"127.0.0.1:{free_port()}"],
        "http_listen": [f"127.0.0.1:{free_port()}"],
        "thrift_port": f"127.0.0.1:{free_port()}",
        "store_threads": 4,
        "stats_report_usecs": 0,
        "log_level": 1,
        "store_config": {"type": "query", "substore": store},
        "autocreate_rules": [
            ["test.**", "10:1d,60:30d", 0, "average"],
            ["bench.**", "10:1d", 0, "average"],
            ["cyclone.**", "60:1d", 0, "average"],
        ],
    }


def server_mode() -> str:
    """"real" once cyclone/server.py starts the Thrift listener, else "mini"."""
    text = (REPO / "cyclone" / "server.py").read_text()
    return "real" if "thrift" in text else "mini"


def _port_of(spec: Any) -> int:
    return int(spec) if isinstance(spec, int) else int(str(spec).rpartition(":")[2])


class CycloneServer:
    """A server process on free ports; `thrift_port`, `http_port`, ... attributes."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None, mode: str = "real",
                 startup_timeout: float = 20.0) -> None:
        self.tmp_path = Path(tmp_path)
        self.data_dir = self.tmp_path / "data"
        self.config = config if config is not None else default_config(self.data_dir)
        self.config_path = self.tmp_path / "cyclone.conf.json"
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.mode = mode
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self._stderr_path = self.tmp_path / "server.stderr"

    # ports
    @property
    def thrift_port(self) -> int:
        return _port_of(self.config["thrift_port"])

    @property
    def http_port(self) -> int:
        return _port_of(self.config["http_listen"][0])

    @property
    def line_port(self) -> int:
        return _port_of(self.config["line_stream_listen"][0])

    @property
    def udp_port(self) -> int:
        return _port_of(self.config["line_datagram_listen"][0])

    @property
    def pickle_port(self) -> int:
        return _port_of(self.config["pickle_listen"][0])

    def start(self) -> "CycloneServer":
        if self.mode == "real":
            cmd = [PYTHON, "-m", "cyclone", str(self.config_path)]
        else:
            cmd = [PYTHON, str(Path(__file__).resolve()), str(self.config_path)]
        self._stderr = open(self._stderr_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, cwd=str(self.tmp_path), stdout=self._stderr,
                                     stderr=subprocess.STDOUT, env=env)
        self.wait_port(self.thrift_port)
        return self

    def wait_port(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not listen on {port} within {self.startup_timeout} s:\n"
                           f"{self.output()}")

    def output(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> str:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()
            self._stderr = None
        return self.output()

    def kill(self) -> None:
        """SIGKILL (no clean shutdown)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def __enter__(self) -> "CycloneServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ------------------------------------------------------------------ mini server
def _run_mini(config_path: str) -> None:
    """Store tree + Thrift listener only (see the module docstring)."""
    import logging
    import types

    from twisted.internet import reactor
    from twisted.internet.threads import deferToThreadPool
    from twisted.python.threadpool import ThreadPool

    from cyclone.config import load_config
    from cyclone.protocols import thrift as thrift_protocol
    from cyclone.stats import StatsRegistry
    from cyclone.store.autocreate import AutocreateRules
    from cyclone.store.factory import build_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)
    store = build_store(config.store_config, AutocreateRules(config.autocreate_rules),
                        config.open_file_cache_size)
    pool = ThreadPool(1, config.store_threads, "store")
    pool.start()
    ctx = types.SimpleNamespace(
        config=config, store=store, reactor=reactor, threadpool=pool, stats=StatsRegistry(),
        host=config.host, started_at=time.time(), verify=None, read_from_all=None,
        call_store=lambda fn, *a: deferToThreadPool(reactor, pool, fn, *a))
    thrift_protocol.start_listeners(ctx)

    def shutdown() -> None:
        pool.stop()
        store.close()

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _run_mini(sys.argv[1])
