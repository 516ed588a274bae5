"""Graphite's aggregation functions ("sum", "average", "median", ...), vectorised.

graphite-web applies its ``safe*`` helpers to one Python list at a time (a
row across series, a window, a bucket). Here they run on whole matrices:
`reduce_rows` reduces every row of a 2-D float64 array (NaN = None) at once.

Semantics follow graphite-web 1.1.10's ``aggFuncs``:

* every function ignores None, and a row without any non-null value gives
  NaN (callers apply their xFilesFactor rule on top);
* ``multiply`` gives None as soon as a None is among its inputs, and
  ``avg_zero`` counts each None as a 0 -- so for these two it matters
  whether the caller passes the Nones (aggregate, summarize: yes;
  movingWindow: no, it passes only non-null values). Say which with
  ``nulls_passed``; ``slots`` gives the number of real (non-padding)
  entries per row when rows were right-padded to a common width;
* ``diff`` is the first non-null value minus all the other non-null ones;
  ``stddev`` is the population standard deviation; ``last`` is the last
  non-null value; ``count`` the number of non-null values.
"""

from __future__ import annotations

import warnings

import numpy as np

from cyclone.query.errors import QueryError

__all__ = [
    "AGG_FUNCS",
    "AGG_ALIASES",
    "resolve_agg_func",
    "valid_agg_func_names",
    "reduce_rows",
    "reduce_windows",
]

#: Canonical aggregation names, in graphite's order.
AGG_FUNCS: tuple[str, ...] = (
    "average",
    "avg_zero",
    "median",
    "sum",
    "min",
    "max",
    "diff",
    "stddev",
    "count",
    "range",
    "multiply",
    "last",
)
#: Accepted aliases and what they mean.
AGG_ALIASES: dict[str, str] = {"rangeOf": "range", "avg": "average", "total": "sum", "current": "last"}


def valid_agg_func_names() -> list[str]:
    """Names graphite's aggFunc parameter type lists as options."""
    return list(AGG_FUNCS) + list(AGG_ALIASES)


def resolve_agg_func(name: str) -> str:
    """Canonical name of an aggregation function or alias; QueryError if unknown."""
    if name in AGG_FUNCS:
        return name
    if name in AGG_ALIASES:
        return AGG_ALIASES[name]
    raise QueryError(f"unsupported aggregation function {name!r} (use one of: {', '.join(valid_agg_func_names())})")


