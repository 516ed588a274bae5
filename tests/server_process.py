"""A real `python -m cyclone` process for tests, on free 127.0.0.1 ports.

`CycloneProcess(tmp_path, ...)` writes a config (`base_config`, or one you
pass) with ports found free beforehand and a data directory under
tmp_path, starts the server as a subprocess and waits until every TCP
listener accepts connections; `stop()` sends SIGTERM and waits, `kill()`
SIGKILLs. Helpers send data over real sockets (line TCP/UDP, pickle), talk
to the shell, and read whisper files back with the PyPI `whisper` package.
The one place tests start a server process: the integration, client, store
and HTTP helpers build on it.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PROMPT = b"cyclone> "


_HANDED_OUT: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (best effort), never one this
    process handed out before: the kernel may give the same ephemeral port to two
    bind(0) calls in a row, and a test that configures two listeners on one port
    sees a server that fails to start, or a port someone else answers on."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in _HANDED_OUT:
            continue
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(socket.AF_INET, other) as s2:
                s2.bind(("127.0.0.1", port))
        except OSError:
            continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port")


def base_config(data_dir: Path, rules: list | None = None, **overrides: Any) -> dict[str, Any]:
    line, pickle_, shell, http, thrift = (free_port() for _ in range(5))
    cfg: dict[str, Any] = {
        "hostname": "testhost",
        "line_stream_listen": [f"127.0.0.1:{line}"],
        "line_datagram_listen": [f"127.0.0.1:{line}"],
        "pickle_listen": [f"127.0.0.1:{pickle_}"],
        "shell_listen": [f"127.0.0.1:{shell}"],
        "http_listen": [f"127.0.0.1:{http}"],
        "thrift_port": f"127.0.0.1:{thrift}",
        "store_threads": 4,
        "stats_report_usecs": 0,
        "log_level": 1,
        "config_poll_secs": 0.5,
        "store_config": {
            "type": "query",
            "substore": {
                "type": "write_buffer",
                "num_write_threads": 2,
                "substore": {"type": "cached_disk", "directory": str(data_dir)},
            },
        },
        # 1-second archive for 6 hours: every timestamp keeps its own exact value
        "autocreate_rules": rules if rules is not None else [["**", "1:6h", 0, "average"]],
    }
    cfg.update(overrides)
    return cfg


def read_log(path: Path) -> str:
    """A process's log so far ("" before it exists)."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _port(spec: Any) -> int:
    return int(spec) if isinstance(spec, int) else int(str(spec).rpartition(":")[2])


