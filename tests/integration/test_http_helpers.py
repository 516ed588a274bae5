"""Helpers for the HTTP API tests: a real Cyclone process, real sockets, real whisper files.

`HttpCyclone(tmp_path)` is `tests.server_process.CycloneProcess` with the
HTTP tests' autocreate rule and request helpers; `GraphiteWeb` runs
a real graphite-web (PyPI) as oracle and frontend.

This module holds no tests (pytest collects nothing from it).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.server_process import CycloneProcess, free_port, read_log

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


# the HTTP tests' autocreate rule
HTTP_RULES = [["**", "10:1d,60:30d", 0, "average"]]


class HttpCyclone(CycloneProcess):
    """A server process (`base_config` with HTTP_RULES, unless given a config) with
    HTTP request helpers."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None,
                 startup_timeout: float = 30.0) -> None:
        super().__init__(tmp_path, config, rules=HTTP_RULES, startup_timeout=startup_timeout,
                         hostname="httptest", log_level=2)
        self.data_dir.mkdir(parents=True, exist_ok=True)

    # -- requests ------------------------------------------------------------
    def get(self, path: str, params: Any = None, headers: dict[str, str] | None = None,
            timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        if params:
            path = path + "?" + (params if isinstance(params, str) else urlencode(params, doseq=True))
        return http_request(self.http_port, "GET", path, headers=headers, timeout=timeout)

    def post(self, path: str, body: bytes | str | dict | list, content_type: str | None = None,
             headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        if isinstance(body, (dict, list)):
            body = urlencode(body, doseq=True)
            content_type = content_type or "application/x-www-form-urlencoded"
        if isinstance(body, str):
            body = body.encode()
        hdrs = dict(headers or {})
        if content_type:
            hdrs["Content-Type"] = content_type
        return http_request(self.http_port, "POST", path, body=body, headers=hdrs, timeout=timeout)

    def get_json(self, path: str, params: Any = None) -> Any:
        status, _h, body = self.get(path, params)
        assert status == 200, (status, body[:500])
        return json.loads(body)


def http_request(port: int, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body like urllib3's encode_multipart_formdata."""
    boundary = "cyclonetestboundary7e3f"
    out = []
    for name, value in fields:
        out.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    out.append(f"--{boundary}--\r\n")
    return "".join(out).encode(), f"multipart/form-data; boundary={boundary}"


def write_whisper(data_dir: Path, key: str, archives: list[tuple[int, int]],
                  points: list[tuple[int, float]], xff: float = 0.0, agg: str = "average",
                  now: int | None = None) -> Path:
    """Create <data_dir>/a/b/c.wsp with the `whisper` package and write points."""
    import whisper

    path = Path(data_dir, *key.split(".")).with_suffix(".wsp")
    path.parent.mkdir(parents=True, exist_ok=True)
    whisper.create(str(path), archives, xFilesFactor=xff, aggregationMethod=agg)
    if points:
        whisper.update_many(str(path), points, now=now)
    return path


# ------------------------------------------------------------------ graphite-web
GRAPHITE_SETTINGS = """\
# graphite-web local_settings written by tests/integration/test_http_helpers.py
SECRET_KEY = 'cyclone-http-tests'
TIME_ZONE = 'UTC'
STORAGE_DIR = {storage!r}
LOG_DIR = {log!r}
INDEX_FILE = {index!r}
STANDARD_DIRS = {standard_dirs!r}
DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', 'NAME': {db!r}}}}}
CLUSTER_SERVERS = {cluster!r}
STORAGE_FINDERS = {finders!r}
REMOTE_STORE_USE_POST = {use_post!r}
DEFAULT_CACHE_DURATION = 0
FIND_CACHE_DURATION = 0
LOG_RENDERING_PERFORMANCE = False
LOG_CACHE_PERFORMANCE = False
LOG_INFO_PERFORMANCE = False
USE_WORKER_POOL = True
CARBONLINK_HOSTS = []  # no carbon-cache next to these files: do not ask one for every series
"""


class GraphiteWeb:
    """graphite-web 1.1.10 (from the venv) served by a threaded wsgiref server on 127.0.0.1.

    `cluster_servers` makes it a frontend of those backends (remote finder
    only); `whisper_dir` makes it read whisper files directly (standard
    finder only). `hide_msgpack` hides the PyPI msgpack package so the webapp
    uses its bundled umsgpack (PyPI msgpack >= 1.0 cannot decode for it).
    """

    def __init__(self, workdir: Path, cluster_servers: list[str] | None = None,
                 whisper_dir: Path | None = None, use_post: bool = False, hide_msgpack: bool = False,
                 startup_timeout: float = 60.0, extra_settings: dict[str, Any] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.hide_msgpack = hide_msgpack
        self.startup_timeout = startup_timeout
        storage = self.workdir / "storage"
        (storage / "log").mkdir(parents=True, exist_ok=True)
        finders = ("graphite.finders.remote.RemoteFinder",) if cluster_servers else \
            ("graphite.finders.standard.StandardFinder",)
        (self.workdir / "gw_local_settings.py").write_text(GRAPHITE_SETTINGS.format(
            storage=str(storage), log=str(storage / "log"), index=str(storage / "index"),
            standard_dirs=[str(whisper_dir)] if whisper_dir else [], db=str(storage / "graphite.db"),
            cluster=list(cluster_servers or []), finders=finders, use_post=use_post)
            + "".join(f"{k} = {v!r}\n" for k, v in (extra_settings or {}).items()))
        self.proc: subprocess.Popen | None = None
        self._log_path = self.workdir / "graphite-web.log"
        self._log = None

    def start(self) -> "GraphiteWeb":
        cmd = [PYTHON, str(Path(__file__).resolve()), "--graphite-web", str(self.workdir), str(self.port)]
        if self.hide_msgpack:
            cmd.append("--hide-msgpack")
        self._log = open(self._log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")  # for `tests.` imports
        self.proc = subprocess.Popen(cmd, cwd=str(self.workdir), stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"graphite-web exited with {self.proc.returncode}:\n{self.output()}")
            try:
                status, _h, _b = http_request(self.port, "GET", "/version", timeout=5)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"graphite-web not ready within {self.startup_timeout} s:\n{self.output()}")

    def output(self) -> str:
        return read_log(self._log_path)

    def stop(self) -> str:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.output()

    def __enter__(self) -> "GraphiteWeb":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def get(self, path: str, params: Any = None, timeout: float = 120) -> tuple[int, dict[str, str], bytes]:
        if params:
            path = path + "?" + (params if isinstance(params, str) else urlencode(params, doseq=True))
        return http_request(self.port, "GET", path, timeout=timeout)

    def get_json(self, path: str, params: Any = None) -> Any:
        status, _h, body = self.get(path, params)
        assert status == 200, (status, body[:2000], self.output()[-3000:])
        return json.loads(body)


def _run_graphite_web(workdir: str, port: int, hide_msgpack: bool) -> None:  # pragma: no cover
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    if hide_msgpack:
        sys.modules["msgpack"] = None  # type: ignore[assignment]  # -> graphite.umsgpack
    sys.path.insert(0, workdir)
    os.environ["GRAPHITE_SETTINGS_MODULE"] = "gw_local_settings"
    os.environ["DJANGO_SETTINGS_MODULE"] = "graphite.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from graphite.wsgi import application

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = make_server("127.0.0.1", port, application, server_class=Server, handler_class=Quiet)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    httpd.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--graphite-web":
        _run_graphite_web(sys.argv[2], int(sys.argv[3]), "--hide-msgpack" in sys.argv[4:])