def _chunks(n_rows: int, width: int, budget: int = 1 << 21):
    rows = max(1, budget // max(1, width))
    for lo in range(0, n_rows, rows):
        yield lo, min(n_rows, lo + rows)


def reduce_rows(
    m: np.ndarray,
    func: str,
    *,
    slots: np.ndarray | None = None,
    nulls_passed: bool = True,
) -> np.ndarray:
    """Reduce each row of `m` with aggregation `func` (a name or alias).

    `m` may be a strided view (e.g. ``sliding_window_view``); large inputs
    are processed in row chunks so temporary copies stay small.
    """
    func = resolve_agg_func(func)
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError("reduce_rows needs a 2-D array")
    n_rows, width = m.shape
    out = np.full(n_rows, np.nan)
    if n_rows == 0 or width == 0:
        return out
    for lo, hi in _chunks(n_rows, width):
        out[lo:hi] = _reduce(m[lo:hi], func, None if slots is None else np.asarray(slots)[lo:hi], nulls_passed)
    return out


def _reduce(m: np.ndarray, func: str, slots: np.ndarray | None, nulls_passed: bool) -> np.ndarray:
    valid = ~np.isnan(m)
    count = valid.sum(axis=1)
    has = count > 0
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if func == "sum":
            res = np.nansum(m, axis=1)
        elif func == "average":
            res = np.nansum(m, axis=1) / count
        elif func == "avg_zero":
            if nulls_passed:
                denom = slots if slots is not None else m.shape[1]
                res = np.nansum(m, axis=1) / denom
            else:
                res = np.nansum(m, axis=1) / count
        elif func == "median":
            res = _median(m, count)
        elif func == "min":
            res = np.fmin.reduce(m, axis=1)
        elif func == "max":
            res = np.fmax.reduce(m, axis=1)
        elif func == "range":
            res = np.fmax.reduce(m, axis=1) - np.fmin.reduce(m, axis=1)
        elif func == "count":
            res = count.astype(np.float64)
        elif func == "stddev":
            mean = np.nansum(m, axis=1) / count
            dev = np.where(valid, m - mean[:, None], 0.0)
            res = np.sqrt(np.sum(dev * dev, axis=1) / count)
        elif func == "last":
            last = m.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
            res = m[np.arange(len(m)), last]
        elif func == "diff":
            first_idx = np.argmax(valid, axis=1)
            rows = np.arange(len(m))
            first = m[rows, first_idx]
            rest = np.array(m, copy=True)
            rest[rows, first_idx] = np.nan
            res = first - np.nansum(rest, axis=1)
        elif func == "multiply":
            res = np.prod(np.where(valid, m, 1.0), axis=1)
            if nulls_passed:
                if slots is None:
                    poisoned = count < m.shape[1]
                else:
                    idx = np.arange(m.shape[1])[None, :]
                    poisoned = (~valid & (idx < np.asarray(slots)[:, None])).any(axis=1)
                res = np.where(poisoned, np.nan, res)
        else:  # pragma: no cover - resolve_agg_func guards this
            raise QueryError(f"unsupported aggregation function {func!r}")
    res = np.asarray(res, dtype=np.float64)
    return np.where(has, res, np.nan)


def _median(m: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Row medians ignoring NaN (NaN sorts last); odd counts give the middle value itself."""
    s = np.sort(m, axis=1)
    rows = np.arange(len(m))
    lo = np.maximum((count - 1) // 2, 0)
    hi = np.minimum(count // 2, m.shape[1] - 1)
    a, b = s[rows, lo], s[rows, hi]
    return np.where(lo == hi, a, (a + b) / 2)


def _block_scan(x: np.ndarray, w: int, op: np.ufunc, identity: float) -> np.ndarray:
    """op over every window x[j:j+w] (j = 0 .. n-w), in O(n) (van Herk / Gil-Werman).

    Each window is the union of a suffix of one block of w values and a
    prefix of the next, so every result combines at most two partial
    reductions computed left to right.
    """
    n = len(x)
    blocks = -(-n // w)
    padded = np.full(blocks * w, identity)
    padded[:n] = x
    b = padded.reshape(blocks, w)
    prefix = op.accumulate(b, axis=1).ravel()
    suffix = op.accumulate(b[:, ::-1], axis=1)[:, ::-1].ravel()
    j = np.arange(n - w + 1)
    out = op(suffix[j], prefix[j + w - 1])
    aligned = j % w == 0
    out[aligned] = suffix[j[aligned]]
    return out


def reduce_windows(v: np.ndarray, w: int, func: str) -> np.ndarray:
    """`func` over each window v[j:j+w] (j = 0 .. len(v)-w) of the non-null values
    (movingWindow semantics: Nones are not passed, so ``multiply`` and
    ``avg_zero`` see only the non-null values). Windows without a non-null
    value give NaN. sum, average, count, min, max, range, multiply and last
    run in O(n); the others reduce a sliding view row by row.
    """
    func = resolve_agg_func(func)
    v = np.asarray(v, dtype=np.float64)
    n = len(v)
    if w <= 0 or n < w:
        return np.full(max(0, n - w + 1) if w > 0 else 0, np.nan)
    valid = ~np.isnan(v)
    count = _block_scan(valid.astype(np.float64), w, np.add, 0.0)
    has = count > 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if func in ("sum", "average", "avg_zero"):
            total = _block_scan(np.where(valid, v, 0.0), w, np.add, 0.0)
            res = total if func == "sum" else total / count
        elif func == "count":
            res = count
        elif func == "min":
            res = _block_scan(v, w, np.fmin, np.nan)
        elif func == "max":
            res = _block_scan(v, w, np.fmax, np.nan)
        elif func == "range":
            res = _block_scan(v, w, np.fmax, np.nan) - _block_scan(v, w, np.fmin, np.nan)
        elif func == "multiply":
            res = _block_scan(np.where(valid, v, 1.0), w, np.multiply, 1.0)
        elif func == "last":
            last = np.maximum.accumulate(np.where(valid, np.arange(n), -1))[w - 1 :]
            res = v[np.maximum(last, 0)]
        else:
            from numpy.lib.stride_tricks import sliding_window_view

            return reduce_rows(sliding_window_view(v, w), func, nulls_passed=False)
    return np.where(has, res, np.nan)
