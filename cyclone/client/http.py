"""HTTPClient: Cyclone's Graphite-compatible HTTP API (/render, /metrics/find, /y/...).

    from cyclone.client import HTTPClient

    c = HTTPClient("127.0.0.1", 5050)
    c.render(["test.cpu.*"], from_="-1h")            # parsed JSON: [{"target":..., "datapoints": [[v, t], ...]}]
    c.render(["test.cpu.*"], from_=t0, until=t1, format="pickle")  # graphite-web's cluster format
    c.render_series(["sumSeries(test.cpu.*)"], "-1h")   # {name: ReadResult} (dense, NaN gaps)
    c.find("test.*")                                  # [{"path":..., "is_leaf":..., ...}]
    c.find("test.*", format="treejson")               # Grafana's tree shape
    c.stats()                                         # /y/stats text

Uses only urllib. Pickle answers are decoded with an unpickler that builds
builtin types only (no classes, so a hostile server cannot run code here).
A non-200 answer raises `HTTPClientError` (status and body attached);
unreachable servers raise `URLError`/`OSError` from urllib.
"""

from __future__ import annotations

import io
import json
import pickle
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterable

import numpy as np

from cyclone.series import ReadResult


class HTTPClientError(Exception):
    """The server answered with a status other than 200."""

    def __init__(self, status: int, body: bytes, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:300]!r}")
        self.status = status
        self.body = body
        self.url = url


class _BuiltinsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: builtin types only")


def safe_unpickle(data: bytes) -> Any:
    """Unpickle lists, tuples, dicts, strings, numbers, bools and None only."""
    return _BuiltinsUnpickler(io.BytesIO(data)).load()


def _time_param(value: Any) -> str:
    return str(int(value)) if isinstance(value, (int, float)) else str(value)


class HTTPClient:
    """A client of one Cyclone server's HTTP listener.

    host/port: the server's `http_listen` address, or base_url
    ("http://host:port"). timeout: seconds per request.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5050, timeout: float = 30.0,
                 base_url: str | None = None) -> None:
        self.base_url = (base_url or f"http://{host}:{port}").rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HTTPClient({self.base_url})"

    # -- raw access ----------------------------------------------------------------
    def get(self, path: str, params: Iterable[tuple[str, Any]] | dict[str, Any] | None = None) -> bytes:
        """GET `path` with query parameters (a dict or a list of pairs for repeats); the body."""
        return self._request(path, params, None)

    def post(self, path: str, params: Iterable[tuple[str, Any]] | dict[str, Any] | None = None) -> bytes:
        """POST form-encoded parameters to `path`; the body."""
        return self._request(path, None, params)

    def _request(self, path: str, query: Any, form: Any) -> bytes:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(_pairs(query))
        data = urllib.parse.urlencode(_pairs(form)).encode() if form is not None else None
        req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            e.close()
            raise HTTPClientError(e.code, body, url) from None

    @staticmethod
    def _decode(body: bytes, format: str) -> Any:
        if format == "json" or format == "treejson" or format == "completer":
            return json.loads(body)
        if format == "pickle":
            return safe_unpickle(body)
        if format == "msgpack":
            import msgpack

            return msgpack.unpackb(body, raw=False)
        return body.decode("utf-8", errors="replace")

    # -- Graphite API -----------------------------------------------------------------
    def render(self, targets: str | Iterable[str], from_: Any = None, until: Any = None,
               format: str = "json", local: bool | None = None, **params: Any) -> Any:
        """/render for one or more targets (keys, patterns or function expressions).

        from_/until: Unix seconds or Graphite times ("-1h", "now"). format:
        json (parsed), pickle/msgpack (parsed), csv/raw (text). Extra
        parameters (maxDataPoints=..., noCache=1) are passed through.
        """
        if isinstance(targets, str):
            targets = [targets]
        query: list[tuple[str, Any]] = [("target", t) for t in targets]
        if from_ is not None:
            query.append(("from", _time_param(from_)))
        if until is not None:
            query.append(("until", _time_param(until)))
        query.append(("format", format))
        if local is not None:
            query.append(("local", "1" if local else "0"))
        query.extend(params.items())
        return self._decode(self.get("/render", query), format)

    def render_series(self, targets: str | Iterable[str], from_: Any = None,
                      until: Any = None) -> dict[str, ReadResult]:
        """/render in pickle format as {series name: dense ReadResult} (NaN gaps)."""
        out: dict[str, ReadResult] = {}
        for s in self.render(targets, from_, until, format="pickle"):
            values = np.array([np.nan if v is None else v for v in s["values"]], dtype=np.float64)
            out[s["name"]] = ReadResult(None, int(s["start"]), int(s["end"]), int(s["step"]), values)
        return out

    def find(self, query: str | Iterable[str], format: str = "json", from_: Any = None,
             until: Any = None, local: bool | None = None, **params: Any) -> Any:
        """/metrics/find for a pattern (or several): parsed json/treejson/pickle, text for html."""
        queries = [query] if isinstance(query, str) else list(query)
        q: list[tuple[str, Any]] = [("query", p) for p in queries]
        q.append(("format", format))
        if from_ is not None:
            q.append(("from", _time_param(from_)))
        if until is not None:
            q.append(("until", _time_param(until)))
        if local is not None:
            q.append(("local", "1" if local else "0"))
        q.extend(params.items())
        return self._decode(self.get("/metrics/find", q), format)

    def stats(self) -> str:
        """/y/stats: the server's counters as text."""
        return self.get("/y/stats").decode("utf-8", errors="replace")

    def config(self) -> str:
        """/y/config: the running configuration."""
        return self.get("/y/config").decode("utf-8", errors="replace")


def _pairs(params: Any) -> list[tuple[str, Any]]:
    if params is None:
        return []
    if isinstance(params, dict):
        out: list[tuple[str, Any]] = []
        for k, v in params.items():
            if isinstance(v, (list, tuple)):
                out.extend((k, x) for x in v)
            else:
                out.append((k, v))
        return out
    return list(params)
