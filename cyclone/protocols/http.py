"""HTTP API: graphite-web's CLUSTER_SERVERS backend, Grafana's Graphite datasource, admin pages.

Endpoints (each also answers with a trailing slash):

- ``/`` HTML index linking every endpoint; ``/y/stats`` plain-text counters
  (``name value`` per line); ``/y/config`` the running config file's text.
- ``/render`` GET or POST (form-urlencoded or multipart; query-string and
  body parameters are merged): ``target`` repeated (or ``target[]``),
  ``from``/``until``/``now`` in every graphite time form, ``format`` json
  (default), csv, raw, pickle, msgpack; ``maxDataPoints``,
  ``noNullPoints``, ``jsonp``, ``xFilesFactor``, ``tz``, ``local=1``.
- ``/metrics/find`` (and ``/metrics``): ``query`` repeated, ``format``
  treejson (default), json, pickle, msgpack, completer, html; ``wildcards``,
  ``leavesOnly``, ``from``/``until``, ``local=1``.
- ``/metrics/expand``, ``/metrics/index.json``.
- Grafana: ``/functions`` (and ``/functions/<name>``), ``/version``,
  ``/tags/...`` (Cyclone holds no tagged series: empty lists),
  ``/events/get_data`` (``[]``).

Plain paths and glob patterns are read straight from the store (one
``read`` call per request for all of them), so windows are exactly
whisper's (``start = from - from % step + step`` ...) and buffered points
are included. Targets with function calls go through
``cyclone.query.evaluator``. All store work and formatting runs on the
server's thread pool (``ctx.call_store``); the reactor only parses requests
and writes bytes.

Errors: a bad parameter or target is a 400 with a one-line text/plain
reason; a series that fails to read is left out of the answer and counted
(``http.render_read_errors``). Every non-200 answer carries
``Connection: close`` and closes the connection (graphite-web's pool
otherwise replays requests). For the cluster formats (pickle, msgpack) a
pattern Cyclone's key rules refuse matches nothing (200, empty list)
instead of a 400: a 400 would make graphite-web mark this backend failed
for REMOTE_RETRY_DELAY seconds, for every user. Requests are bounded:
`MAX_TARGETS` targets, `MAX_POINTS` datapoints per response,
`TIME_BUDGET_SECS` of work, `MAX_BODY_BYTES` of request body.

Choices where graphite is not followed: with no ``format`` the answer is
JSON (Cyclone renders no images; png/svg/pdf are a 400); with no ``from``
the window is the last hour (the seed's default; graphite-web's is a day).
The ``now`` parameter moves relative times and the evaluator's clock; the
store's whisper reads clamp to the server's own clock (the Store API has
no "now"), which differs from graphite-web only for a ``now`` far in the
past near a retention boundary.
"""

from __future__ import annotations

import email.parser
import email.policy
import html
import logging
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl

import numpy as np
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.web import resource, server

from cyclone import patterns
from cyclone.protocols import http_formats as fmt
from cyclone.protocols.http_times import (
    TimeParseError,
    get_timezone,
    parse_now,
    parse_time,
    resolve_window,
)
from cyclone.series import CycloneError

log = logging.getLogger(__name__)

GRAPHITE_VERSION = "1.1.10"
MAX_TARGETS = 1000
MAX_POINTS = 10_000_000
TIME_BUDGET_SECS = 60.0
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_FIND_QUERIES = 1000
IDLE_TIMEOUT_SECS = 120
DEFAULT_FROM = "-1h"

RENDER_FORMATS = ("json", "csv", "raw", "pickle", "msgpack")
FIND_FORMATS = ("treejson", "json", "pickle", "msgpack", "completer", "html")
CLUSTER_FORMATS = ("pickle", "msgpack")
HTTP_COUNTERS = ("requests", "render_requests", "render_series", "render_points", "render_read_errors",
                 "render_expressions", "render_expression_errors", "find_requests", "find_results",
                 "find_errors", "invalid_patterns", "responses_200", "responses_400", "request_usecs")
_JSONP_RE = re.compile(r"^[A-Za-z_$][\w$.\[\]]{0,127}$")