class ShellClient:
    """A shell connection: `cmd("find *")` returns the answer text (without the prompt)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.banner = self._read_to_prompt()

    def _read_to_prompt(self) -> str:
        while PROMPT not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"shell closed; got {self.buf!r}")
            self.buf += chunk
        text, _, self.buf = self.buf.partition(PROMPT)
        return text.decode()

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\n")
        return self._read_to_prompt().rstrip("\n")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "ShellClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class PortTaken(RuntimeError):
    """The server could not bind a port picked for it."""


class CycloneProcess:
    """A Cyclone server subprocess with helpers for its protocols and files."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None,
                 rules: list | None = None, startup_timeout: float = 30.0, **overrides: Any) -> None:
        """`config` as given, or `base_config(<tmp_path>/data, rules, **overrides)`."""
        self.tmp_path = Path(tmp_path)
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.tmp_path / "data"
        self.startup_timeout = startup_timeout
        # ports picked here may be taken by someone else before the server binds them:
        # start() then picks new ones (not for a given config: other processes may know its ports)
        self._make_config = None if config is not None else (lambda: base_config(self.data_dir, rules,
                                                                                 **overrides))
        self.config = config if config is not None else self._make_config()
        self.config_path = self.tmp_path / "cyclone.conf.json"
        self.write_config()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.tmp_path / "server.log"
        self._log: Any = None
        self._log_start = 0  # where this start's output begins in the log
        self.returncode: int | None = None

    def write_config(self, config: dict[str, Any] | None = None) -> None:
        if config is not None:
            self.config = config
        self.config_path.write_text(json.dumps(self.config, indent=1))

    # ports
    @property
    def line_port(self) -> int:
        return _port(self.config["line_stream_listen"][0])

    @property
    def udp_port(self) -> int:
        return _port(self.config["line_datagram_listen"][0])

    @property
    def pickle_port(self) -> int:
        return _port(self.config["pickle_listen"][0])

    @property
    def shell_port(self) -> int:
        return _port(self.config["shell_listen"][0])

    @property
    def http_port(self) -> int:
        return _port(self.config["http_listen"][0])

    @property
    def thrift_port(self) -> int:
        return _port(self.config["thrift_port"])

    # lifecycle
    def start(self, timeout: float | None = None, wait: bool = True) -> "CycloneProcess":
        """Start the server; with `wait`, until it is ready (`timeout`, default `startup_timeout`)."""
        timeout = self.startup_timeout if timeout is None else timeout
        for attempt in range(3):
            try:
                return self._start_once(timeout, wait)
            except PortTaken:
                if self._make_config is None or attempt == 2:
                    raise
                self.write_config(self._make_config())
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float, wait: bool) -> "CycloneProcess":
        self._log = open(self.log_path, "ab")
        self._log_start = self.log_path.stat().st_size
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen([PYTHON, "-m", "cyclone", str(self.config_path)],
                                     cwd=str(self.tmp_path), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every configured TCP listener accepts connections (HTTP and
        Thrift, opened last, included) and, when it logs at info level, the
        server said it is ready (a port someone else holds also accepts)."""
        deadline = time.monotonic() + timeout
        pending = [_port(spec) for name in ("line_stream_listen", "pickle_listen", "shell_listen", "http_listen")
                   for spec in self.config.get(name, [])[:1] if "/" not in str(spec)]
        if self.config.get("thrift_port") and "/" not in str(self.config["thrift_port"]):
            pending.append(_port(self.config["thrift_port"]))
        says_ready = self.config.get("log_level", 1) <= 1

        def ready() -> bool:
            while pending:
                try:
                    socket.create_connection(("127.0.0.1", pending[0]), timeout=1).close()
                except OSError:
                    return False
                if not self._listens_on(pending[0]):
                    return False  # another process answers on that port
                pending.pop(0)
            return not says_ready or "cyclone ready" in self.output()[self._log_start:]

        while not ready():
            self._check_running()
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server not ready within {timeout} s:\n{self.output()}")
            time.sleep(0.05)

    def _listens_on(self, port: int) -> bool:
        """Whether the server process itself holds a listening TCP socket on `port`
        (True where that cannot be read: the connect check then stands)."""
        try:
            conns = psutil.Process(self.proc.pid).net_connections(kind="tcp")
        except psutil.Error:
            return True
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)

    def _check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            self._close_log()
            out = self.output()
            if "address already in use" in out[self._log_start:].lower():
                raise PortTaken(out)
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n{out}")

    def output(self) -> str:
        return read_log(self.log_path)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "CycloneProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.returncode = self.proc.wait(timeout)
        self._close_log()
        return self.returncode

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # data in
    def send_lines(self, lines: Iterable[str] | str | bytes) -> None:
        if isinstance(lines, bytes):
            data = lines
        elif isinstance(lines, str):
            data = lines.encode()
        else:
            data = "".join(l if l.endswith("\n") else l + "\n" for l in lines).encode()
        with socket.create_connection(("127.0.0.1", self.line_port), timeout=30) as s:
            s.sendall(data)
            # half-close and wait for the server to close: it has read everything
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass

    def send_udp(self, datagrams: Iterable[bytes]) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in datagrams:
                s.sendto(d, ("127.0.0.1", self.udp_port))

    def pickle_conn(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.pickle_port), timeout=30)

    def send_pickle(self, items: Any, protocol: int = 2, sock: socket.socket | None = None) -> None:
        payload = pickle.dumps(items, protocol=protocol)
        frame = struct.pack("!L", len(payload)) + payload
        if sock is not None:
            sock.sendall(frame)
            return
        with self.pickle_conn() as s:
            s.sendall(frame)

    def shell(self) -> ShellClient:
        return ShellClient(self.shell_port)

    def stats(self) -> dict[str, int]:
        with self.shell() as sh:
            text = sh.cmd("stats")
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(" = ")
            if value:
                out[name] = int(value)
        return out

    # files
    def wsp_path(self, key: str) -> Path:
        return self.data_dir.joinpath(*key.split(".")).with_suffix(".wsp") if "." in key else \
            self.data_dir / f"{key}.wsp"

    def read_points(self, key: str) -> dict[int, float]:
        """Every non-null point of a series' finest archive, from its whisper file."""
        import whisper

        path = str(self.data_dir.joinpath(*key.split("."))) + ".wsp"
        try:
            info = whisper.info(path)
            if info is None:  # missing
                raise OSError(f"cannot read the header of {path}")
            now = int(time.time())
            (start, end, step), values = whisper.fetch(path, now - info["maxRetention"] + 1, now + 1,
                                                       now=now)
        except whisper.CorruptWhisperFile as e:  # being created: the header is not there yet
            raise OSError(str(e)) from None
        return {t: v for t, v in zip(range(start, end, step), values) if v is not None}

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (OSError, KeyError, ValueError) as e:  # file not there yet, ...
                last = e
            else:
                if last:
                    return last
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout} s (last: {last!r})\n{self.output()[-3000:]}")

    def wait_points(self, key: str, expected: dict[int, float], timeout: float = 20.0) -> dict[int, float]:
        """Wait until the file of `key` holds exactly `expected` (NaN-free) and return it."""

        def check() -> Any:
            got = self.read_points(key)
            return got if got == expected else False

        try:
            return self.wait_for(check, timeout)
        except AssertionError:
            got = self.read_points(key) if Path(str(self.data_dir.joinpath(*key.split("."))) + ".wsp").exists() \
                else "no file"
            raise AssertionError(f"{key}: expected {expected}, got {got}") from None
