"""An in-memory data source with the Store API's ``read``, for query tests.

It serves deterministic generated series -- values are a function of the
key and the timestamp only, so every window (including the shifted windows
of timeShift / movingAverage) sees the same data -- and it answers reads
with whisper's window rules (the same ones Cyclone's disk store and a
graphite-web backend use): for a series of step s, a read of [from, until]
returns points from ``from - from % s + s`` up to (excluding) ``until -
until % s + s`` (one more step if they are equal).

The same object feeds both Cyclone's evaluator and graphite-web (through
`tests.query.graphite_finder`), so differential tests compare functions,
not data.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from cyclone.patterns import match_key
from cyclone.series import ReadResult


@dataclass(frozen=True)
class Spec:
    """How one generated series looks."""

    step: int
    kind: str = "gauge"  # gauge | counter | wrapping | divisor | empty | constant
    gap_mod: int = 0  # every point whose index*31+seed is divisible by this is a gap (0: none)
    long_gap: tuple[int, int] | None = None  # [start, end) epoch range with no data at all
    scale: float = 1.0


def _seed(key: str) -> int:
    return zlib.crc32(key.encode()) % 1000


def generate(key: str, spec: Spec, timestamps: np.ndarray) -> np.ndarray:
    seed = _seed(key)
    i = timestamps // spec.step
    if spec.kind == "empty":
        return np.full(len(timestamps), np.nan)
    if spec.kind == "constant":
        values = np.full(len(timestamps), 5.0 * spec.scale)
    elif spec.kind == "counter":
        # Monotonic, reset to a low value every 97 points.
        values = ((i % 97) * (3 + seed % 5) + (i * 7 + seed) % 3).astype(np.float64)
    elif spec.kind == "wrapping":
        # A counter that wraps at 1000.
        values = ((i * (37 + seed % 11)) % 1000).astype(np.float64)
    elif spec.kind == "divisor":
        values = ((i + seed) % 5 - 2).astype(np.float64)  # includes zeros and negatives
    else:
        wave = 20.0 * np.sin(i / (7.0 + seed % 5)) + 10.0 * np.cos(i / 23.0)
        noise = ((i * 7919 + seed * 104729) % 97) / 4.0
        values = np.round((wave + noise - 15.0) * 4.0) / 4.0 * spec.scale
    if spec.gap_mod:
        values = np.where((i * 31 + seed) % spec.gap_mod == 0, np.nan, values)
    if spec.long_gap is not None:
        lo, hi = spec.long_gap
        values = np.where((timestamps >= lo) & (timestamps < hi), np.nan, values)
    return values


def whisper_window(start: int, end: int, step: int) -> tuple[int, int]:
    from_t = start - start % step + step
    until_t = end - end % step + step
    if from_t == until_t:
        until_t += step
    return from_t, until_t


class MemorySource:
    """Generated series, served through ``read(patterns, start, end)``."""

    def __init__(self, specs: dict[str, Spec]):
        self.specs = dict(sorted(specs.items()))
        self.reads: list[tuple[list[str], int, int]] = []

    def keys(self, pattern: str) -> list[str]:
        return [k for k in self.specs if match_key(pattern, k)]

    def fetch(self, key: str, start: int, end: int) -> tuple[int, int, int, np.ndarray]:
        spec = self.specs[key]
        from_t, until_t = whisper_window(int(start), int(end), spec.step)
        timestamps = np.arange(from_t, until_t, spec.step, dtype=np.int64)
        return from_t, until_t, spec.step, generate(key, spec, timestamps)

    def read(self, patterns: list[str], start: int, end: int, local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        self.reads.append((list(patterns), start, end))
        out: dict[str, dict[str, ReadResult]] = {}
        for pattern in patterns:
            results = {}
            for key in self.keys(pattern):
                s, e, step, values = self.fetch(key, start, end)
                results[key] = ReadResult(None, s, e, step, values)
            out[pattern] = results
        return out


T0 = 1_700_000_000
LONG_GAP = (T0 + 3000, T0 + 3600)

#: The data set of the differential tests.
SPECS: dict[str, Spec] = {
    # 10 s gauges with scattered gaps, one with a 10-minute hole.
    "test.gauge.a": Spec(10, gap_mod=7),
    "test.gauge.b": Spec(10, gap_mod=5, long_gap=LONG_GAP),
    "test.gauge.c": Spec(10, gap_mod=11, scale=-2.0),
    # 60 s series (different step than the 10 s ones).
    "test.coarse.x": Spec(60, gap_mod=6),
    "test.coarse.y": Spec(60),
    # Mixed steps under one wildcard.
    "test.mixed.fine": Spec(10, gap_mod=9),
    "test.mixed.medium": Spec(30, gap_mod=4),
    "test.mixed.coarse": Spec(60, gap_mod=8),
    # Counters (no gaps) and one with gaps.
    "test.counter.c1": Spec(10, kind="counter"),
    "test.counter.c2": Spec(10, kind="counter"),
    "test.counter.gappy": Spec(10, kind="counter", gap_mod=6),
    "test.wrap.w1": Spec(10, kind="wrapping"),
    # Division.
    "test.div.num": Spec(10, gap_mod=8),
    "test.div.den": Spec(10, kind="divisor"),
    "test.div.coarseden": Spec(60, kind="divisor"),
    # Edge cases.
    "test.empty.e1": Spec(10, kind="empty"),
    "test.empty.e2": Spec(60, kind="empty"),
    "test.sparse.s1": Spec(10, gap_mod=2),
    "test.const.k": Spec(10, kind="constant"),
    # Names with the characters graphite allows in paths.
    "test.sp-ec:ial.a#b@c%d=e": Spec(10, gap_mod=13),
    "test.sp-ec:ial.host_1-x": Spec(10),
    # For natural sorting and node aliasing.
    "test.hosts.server1.load": Spec(60),
    "test.hosts.server2.load": Spec(60, gap_mod=3),
    "test.hosts.server10.load": Spec(60),
    "test.hosts.server11.load": Spec(60, kind="empty"),
}