class HttpError(Exception):
    """An answer other than 200: status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())  # one line


@dataclass
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_response(obj: Any, jsonp: str | None = None, sanitized: bool = False) -> Response:
    body = fmt.dumps_sanitized(obj) if sanitized else fmt.dumps(obj)
    if jsonp:
        return Response(200, "text/javascript", jsonp.encode() + b"(" + body + b")")
    return Response(200, "application/json", body)


# ---------------------------------------------------------------------------
# parameters


class Params:
    """Request parameters: query string then body, values in order (Django QueryDict-like)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.multipart = False
        self._values: dict[str, list[str]] = {}
        for k, v in items:
            self._values.setdefault(k, []).append(v)

    def add(self, key: str, value: str) -> None:
        self._values.setdefault(key, []).append(value)

    def getlist(self, *keys: str) -> list[str]:
        out: list[str] = []
        for k in keys:
            out.extend(self._values.get(k, ()))
        return out

    def get(self, key: str, default: str | None = None) -> str | None:
        """The last value, like Django's QueryDict.get (the body's wins over the URL's)."""
        values = self._values.get(key)
        return values[-1] if values else default

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def int_param(self, key: str, default: int | None = None, minimum: int | None = None) -> int | None:
        value = self.get(key)
        if value is None or value == "":
            return default
        try:
            n = int(value)
        except ValueError:
            raise HttpError(400, f"invalid {key} {value!r}: expected an integer") from None
        if minimum is not None and n < minimum:
            raise HttpError(400, f"invalid {key} {value!r}: must be at least {minimum}")
        return n


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def parse_params(request: server.Request) -> Params:
    """Query-string parameters, then body parameters (form-urlencoded or multipart)."""
    params = Params()
    uri = _decode(request.uri)
    if "?" in uri:
        for k, v in parse_qsl(uri.split("?", 1)[1], keep_blank_values=True):
            params.add(k, v)
    if request.method != b"POST" or request.content is None:
        return params
    ctype_raw = request.getHeader(b"content-type") or b""
    ctype = _decode(ctype_raw).split(";", 1)[0].strip().lower()
    request.content.seek(0)
    body = request.content.read()
    if not body:
        return params
    if ctype == "multipart/form-data":
        params.multipart = True
        for k, v in _parse_multipart(_decode(ctype_raw), body):
            params.add(k, v)
    elif ctype in ("application/x-www-form-urlencoded", "", "text/plain"):
        for k, v in parse_qsl(_decode(body), keep_blank_values=True):
            params.add(k, v)
    elif ctype == "application/json":
        import json

        try:
            data = json.loads(body)
        except ValueError as e:
            raise HttpError(400, f"invalid JSON body: {e}") from None
        if not isinstance(data, dict):
            raise HttpError(400, "a JSON body must be an object of parameters")
        for k, v in data.items():
            for item in v if isinstance(v, list) else [v]:
                params.add(str(k), str(item))
    return params


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    try:
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    except Exception as e:  # the email package raises many types on garbage
        raise HttpError(400, f"malformed multipart body: {e}") from None
    if not message.is_multipart():
        raise HttpError(400, "malformed multipart body: no parts")
    out = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        out.append((str(name), payload.decode(charset, "replace")))
    return out


# ---------------------------------------------------------------------------
# counters


