"""A graphite-web 1.1 finder that serves a `tests.query.datasource.MemorySource`.

graphite-web's Store calls ``fetch(patterns, start, end, now, requestContext)``
on it for every prefetch (including the extra windows of timeShift,
movingAverage, ...), so the oracle runs graphite's own fetch/window logic on
exactly the data Cyclone's evaluator reads.
"""

from __future__ import annotations

from graphite.finders.utils import BaseFinder
from graphite.node import LeafNode

from tests.query.datasource import MemorySource

#: Set by the test fixture before graphite evaluates anything.
SOURCE: MemorySource | None = None


class _Reader:
    def __init__(self, key: str):
        self.key = key

    def fetch(self, start_time, end_time, now=None, requestContext=None):
        s, e, step, values = SOURCE.fetch(self.key, start_time, end_time)
        return (s, e, step), [None if v != v else float(v) for v in values.tolist()]

    def get_intervals(self):
        from graphite.intervals import Interval, IntervalSet

        return IntervalSet([Interval(0, 2**31)])


class MemoryFinder(BaseFinder):
    local = True

    def find_nodes(self, query):
        for key in SOURCE.keys(query.pattern):
            yield LeafNode(key, _Reader(key))

    def fetch(self, patterns, start_time, end_time, now=None, requestContext=None):
        results = []
        for pattern in patterns:
            for key in SOURCE.keys(pattern):
                s, e, step, values = SOURCE.fetch(key, start_time, end_time)
                results.append({
                    "pathExpression": pattern,
                    "path": key,
                    "name": key,
                    "time_info": (s, e, step),
                    "values": [None if v != v else float(v) for v in values.tolist()],
                })
        return results
