"""Small helpers shared by the function modules (not Graphite functions)."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from cyclone.query.series import TimeSeries


def fmt_g(value: float) -> str:
    """Python's ``"%g" % value`` (graphite formats numeric arguments in names so)."""
    return "%g" % value


def format_path_expressions(series: Iterable[TimeSeries]) -> str:
    """graphite's ``formatPathExpressions``: distinct path expressions, in order, comma-joined."""
    seen: dict[str, None] = {}
    for s in series:
        seen.setdefault(s.path_expression, None)
    return ",".join(seen)


def lcm_steps(steps: Sequence[int]) -> int:
    step = steps[0]
    for s in steps[1:]:
        step = step * s // math.gcd(step, s)
    return step


def py_round(values: np.ndarray, ndigits: int) -> np.ndarray:
    """Python's round(x, ndigits) (correctly rounded) for a float array.

    np.round differs from Python's round only when x * 10**ndigits lies
    within rounding error of a .5 boundary; those few values are redone
    with Python's round.
    """
    out = np.round(values, ndigits)
    scaled = values * (10.0**ndigits)
    with np.errstate(invalid="ignore"):
        frac = np.abs(scaled - np.floor(scaled) - 0.5)
        near = np.nonzero(np.isfinite(values) & (frac < 1e-6))[0]
    for i in near.tolist():
        out[i] = round(float(values[i]), ndigits)
    return out