class HttpStats:
    """Thread-safe counters of the HTTP API (reported as http.<name> in /y/stats)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)


# ---------------------------------------------------------------------------
# store helpers


class _StoreView:
    """The store as the evaluator sees it: local_only applied to every read and find."""

    def __init__(self, store: Any, local_only: bool) -> None:
        self._store = store
        self._local_only = local_only

    def read(self, patterns_: list[str], start: int, end: int, local_only: bool = False):
        return self._store.read(patterns_, start, end, local_only or self._local_only)

    def find(self, patterns_: list[str], local_only: bool = False):
        return self._store.find(patterns_, local_only or self._local_only)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def is_expression(target: str) -> bool:
    """True if a target needs the function evaluator (a call, a pipe, a quoted string)."""
    return "(" in target or "|" in target or '"' in target or "'" in target


class _Retentions:
    """Max retention of a series, for a leaf's find interval (now - retention, now).

    Asked of local disk stores (their cached headers), then the autocreate
    rules; unknown -> None (the interval then starts at 0).
    """

    def __init__(self, ctx: Any) -> None:
        self._providers: list[Callable[[str], Any]] = []
        try:
            for store in ctx.store.walk():
                getter = getattr(store, "metadata", None)
                if callable(getter):
                    self._providers.append(getter)
        except Exception:  # a store tree without walk(): no providers
            pass
        self._rules = getattr(ctx, "autocreate", None)  # the tree's rules, replaced in place on reload
        if self._rules is None:
            try:
                from cyclone.store.autocreate import AutocreateRules

                self._rules = AutocreateRules(getattr(ctx.config, "autocreate_rules", []) or [])
            except Exception:
                self._rules = None
        import cachetools

        self._cache: cachetools.TTLCache = cachetools.TTLCache(maxsize=200_000, ttl=300)
        self._lock = threading.Lock()

    def max_retention(self, key: str) -> int | None:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        retention = None
        for getter in self._providers:
            try:
                md = getter(key)
            except Exception:
                md = None
            if md is not None:
                retention = max(a.precision * a.points for a in md.archive_args)
                break
        if retention is None and self._rules is not None:
            md = self._rules.metadata_for(key)
            if md is not None:
                retention = max(a.precision * a.points for a in md.archive_args)
        with self._lock:
            self._cache[key] = retention
        return retention


# ---------------------------------------------------------------------------
# the API


@dataclass
class RenderRequest:
    targets: list[str]
    start: int
    end: int
    now: int
    local_only: bool
    format: str
    max_data_points: int | None
    no_null_points: bool
    jsonp: str | None
    x_files_factor: float
    tz: Any
    plain_patterns: list[str]
    tz_name: str | None = None
    x_files_factor_given: bool = False


class HttpApi:
    """Request handlers. Handlers return a Response or a Deferred firing one."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        group = getattr(getattr(ctx, "stats", None), "group", None)
        self.stats: Any = group("http", HTTP_COUNTERS) if callable(group) else HttpStats()
        self.retentions = _Retentions(ctx)
        self.routes: dict[str, Callable[[Params, server.Request], Any]] = {
            "": self.index,
            "render": self.render,
            "metrics": self.find,
            "metrics/find": self.find,
            "metrics/expand": self.expand,
            "metrics/index.json": self.index_json,
            "y/stats": self.y_stats,
            "y/config": self.y_config,
            "functions": self.functions,
            "version": self.version,
            "events/get_data": self.events,
            "events": self.events,
        }

    # -- plumbing ------------------------------------------------------------
    def in_thread(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        call = getattr(self.ctx, "call_store", None)
        if call is not None:
            return call(fn, *args)
        return deferToThreadPool(self.ctx.reactor, self.ctx.threadpool, fn, *args)

    def dispatch(self, path: str, params: Params, request: server.Request) -> Any:
        path = path.strip("/")
        handler = self.routes.get(path)
        if handler is None:
            if path.startswith("functions/"):
                return self.function_details(path[len("functions/"):], params)
            if path == "tags" or path.startswith("tags/"):
                return self.tags(path, params)
            raise HttpError(404, f"no such endpoint /{path} (see / for the list)")
        return handler(params, request)

    # -- index and admin -------------------------------------------------------
    def index(self, params: Params, request: server.Request) -> Response:
        links = [
            ("/render?target=cyclone.*&amp;format=json&amp;from=-1h", "/render",
             "series data: target, from, until, format json|csv|raw|pickle|msgpack, maxDataPoints"),
            ("/metrics/find?query=*", "/metrics/find",
             "find series: query, format treejson|json|pickle|msgpack|completer|html"),
            ("/metrics/find?query=*&amp;format=html", "/metrics/find?format=html", "browse the tree"),
            ("/metrics/expand?query=*", "/metrics/expand", "expand a pattern to full paths"),
            ("/metrics/index.json", "/metrics/index.json", "every series"),
            ("/functions", "/functions", "render functions (Grafana)"),
            ("/version", "/version", "graphite API version"),
            ("/tags/autoComplete/tags", "/tags/autoComplete/tags", "tag autocomplete (no tags: empty)"),
            ("/events/get_data", "/events/get_data", "events (none)"),
            ("/y/stats", "/y/stats", "server counters"),
            ("/y/config", "/y/config", "running config"),
        ]
        host = html.escape(str(getattr(self.ctx, "host", "") or ""))
        items = "\n".join(f'<li><a href="{href}">{html.escape(text)}</a> &mdash; {html.escape(desc)}</li>'
                          for href, text, desc in links)
        page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Cyclone {host}</title>"
                f"</head><body><h1>Cyclone {host}</h1><ul>\n{items}\n</ul></body></html>\n")
        return Response(200, "text/html; charset=utf-8", page.encode())

    def y_stats(self, params: Params, request: server.Request) -> defer.Deferred:
        return self.in_thread(self._stats_text)

    def _stats_text(self) -> Response:
        ctx = self.ctx
        server_stats = getattr(getattr(ctx, "stats", None), "snapshot", None)
        values: dict[str, Any] = {}
        try:
            from cyclone.stats import collect_all

            verify = None
            verifier = getattr(ctx, "verify", None)
            if verifier is not None:
                try:
                    verify = verifier.get_verify_status()
                except Exception as e:
                    log.debug("verify status failed: %s", e)
            values = collect_all(server_stats() if callable(server_stats) else {}, ctx.store,
                                 getattr(ctx, "started_at", time.time()), verify)
        except ImportError:
            values.update(_server_stats(ctx))
            for path, store in _store_paths(getattr(ctx, "store", None)):
                try:
                    st = store.stats()
                except Exception as e:
                    log.warning("stats of %s failed: %s", path, e)
                    continue
                for name, v in st.items():
                    values[f"{path}.{name}"] = v
        if isinstance(self.stats, HttpStats):
            for name, v in self.stats.snapshot().items():
                values[f"http.{name}"] = v
        lines = [f"{name} {_stat_value(v)}" for name, v in sorted(values.items())]
        return Response(200, "text/plain; charset=utf-8", ("\n".join(lines) + "\n").encode())

    def y_config(self, params: Params, request: server.Request) -> defer.Deferred:
        return self.in_thread(self._config_text)

    def _config_text(self) -> Response:
        config = getattr(self.ctx, "config", None)
        path = getattr(config, "path", None)
        raw = getattr(config, "raw", None)
        text = None
        note = ""
        if path:
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                note = f"cannot read {path}: {e.strerror or e}"
        if text is not None and raw is not None:
            try:
                from cyclone.config import parse_text

                if parse_text(text, path) != raw:
                    note = f"{path} changed since it was loaded"
                    text = None
            except Exception as e:
                note = f"{path} no longer parses ({' '.join(str(e).split())})"
                text = None
        if text is None:
            import json

            text = (f"// running config (the file differs: {note})\n"
                    + json.dumps(raw if raw is not None else {}, indent=2) + "\n")
        return Response(200, "text/plain; charset=utf-8", text.encode("utf-8"))

    # -- render ------------------------------------------------------------------
    def render(self, params: Params, request: server.Request) -> defer.Deferred | Response:
        req = self.parse_render(params)
        self.stats.add("render_requests")
        self.stats.add(f"render_format_{req.format}")
        return self.in_thread(self._render_work, req, time.monotonic())

    def parse_render(self, params: Params) -> RenderRequest:
        targets = [t for t in params.getlist("target", "target[]") if t.strip() != ""]
        if len(targets) > MAX_TARGETS:
            raise HttpError(400, f"too many targets: {len(targets)} (the limit is {MAX_TARGETS})")
        format_ = params.get("format")
        if format_ is None:
            format_ = "pickle" if "pickle" in params else "raw" if "rawData" in params else "json"
        format_ = format_.lower()
        if format_ not in RENDER_FORMATS:
            raise HttpError(400, f"unsupported format {format_!r} (Cyclone renders "
                                 f"{', '.join(RENDER_FORMATS)}; no images)")
        tz = get_timezone(params.get("tz"))
        try:
            now = parse_now(params.get("now"), tz)
            start, end = resolve_window(params.get("from"), params.get("until"), now, tz, DEFAULT_FROM)
        except TimeParseError as e:
            raise HttpError(400, str(e)) from None
        mdp = params.int_param("maxDataPoints", None, minimum=1)
        xff_text = params.get("xFilesFactor")
        xff = 0.0
        if xff_text not in (None, ""):
            try:
                xff = float(xff_text)
            except ValueError:
                raise HttpError(400, f"invalid xFilesFactor {xff_text!r}: expected a number in [0, 1]") from None
            if not 0.0 <= xff <= 1.0:
                raise HttpError(400, f"invalid xFilesFactor {xff_text!r}: expected a number in [0, 1]")
        jsonp = _check_jsonp(params.get("jsonp")) if format_ == "json" else None
        plain: list[str] = []
        seen: set[str] = set()
        for t in targets:
            if is_expression(t):
                continue
            t = t.strip()
            try:
                patterns.check_pattern(t)
            except CycloneError as e:
                if format_ in CLUSTER_FORMATS:
                    self.stats.add("invalid_patterns")
                    continue  # matches nothing (see module docstring)
                raise HttpError(400, f"invalid target {t!r}: {e.description}") from None
            if t not in seen:
                seen.add(t)
                plain.append(t)
        return RenderRequest(targets, start, end, now, params.get("local") == "1", format_, mdp,
                             "noNullPoints" in params, jsonp, xff, tz, plain,
                             tz_name=params.get("tz") if tz is not None else None,
                             x_files_factor_given=xff_text not in (None, ""))

    def _render_work(self, req: RenderRequest, t0: float) -> Response:
        series = self.collect_series(req, t0)
        total = sum(len(s.values) for s in series)
        if total > MAX_POINTS:
            raise HttpError(400, f"response too large: {total} datapoints (the limit is {MAX_POINTS}); "
                                 "narrow the time range or the targets")
        self.stats.add("render_series", len(series))
        self.stats.add("render_points", total)
        if req.format == "json":
            body, ctype = fmt.render_json(series, req.max_data_points, req.no_null_points, req.jsonp)
        elif req.format == "pickle":
            body, ctype = fmt.render_pickle(series)
        elif req.format == "msgpack":
            body, ctype = fmt.render_msgpack(series)
        elif req.format == "csv":
            body, ctype = fmt.render_csv(series, req.tz)
        else:
            body, ctype = fmt.render_raw(series)
        self.stats.add("render_usecs", int((time.monotonic() - t0) * 1e6))
        return Response(200, ctype, body)

    def collect_series(self, req: RenderRequest, t0: float) -> list[fmt.RenderSeries]:
        store = self.ctx.store
        results = store.read(req.plain_patterns, req.start, req.end, req.local_only) if req.plain_patterns else {}
        self._check_budget(t0)
        plain = set(req.plain_patterns)
        out: list[fmt.RenderSeries] = []
        for target in req.targets:
            if not is_expression(target):
                target = target.strip()
                if target not in plain:
                    continue
                for key, rr in sorted(results.get(target, {}).items()):
                    if rr.error is not None:
                        if "does not exist" not in rr.error.description:
                            self.stats.add("render_read_errors")
                            log.warning("render: %s: %s", key, rr.error.description)
                        continue
                    if not rr.step:
                        continue  # outside the series' retention: whisper returns nothing
                    out.append(fmt.RenderSeries(key, int(rr.start_time), int(rr.end_time), int(rr.step),
                                                rr.values, path_expression=target,
                                                x_files_factor=req.x_files_factor))
            else:
                out.extend(self._evaluate(target, req))
                self._check_budget(t0)
        return out

    def _evaluate(self, target: str, req: RenderRequest) -> list[fmt.RenderSeries]:
        self.stats.add("render_expressions")
        try:
            from cyclone.query.evaluator import evaluate
            from cyclone.query.parser import QueryError
        except ImportError as e:
            raise HttpError(400, f"function expressions are not available on this server ({e})") from None
        try:
            result = evaluate([target], req.start, req.end, _StoreView(self.ctx.store, req.local_only),
                              now=req.now, tz=req.tz_name or None,
                              x_files_factor=req.x_files_factor if req.x_files_factor_given else None)
        except QueryError as e:
            if target.lstrip().startswith("seriesByTag("):
                return []  # no tag support: a tag query matches nothing
            self.stats.add("render_expression_errors")
            raise HttpError(400, f"invalid target {target!r}: {e}") from None
        except HttpError:
            raise
        except Exception as e:
            self.stats.add("render_expression_errors")
            log.error("render: evaluating %r failed:\n%s", target, traceback.format_exc())
            raise HttpError(500, f"error evaluating {target!r}: {type(e).__name__}: {e}") from None
        out = []
        for s in result:
            name = str(getattr(s, "name", target))
            tags = getattr(s, "tags", None)
            out.append(fmt.RenderSeries(
                name, int(s.start), int(s.end), int(s.step), np.asarray(s.values, dtype=np.float64),
                path_expression=str(getattr(s, "path_expression", None) or target),
                tags=dict(tags) if tags else None,
                consolidation_func=str(getattr(s, "consolidation_func", None) or "average"),
                values_per_point=int(getattr(s, "values_per_point", None) or 1),
                x_files_factor=float(_or(getattr(s, "x_files_factor", None), req.x_files_factor)),
            ))
        return out

    @staticmethod
    def _check_budget(t0: float) -> None:
        elapsed = time.monotonic() - t0
        if elapsed > TIME_BUDGET_SECS:
            raise HttpError(400, f"request exceeded the time budget ({elapsed:.0f} s > {TIME_BUDGET_SECS:.0f} s); "
                                 "narrow the time range or the targets")

    # -- find, expand, index -----------------------------------------------------------
    def find(self, params: Params, request: server.Request) -> defer.Deferred:
        format_ = (params.get("format") or "treejson").lower()
        if format_ not in FIND_FORMATS:
            raise HttpError(400, f"invalid format {format_!r} (one of {', '.join(FIND_FORMATS)})")
        queries = [q for q in params.getlist("query", "query[]")]
        if not queries:
            raise HttpError(400, "missing required parameter 'query'")
        if any(q == "" for q in queries):
            raise HttpError(400, "required parameter 'query' is empty")
        if len(queries) > MAX_FIND_QUERIES:
            raise HttpError(400, f"too many queries: {len(queries)} (the limit is {MAX_FIND_QUERIES})")
        wildcards = params.int_param("wildcards", 0) != 0
        leaves_only = params.int_param("leavesOnly", 0) != 0
        tz = get_timezone(params.get("tz"))
        try:
            now = parse_now(params.get("now"), tz)
            for name in ("from", "until"):
                value = params.get(name)
                if value not in (None, "", "-1"):
                    parse_time(value, now, tz)
        except TimeParseError as e:
            raise HttpError(400, str(e)) from None
        if format_ == "completer":
            queries = [_completer_query(q, params.int_param("automatic_variants", 0) != 0) for q in queries]
        checked: list[str] = []
        for q in queries:
            try:
                patterns.check_pattern(q)
                checked.append(q)
            except CycloneError as e:
                if format_ in CLUSTER_FORMATS:
                    self.stats.add("invalid_patterns")
                    continue
                raise HttpError(400, f"invalid query {q!r}: {e.description}") from None
        jsonp = _check_jsonp(params.get("jsonp"))
        self.stats.add("find_requests")
        self.stats.add(f"find_format_{format_}")
        return self.in_thread(self._find_work, queries, checked, format_, params.get("local") == "1",
                              wildcards, leaves_only, jsonp, now)

    def _find_nodes(self, queries: list[str], local_only: bool) -> dict[str, list[fmt.FindNode]]:
        """Per query: its matches (branches and leaves), sorted by path."""
        if not queries:
            return {}
        results = self.ctx.store.find(queries, local_only)
        out: dict[str, list[fmt.FindNode]] = {}
        for q in queries:
            fr = results.get(q)
            nodes: dict[tuple[str, bool], fmt.FindNode] = {}
            if fr is not None and fr.error is not None:
                self.stats.add("find_errors")
                log.warning("find %s: %s", q, fr.error.description)
            if fr is not None:
                for entry in fr.results:
                    if entry.endswith(".*"):
                        node = fmt.FindNode(entry[:-2], False)
                    else:
                        node = fmt.FindNode(entry, True)
                    nodes[(node.path, node.is_leaf)] = node
            out[q] = sorted(nodes.values(), key=lambda n: (n.path, n.is_leaf))
        return out

    def _find_work(self, queries: list[str], checked: list[str], format_: str, local_only: bool,
                   wildcards: bool, leaves_only: bool, jsonp: str | None, now: int) -> Response:
        per_query = self._find_nodes(checked, local_only)
        if leaves_only:
            per_query = {q: [n for n in ns if n.is_leaf] for q, ns in per_query.items()}
        merged: dict[tuple[str, bool], fmt.FindNode] = {}
        for q in checked:
            for n in per_query.get(q, []):
                merged.setdefault((n.path, n.is_leaf), n)
        # graphite sorts matches by node name (the last component), stably
        nodes = sorted(merged.values(), key=lambda n: n.name)
        self.stats.add("find_results", len(nodes))
        if format_ in ("pickle", "msgpack", "json"):
            for n in nodes:
                if n.is_leaf:
                    retention = self.retentions.max_retention(n.path)
                    n.intervals = [(now - retention if retention is not None else 0, now)]
        if format_ == "pickle":
            body, ctype = fmt.find_pickle(nodes)
            resp = Response(200, ctype, body)
        elif format_ == "msgpack":
            body, ctype = fmt.find_msgpack(nodes)
            resp = Response(200, ctype, body)
        elif format_ == "json":
            resp = json_response(fmt.find_json(nodes), jsonp)
        elif format_ == "treejson":
            tree: list[dict[str, Any]] = []
            seen_ids: set[str] = set()
            for q in checked:
                base = q.rsplit(".", 1)[0] + "." if "." in q else ""
                q_nodes = sorted(per_query.get(q, []), key=lambda n: n.name)
                for item in fmt.find_treejson(q_nodes, base, wildcards):
                    if item["id"] not in seen_ids:
                        seen_ids.add(item["id"])
                        tree.append(item)
            resp = json_response(tree, jsonp)
        elif format_ == "completer":
            resp = json_response(fmt.find_completer(nodes, wildcards), jsonp)
        else:
            body, ctype = fmt.find_html(nodes, queries)
            resp = Response(200, ctype, body)
        resp.headers.update({"Pragma": "no-cache", "Cache-Control": "no-cache"})
        return resp

    def expand(self, params: Params, request: server.Request) -> defer.Deferred:
        queries = params.getlist("query", "query[]")
        if len(queries) > MAX_FIND_QUERIES:
            raise HttpError(400, f"too many queries: {len(queries)} (the limit is {MAX_FIND_QUERIES})")
        for q in queries:
            try:
                patterns.check_pattern(q)
            except CycloneError as e:
                raise HttpError(400, f"invalid query {q!r}: {e.description}") from None
        group_by_expr = params.int_param("groupByExpr", 0) != 0
        leaves_only = params.int_param("leavesOnly", 0) != 0
        jsonp = _check_jsonp(params.get("jsonp"))
        local_only = params.get("local") == "1"

        def work() -> Response:
            per_query = self._find_nodes(list(dict.fromkeys(queries)), local_only)
            grouped = {q: sorted({n.path for n in per_query.get(q, []) if n.is_leaf or not leaves_only})
                       for q in queries}
            if group_by_expr:
                results: Any = grouped
            else:
                results = sorted(set().union(*grouped.values())) if grouped else []
            resp = json_response({"results": results}, jsonp)
            resp.headers.update({"Pragma": "no-cache", "Cache-Control": "no-cache"})
            return resp

        return self.in_thread(work)

    def index_json(self, params: Params, request: server.Request) -> defer.Deferred:
        jsonp = _check_jsonp(params.get("jsonp"))
        local_only = params.get("local") == "1"

        def work() -> Response:
            fr = self.ctx.store.find(["**"], local_only).get("**")
            if fr is not None and fr.error is not None:
                self.stats.add("find_errors")
                log.warning("index.json: %s", fr.error.description)
            leaves = sorted(e for e in (fr.results if fr is not None else []) if not e.endswith(".*"))
            return json_response(leaves, jsonp)

        return self.in_thread(work)

    # -- Grafana and graphite odds and ends -------------------------------------------
    def functions(self, params: Params, request: server.Request) -> defer.Deferred:
        jsonp = _check_jsonp(params.get("jsonp"))
        grouped = (params.get("grouped") or "").lower() in ("1", "true")
        group = params.get("group")

        def work() -> Response:
            metadata = _functions_metadata()
            result: dict[str, Any] = {}
            for name, info in metadata.items():
                g = info.get("group") if isinstance(info, dict) else None
                if group is not None and g != group:
                    continue
                if grouped:
                    result.setdefault(str(g), {})[name] = info
                else:
                    result[name] = info
            return json_response(result, jsonp, sanitized=True)

        return self.in_thread(work)

    def function_details(self, name: str, params: Params) -> defer.Deferred:
        jsonp = _check_jsonp(params.get("jsonp"))

        def work() -> Response:
            metadata = _functions_metadata()
            if name not in metadata:
                raise HttpError(404, f"function not found: {name}")
            return json_response(metadata[name], jsonp, sanitized=True)

        return self.in_thread(work)

    def version(self, params: Params, request: server.Request) -> Response:
        return Response(200, "text/plain; charset=utf-8", GRAPHITE_VERSION.encode())

    def events(self, params: Params, request: server.Request) -> Response:
        return json_response([], _check_jsonp(params.get("jsonp")))

    def tags(self, path: str, params: Params) -> Response:
        """Cyclone stores no tagged series: every tag query answers an empty, well-formed result."""
        jsonp = _check_jsonp(params.get("jsonp"))
        parts = path.split("/")
        if len(parts) == 2 and parts[1] not in ("findSeries", "autoComplete", "tagSeries",
                                                 "tagMultiSeries", "delSeries"):
            return json_response({"tag": parts[1], "values": []}, jsonp)
        return json_response([], jsonp)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _check_jsonp(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if not _JSONP_RE.match(value):
        raise HttpError(400, f"invalid jsonp callback name {value[:64]!r}")
    return value


def _completer_query(query: str, automatic_variants: bool) -> str:
    query = query.replace("..", "*.")
    if not query.endswith("*"):
        query += "*"
    if automatic_variants:
        parts = query.split(".")
        for i, part in enumerate(parts):
            if "," in part and "{" not in part:
                parts[i] = "{%s}" % part
        query = ".".join(parts)
    return query


def _functions_metadata() -> dict[str, Any]:
    try:
        from cyclone.query.evaluator import functions_metadata
    except ImportError:
        return {}
    return functions_metadata()


def _stat_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return repr(v) if v != int(v) or abs(v) > 1e15 else str(int(v))
    return str(v)


def _server_stats(ctx: Any) -> dict[str, Any]:
    """Counters of the server context, whatever shape its stats object has."""
    stats = getattr(ctx, "stats", None)
    if stats is None:
        return {}
    try:
        for attr in ("snapshot", "stats", "values", "as_dict"):
            fn = getattr(stats, attr, None)
            if callable(fn) and not isinstance(stats, dict):
                got = fn()
                if isinstance(got, dict):
                    return {str(k): v for k, v in got.items() if isinstance(v, (int, float))}
        if isinstance(stats, dict):
            return {str(k): v for k, v in stats.items() if isinstance(v, (int, float))}
        if callable(stats):
            got = stats()
            if isinstance(got, dict):
                return {str(k): v for k, v in got.items() if isinstance(v, (int, float))}
    except Exception as e:
        log.warning("server stats unavailable: %s", e)
    return {}


def _snake(name: str) -> str:
    name = name[:-5] if name.endswith("Store") and name != "Store" else name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _store_paths(store: Any, prefix: str = "store") -> list[tuple[str, Any]]:
    """(dotted path, store) for every store in the tree: store.query.write_buffer.cached_disk."""
    if store is None:
        return []
    path = f"{prefix}.{_snake(type(store).__name__)}"
    out = [(path, store)]
    try:
        children = store.children()
    except Exception:
        children = []
    many = len(children) > 1
    names = list(getattr(store, "stores", {}).keys()) if isinstance(getattr(store, "stores", None), dict) else []
    for i, child in enumerate(children):
        child_prefix = path
        if many:
            label = names[i] if i < len(names) else str(i)
            child_prefix = f"{path}.{_safe_label(label)}"
        out.extend(_store_paths(child, child_prefix))
    return out


def _safe_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", str(label))


# ---------------------------------------------------------------------------
# twisted.web glue


class CycloneRequest(server.Request):
    """A request that stops buffering a body past MAX_BODY_BYTES (answered with a 413)."""

    body_limit = MAX_BODY_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_bytes = 0
        self.body_too_large = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.body_limit:
            self.body_too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self.body_bytes += len(data)
        if self.body_too_large or self.body_bytes > self.body_limit:
            self.body_too_large = True
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.body_too_large:
            # skip twisted's own form parsing of a truncated body
            self.content.seek(0)
            self.content.truncate()
            self.requestHeaders.removeHeader(b"content-type")
        super().requestReceived(command, path, version)


class ApiResource(resource.Resource):
    isLeaf = True

    def __init__(self, api: HttpApi) -> None:
        super().__init__()
        self.api = api

    def render(self, request: server.Request) -> Any:
        t0 = time.monotonic()
        api = self.api
        api.stats.add("requests")
        if request.method not in (b"GET", b"POST", b"HEAD"):
            self._finish(request, Response(405, "text/plain", b"method not allowed: use GET or POST\n"), t0)
            return server.NOT_DONE_YET
        if getattr(request, "body_too_large", False):
            self._finish(request, _error_response(HttpError(
                413, f"request body larger than {MAX_BODY_BYTES} bytes")), t0)
            return server.NOT_DONE_YET
        path = _decode(request.path)
        try:
            params = parse_params(request)
            if request.method == b"POST":
                api.stats.add("post_multipart_requests" if params.multipart else "post_requests")
            result = api.dispatch(path, params, request)
        except HttpError as e:
            self._finish(request, _error_response(e), t0)
            return server.NOT_DONE_YET
        except Exception as e:
            log.error("HTTP %s: %s", path, traceback.format_exc())
            self._finish(request, _error_response(HttpError(500, f"internal error: {type(e).__name__}: {e}")), t0)
            return server.NOT_DONE_YET
        if isinstance(result, Response):
            self._finish(request, result, t0)
            return server.NOT_DONE_YET
        finished = []
        request.notifyFinish().addErrback(lambda _f: finished.append(True))

        def ok(resp: Response) -> None:
            if not finished:
                self._finish(request, resp, t0)

        def failed(f: Any) -> None:
            if f.check(HttpError):
                resp = _error_response(f.value)
            else:
                log.error("HTTP %s failed: %s", path, f.getTraceback())
                resp = _error_response(HttpError(500, f"internal error: {f.type.__name__}: {f.value}"))
            if not finished:
                self._finish(request, resp, t0)

        result.addCallbacks(ok, failed)
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, resp: Response, t0: float) -> None:
        api = self.api
        usecs = int((time.monotonic() - t0) * 1e6)
        api.stats.add(f"responses_{resp.status}")
        api.stats.add("request_usecs", usecs)
        profiler = getattr(api.ctx, "profiler", None)
        if profiler is not None:
            try:
                profiler.record(f"http {_decode(request.method)} {_decode(request.uri)[:300]}", usecs)
            except Exception:  # the profiler must never break a response
                pass
        request.setResponseCode(resp.status)
        request.setHeader(b"content-type", resp.content_type.encode())
        request.setHeader(b"content-length", str(len(resp.body)).encode())
        for k, v in resp.headers.items():
            request.setHeader(k.encode(), v.encode())
        if resp.status != 200:
            request.setHeader(b"connection", b"close")
            channel = getattr(request, "channel", None)
            if channel is not None and hasattr(channel, "persistent"):
                channel.persistent = False
        if resp.body:
            request.write(resp.body)
        request.finish()


