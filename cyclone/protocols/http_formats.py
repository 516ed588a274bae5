"""Response bodies of the HTTP API: render formats, find formats, JSON helpers.

Render formats follow graphite-web 1.1.10's render views exactly:
- json: `[{"target", "tags", "datapoints": [[value|null, ts], ...]}]`, with
  graphite's maxDataPoints consolidation (including its start "nudge") and
  noNullPoints; +-Infinity as +-1e9999 like graphite.
- csv: `name,YYYY-MM-DD HH:MM:SS,value` rows (excel dialect, wall-clock
  time in the request's zone), an empty value for a gap.
- raw: `name,start,end,step|v,v,None,...` lines.
- pickle / msgpack: the cluster shape, a list of
  `{name, start, end, step, values, pathExpression, valuesPerPoint,
  consolidationFunc, xFilesFactor}` with None for gaps.

The json path is the hot one (1,000 series x 8,640 points): orjson formats
a series' values in one call, and one bytes `%` against a per-window
template `[[%s,<ts0>],[%s,<ts1>],...]` (built once, shared by every series
with that window) interleaves them with the timestamps; the only Python
objects per datapoint are the value tokens. Without orjson (or with
infinities in a series) a slower pure-Python path produces the same JSON.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import pickle
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Iterable, Sequence

import numpy as np

try:  # optional accelerator; the output is the same JSON without it
    import orjson
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    orjson = None

try:
    import msgpack
except ImportError:  # pragma: no cover
    msgpack = None

PICKLE_PROTOCOL = 2  # readable by every graphite-web (Python 2.7 webapps included)

# ---------------------------------------------------------------------------
# series


@dataclass
class RenderSeries:
    """One series of a render response (graphite's TimeSeries, numpy-backed)."""

    name: str
    start: int
    end: int
    step: int
    values: np.ndarray  # float64, NaN = gap
    path_expression: str = ""
    tags: dict[str, str] | None = None
    consolidation_func: str = "average"
    values_per_point: int = 1
    x_files_factor: float = 0.0

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if not self.path_expression:
            self.path_expression = self.name

    def tag_dict(self) -> dict[str, str]:
        if self.tags:
            return {str(k): str(v) for k, v in self.tags.items()}
        return {"name": self.name}

    def effective_values(self) -> np.ndarray:
        """The values graphite would iterate (consolidated by values_per_point)."""
        if self.values_per_point > 1:
            return consolidate(self.values, self.values_per_point, self.consolidation_func,
                               self.x_files_factor)
        return self.values

    def info(self) -> dict[str, Any]:
        """graphite's TimeSeries.getInfo(): the pickle/msgpack cluster shape."""
        return {
            "name": self.name,
            "start": int(self.start),
            "end": int(self.end),
            "step": int(self.step),
            "values": values_to_list(self.effective_values()),
            "pathExpression": self.path_expression,
            "valuesPerPoint": int(self.values_per_point),
            "consolidationFunc": self.consolidation_func,
            "xFilesFactor": float(self.x_files_factor),
        }


def values_to_list(values: np.ndarray) -> list[float | None]:
    """float64 array -> list of floats with None for NaN (fast for big arrays)."""
    nan = np.isnan(values)
    if not nan.any():
        return values.tolist()
    obj = values.astype(object)
    obj[nan] = None
    return obj.tolist()


# ---------------------------------------------------------------------------
# consolidation (graphite's TimeSeries.__consolidatingGenerator)

CONSOLIDATION_FUNCS = ("sum", "average", "avg", "avg_zero", "max", "min", "first", "last")


def consolidate(values: np.ndarray, vpp: int, func: str = "average", xff: float = 0.0) -> np.ndarray:
    """Consolidate every `vpp` values into one, exactly like graphite-web.

    A bucket (the last one may be partial) is None when it has no value or
    when known/vpp < xff. Sums run left to right like Python's sum().
    """
    vpp = int(vpp)
    if vpp <= 1 or len(values) == 0:
        return values
    if func == "avg":
        func = "average"
    if func not in CONSOLIDATION_FUNCS:
        raise ValueError(f"invalid consolidation function {func!r}")
    n = len(values)
    m = -(-n // vpp)
    padded = np.full(m * vpp, np.nan)
    padded[:n] = values
    # (vpp, m): one bucket per column
    cols = np.ascontiguousarray(padded.reshape(m, vpp).T)
    known = ~np.isnan(cols)
    count = known.sum(axis=0)
    zeroed = np.where(known, cols, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if func in ("sum", "average", "avg_zero"):
            # cumsum adds strictly left to right, like Python's sum() (np.sum is pairwise)
            total = np.cumsum(zeroed, axis=0)[-1]
        if func == "sum":
            out = total
        elif func == "average":
            out = total / count
        elif func == "avg_zero":
            lengths = np.full(m, vpp, dtype=np.float64)
            lengths[-1] = n - (m - 1) * vpp
            out = total / lengths
        elif func == "max":
            out = np.max(np.where(known, cols, -np.inf), axis=0)
        elif func == "min":
            out = np.min(np.where(known, cols, np.inf), axis=0)
        elif func == "first":
            idx = np.argmax(known, axis=0)
            out = cols[idx, np.arange(m)]
        else:  # last
            idx = vpp - 1 - np.argmax(known[::-1], axis=0)
            out = cols[idx, np.arange(m)]
    out = np.asarray(out, dtype=np.float64)
    bad = (count == 0) | (count / vpp < xff)
    out[bad] = np.nan
    return out


def apply_max_data_points(series_list: Sequence[RenderSeries], max_data_points: int) -> list[
        tuple[RenderSeries, np.ndarray, int, int]]:
    """graphite's renderViewJson consolidation.

    Returns (series, values to emit, first timestamp, timestamp step) per
    series; values are already consolidated.
    """
    out = []
    if not series_list:
        return out
    start_time = min(s.start for s in series_list)
    end_time = max(s.end for s in series_list)
    time_range = end_time - start_time
    for s in series_list:
        start = int(s.start)
        values = s.values
        vpp = s.values_per_point
        if max_data_points == 1:
            vpp = max(1, len(values))
        elif s.step > 0:
            number_of_points = time_range / s.step
            if max_data_points < number_of_points:
                vpp = math.ceil(float(number_of_points) / float(max_data_points))
                seconds_per_point = int(vpp * s.step)
                nudge = seconds_per_point + (start % s.step) - (start % seconds_per_point)
                start += nudge
                values_to_lose = int(nudge / s.step)
                if values_to_lose > 1:  # graphite deletes values_to_lose - 1 values
                    values = values[values_to_lose - 1:]
        cons = consolidate(values, vpp, s.consolidation_func, s.x_files_factor) if vpp > 1 else values
        out.append((s, cons, start, int(s.step * max(1, vpp))))
    return out


# ---------------------------------------------------------------------------
# JSON


def dumps(obj: Any) -> bytes:
    """Compact JSON (NaN/Infinity never appear: callers pass finite numbers)."""
    if orjson is not None:
        return orjson.dumps(obj)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_POS_INF = "\x00cyclone+inf\x00"
_NEG_INF = "\x00cyclone-inf\x00"


def sanitize_json(obj: Any) -> Any:
    """Replace non-finite floats so the result is valid JSON: NaN -> None, +-inf -> markers."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return _POS_INF if obj > 0 else _NEG_INF
        return obj
    if isinstance(obj, dict):
        return {str(k): sanitize_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize_json(v) for v in obj]
    return obj


def dumps_sanitized(obj: Any) -> bytes:
    """JSON of arbitrary data with +-Infinity written as +-1e9999 (graphite's convention), NaN as null."""
    text = json.dumps(sanitize_json(obj), default=_default, separators=(",", ":"), ensure_ascii=True)
    return (text.replace('"\\u0000cyclone+inf\\u0000"', "1e9999")
            .replace('"\\u0000cyclone-inf\\u0000"', "-1e9999").encode("ascii"))


def _default(o: Any) -> Any:
    if hasattr(o, "toJSON"):
        return o.toJSON()
    if hasattr(o, "__dict__"):
        return o.__dict__
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


class _TimestampBlocks:
    """Per-window `[[%s,<ts0>],[%s,<ts1>],...]` templates, shared by every series with that window."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int, int], bytes] = {}

    def get(self, start: int, step: int, count: int) -> bytes:
        key = (start, step, count)
        template = self._cache.get(key)
        if template is None:
            stamps = range(start, start + step * count, step)
            template = b"[[%s," + b"],[%s,".join(b"%d" % t for t in stamps) + b"]]"
            self._cache[key] = template
        return template


def _points_fast(values: np.ndarray, template: bytes) -> bytes:
    """`[[v,ts],...]` for finite-or-NaN values: orjson formats the values, a template adds the rest."""
    vb = orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY)
    return template % tuple(vb[1:-1].split(b","))


def _number(v: float) -> str:
    if v != v:
        return "null"
    if v == math.inf:
        return "1e9999"
    if v == -math.inf:
        return "-1e9999"
    return repr(v)


def _points_slow(values: np.ndarray, start: int, step: int) -> bytes:
    parts = [f"[{_number(v)},{start + i * step}]" for i, v in enumerate(values.tolist())]
    return ("[" + ",".join(parts) + "]").encode("ascii")


def json_datapoints(values: np.ndarray, start: int, step: int, blocks: _TimestampBlocks | None = None) -> bytes:
    """The `datapoints` array of one series."""
    n = len(values)
    if n == 0:
        return b"[]"
    if orjson is not None and not np.isinf(values).any():
        return _points_fast(values, (blocks or _TimestampBlocks()).get(int(start), int(step), n))
    return _points_slow(values, int(start), int(step))


def render_json(series_list: Sequence[RenderSeries], max_data_points: int | None = None,
                no_null_points: bool = False, jsonp: str | None = None) -> tuple[bytes, str]:
    """(body, content type) of format=json."""
    blocks = _TimestampBlocks()
    pieces: list[bytes] = []
    if any(len(s.values) for s in series_list):
        if max_data_points is not None:
            prepared = apply_max_data_points(series_list, max_data_points)
        else:
            prepared = [(s, s.effective_values(), int(s.start), int(s.step * max(1, s.values_per_point)))
                        for s in series_list]
        for s, values, start, ts_step in prepared:
            # graphite zips values with range(start, end + 1, ts_step): the shorter wins
            n_ts = (int(s.end) - start) // ts_step + 1 if ts_step > 0 and s.end >= start else 0
            values = values[:max(0, n_ts)]
            if no_null_points:
                keep = ~np.isnan(values)
                if not keep.any():
                    continue
                if not keep.all():
                    idx = np.flatnonzero(keep)
                    pts = ",".join(f"[{_number(v)},{start + i * ts_step}]"
                                   for i, v in zip(idx.tolist(), values[idx].tolist()))
                    points = ("[" + pts + "]").encode("ascii")
                else:
                    points = json_datapoints(values, start, ts_step, blocks)
            else:
                points = json_datapoints(values, start, ts_step, blocks)
            pieces.extend((b',{"target":' if pieces else b'{"target":', dumps(s.name), b',"tags":',
                           dumps(s.tag_dict()), b',"datapoints":', points, b"}"))
    # one copy of the (possibly 100+ MB) body, not one per series
    if jsonp:
        return b"".join([jsonp.encode("utf-8"), b"([", *pieces, b"])"]), "text/javascript"
    return b"".join([b"[", *pieces, b"]"]), "application/json"


def render_csv(series_list: Sequence[RenderSeries], tz: tzinfo | None) -> tuple[bytes, str]:
    out = io.StringIO()
    writer = csv.writer(out, dialect="excel")
    stamps: dict[tuple[int, int, int], list[str]] = {}
    for s in series_list:
        values = s.effective_values()
        step = int(s.step * max(1, s.values_per_point))
        key = (int(s.start), step, len(values))
        if key not in stamps:
            stamps[key] = [_wall(s.start + i * step, tz) for i in range(len(values))]
        writer.writerows(zip([s.name] * len(values), stamps[key],
                             ["" if v != v else v for v in values.tolist()]))
    return out.getvalue().encode("utf-8"), "text/csv"


def _wall(ts: int, tz: tzinfo | None) -> str:
    dt = datetime.fromtimestamp(ts, tz) if tz is not None else datetime.fromtimestamp(ts)
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def render_raw(series_list: Sequence[RenderSeries]) -> tuple[bytes, str]:
    lines = []
    for s in series_list:
        values = s.effective_values()
        body = ",".join("None" if v != v else repr(v) for v in values.tolist())
        lines.append("%s,%d,%d,%d|%s\n" % (s.name, s.start, s.end, s.step, body))
    return "".join(lines).encode("utf-8"), "text/plain"


def render_pickle(series_list: Sequence[RenderSeries]) -> tuple[bytes, str]:
    return pickle.dumps([s.info() for s in series_list], protocol=PICKLE_PROTOCOL), "application/pickle"


def render_msgpack(series_list: Sequence[RenderSeries]) -> tuple[bytes, str]:
    if msgpack is None:  # pragma: no cover
        raise ValueError("format=msgpack needs the msgpack package on the server")
    return msgpack.packb([s.info() for s in series_list], use_bin_type=True), "application/x-msgpack"


# ---------------------------------------------------------------------------
# find


@dataclass(order=True)
class FindNode:
    """One find match: a leaf (series) or a branch (directory)."""

    path: str
    is_leaf: bool
    intervals: list[tuple[int, int]] = field(default_factory=list, compare=False)

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def find_pickle(nodes: Iterable[FindNode]) -> tuple[bytes, str]:
    info = []
    for n in nodes:
        d: dict[str, Any] = {"path": n.path, "is_leaf": n.is_leaf}
        if n.is_leaf:
            d["intervals"] = [(int(a), int(b)) for a, b in n.intervals]
        info.append(d)
    return pickle.dumps(info, protocol=PICKLE_PROTOCOL), "application/pickle"


def find_msgpack(nodes: Iterable[FindNode]) -> tuple[bytes, str]:
    if msgpack is None:  # pragma: no cover
        raise ValueError("format=msgpack needs the msgpack package on the server")
    info = []
    for n in nodes:
        d: dict[str, Any] = {"path": n.path, "is_leaf": n.is_leaf}
        if n.is_leaf:
            d["intervals"] = [[int(a), int(b)] for a, b in n.intervals]
        info.append(d)
    return msgpack.packb(info, use_bin_type=True), "application/x-msgpack"


def find_json(nodes: Iterable[FindNode]) -> list[dict[str, Any]]:
    info = []
    for n in nodes:
        d: dict[str, Any] = {"path": n.path, "is_leaf": n.is_leaf}
        if n.is_leaf:
            d["intervals"] = [{"start": int(a), "end": int(b)} for a, b in n.intervals]
        info.append(d)
    return sorted(info, key=lambda item: item["path"])


_BRANCH = {"allowChildren": 1, "expandable": 1, "leaf": 0}
_LEAF = {"allowChildren": 0, "expandable": 0, "leaf": 1}


def find_treejson(nodes: Sequence[FindNode], base_path: str, wildcards: bool) -> list[dict[str, Any]]:
    """graphite's tree_json: optional wildcard node, branches, then leaves."""
    from urllib.parse import unquote_plus

    results: list[dict[str, Any]] = []
    if len(nodes) > 1 and wildcards:
        wild: dict[str, Any] = {"text": "*", "id": base_path + "*"}
        wild.update(_BRANCH if any(not n.is_leaf for n in nodes) else _LEAF)
        results.append(wild)
    found: set[str] = set()
    branches: list[dict[str, Any]] = []
    leaves: list[dict[str, Any]] = []
    for n in nodes:
        if n.name in found:
            continue
        found.add(n.name)
        node: dict[str, Any] = {"text": unquote_plus(n.name), "id": base_path + n.name}
        if n.is_leaf:
            node.update(_LEAF)
            leaves.append(node)
        else:
            node.update(_BRANCH)
            branches.append(node)
    return results + branches + leaves


def find_completer(nodes: Sequence[FindNode], wildcards: bool) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for n in nodes:
        info = {"path": n.path if n.is_leaf else n.path + ".", "name": n.name,
                "is_leaf": str(int(n.is_leaf))}
        results.append(info)
    if len(results) > 1 and wildcards:
        results.append({"name": "*"})
    return {"metrics": results}


def find_html(nodes: Sequence[FindNode], queries: Sequence[str]) -> tuple[bytes, str]:
    from urllib.parse import quote

    rows = []
    for n in nodes:
        if n.is_leaf:
            href = "/render?format=json&target=" + quote(n.path, safe="")
            rows.append(f'<li><a href="{html.escape(href)}">{html.escape(n.path)}</a></li>')
        else:
            href = "/metrics/find?format=html&query=" + quote(n.path + ".*", safe="")
            rows.append(f'<li><a href="{html.escape(href)}">{html.escape(n.path)}.*</a></li>')
    title = html.escape(", ".join(queries))
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>find {title}</title></head>"
            f"<body><h1>find {title}</h1><p>{len(rows)} result(s)</p><ul>\n"
            + "\n".join(rows) + "\n</ul></body></html>\n")
    return page.encode("utf-8"), "text/html; charset=utf-8"
