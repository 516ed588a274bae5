"""graphite-web 1.1.10, in-process, as the oracle for Cyclone's query layer.

`GraphiteOracle.evaluate(target, start, end, now)` runs graphite-web's own
``evaluateTarget`` -- its parser, functions, and fetch/window logic -- over
the same `MemorySource` data that Cyclone's evaluator reads. `compare`
checks that two results agree: names, windows, path expressions, tags,
consolidation attributes, display options, and values (NaN == None,
numbers within 1e-9 relative).
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from typing import Any

import numpy as np

from tests.query.datasource import MemorySource

_SETUP_DONE = False


def setup_django() -> None:
    global _SETUP_DONE
    if _SETUP_DONE:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphite.settings")
    os.environ.setdefault("GRAPHITE_SETTINGS_MODULE", "tests.query.graphite_settings")
    import django

    django.setup()
    _SETUP_DONE = True


class GraphiteOracle:
    def __init__(self, source: MemorySource):
        setup_django()
        import pytz
        from django.conf import settings
        from django.core.cache import cache
        from graphite import storage
        from graphite.logger import log
        from graphite.render import datalib, functions
        from graphite.render.evaluator import evaluateTarget
        from graphite.tags.base import DummyTagDB

        from tests.query import graphite_finder

        graphite_finder.SOURCE = source
        # Whatever STORAGE_FINDERS ended up being, graphite reads through our finder.
        store = storage.Store(finders=[graphite_finder.MemoryFinder()], tagdb=DummyTagDB(settings, cache=cache, log=log))
        storage.STORE = datalib.STORE = functions.STORE = store
        self._evaluate = evaluateTarget
        self._tz = pytz.timezone("UTC")
        self.source = source

    def evaluate(
        self,
        target: str,
        start: int,
        end: int,
        now: int | None = None,
        x_files_factor: float | None = None,
        tz: str | None = None,
    ) -> list[Any]:
        import pytz

        tz = pytz.timezone(tz) if tz else self._tz
        ctx = {
            "startTime": datetime.fromtimestamp(start, tz),
            "endTime": datetime.fromtimestamp(end, tz),
            "now": datetime.fromtimestamp(now if now is not None else end, tz),
            "localOnly": False,
            "template": {},
            "tzinfo": tz,
            "forwardHeaders": None,
            "sourceIdHeaders": {},
            "data": [],
            "prefetched": {},
            "xFilesFactor": x_files_factor,
            "maxDataPoints": None,
            "targets": [target],
        }
        return self._evaluate(ctx, target)


def graphite_values(series: Any) -> np.ndarray:
    raw = list(list.__iter__(series))
    return np.array([np.nan if v is None else float(v) for v in raw], dtype=np.float64)


def compare(ours: list[Any], theirs: list[Any], target: str, rel: float = 1e-9) -> None:
    """Assert that Cyclone's result equals graphite-web's."""
    assert [s.name for s in ours] == [s.name for s in theirs], f"{target}: series names differ"
    for a, b in zip(ours, theirs):
        where = f"{target}: series {b.name!r}"
        assert (a.start, a.end, a.step) == (b.start, b.end, b.step), f"{where}: start/end/step differ"
        assert a.path_expression == b.pathExpression, f"{where}: pathExpression differs"
        assert a.tags == dict(b.tags), f"{where}: tags differ"
        assert a.consolidation_func == b.consolidationFunc, f"{where}: consolidationFunc differs"
        assert a.values_per_point == b.valuesPerPoint, f"{where}: valuesPerPoint differs"
        assert a.x_files_factor == b.xFilesFactor, f"{where}: xFilesFactor differs"
        assert a.options == b.options, f"{where}: options differ"
        assert a.color == getattr(b, "color", None), f"{where}: color differs"
        expected = graphite_values(b)
        got = np.asarray(a.values, dtype=np.float64)
        assert len(got) == len(expected), f"{where}: {len(got)} values, graphite has {len(expected)}"
        gaps_e, gaps_g = np.isnan(expected), np.isnan(got)
        bad = np.nonzero(gaps_e != gaps_g)[0]
        assert len(bad) == 0, (
            f"{where}: None at different points, first at index {bad[0]}: "
            f"ours {got[bad[0]]}, graphite {expected[bad[0]]}"
        )
        e, g = expected[~gaps_e], got[~gaps_g]
        with np.errstate(invalid="ignore"):
            close = (e == g) | (np.abs(e - g) <= rel * np.maximum(np.abs(e), np.abs(g))) | (np.abs(e - g) <= 1e-12)
        bad = np.nonzero(~close)[0]
        if len(bad):
            idx = np.nonzero(~gaps_e)[0][bad[0]]
            raise AssertionError(
                f"{where}: values differ at {len(bad)} points, first at index {idx}: "
                f"ours {got[idx]!r}, graphite {expected[idx]!r}"
            )


def is_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