def _error_response(e: HttpError) -> Response:
    return Response(e.status, "text/plain; charset=utf-8", (e.message + "\n").encode("utf-8"))


class CycloneSite(server.Site):
    requestFactory = CycloneRequest
    displayTracebacks = False

    def log(self, request: server.Request) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s", _decode(request.method), _decode(request.uri), request.code)


def make_site(ctx: Any) -> CycloneSite:
    api = HttpApi(ctx)
    site = CycloneSite(ApiResource(api), timeout=IDLE_TIMEOUT_SECS)
    site.api = api  # type: ignore[attr-defined]
    return site


def _parse_listen(spec: Any) -> tuple[str, Any, str]:
    """('tcp', port, interface) or ('unix', path, '')."""
    if isinstance(spec, int):
        return "tcp", spec, ""
    spec = str(spec)
    if "/" in spec:
        return "unix", spec, ""
    host, _, port = spec.rpartition(":")
    return "tcp", int(port), host.strip("[]")


def _listen(reactor: Any, spec: Any, site: CycloneSite) -> Any:
    try:
        from cyclone.protocols.common import listen_stream
    except ImportError:
        listen_stream = None
    if listen_stream is not None:
        return listen_stream(reactor, spec, site, "http")
    kind, where, interface = _parse_listen(spec)
    if kind == "unix":
        import os
        import stat

        try:
            if stat.S_ISSOCK(os.stat(where).st_mode):
                os.unlink(where)  # a stale socket from a previous run
        except FileNotFoundError:
            pass
        port = reactor.listenUNIX(where, site)
    else:
        port = reactor.listenTCP(where, site, backlog=1024, interface=interface)
    log.info("listening for http on %s", spec)
    return port


def start_listeners(ctx: Any) -> list[Any]:
    """Listen on every `http_listen` address; returns the listening ports."""
    site = make_site(ctx)
    ctx.http_api = site.api  # lets the server (and tests) reach the HTTP API object
    return [_listen(ctx.reactor, spec, site) for spec in getattr(ctx.config, "http_listen", []) or []]
