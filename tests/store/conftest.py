"""Fixtures for store tests: real stores over real files in tmp dirs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cyclone.series import Points
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.disk import CachedDiskStore, DiskStore

# one-minute archive for a day, one-hour archive for a month
RULES = [["nocreate.**", "60:1d", 0, "average"], ["**", "60:1d,1h:30d", 0.5, "average"]]


@pytest.fixture
def rules() -> AutocreateRules:
    return AutocreateRules([r for r in RULES if not r[0].startswith("nocreate")])


@pytest.fixture(params=["disk", "cached_disk"])
def disk_store(request, tmp_path, rules):
    cls = DiskStore if request.param == "disk" else CachedDiskStore
    store = cls(str(tmp_path / "data"), rules, open_file_cache_size=8)
    yield store
    store.close()


def now_aligned(step: int = 60) -> int:
    t = int(time.time())
    return t - t % step - 10 * step


def pts(pairs) -> Points:
    return Points.from_pairs(pairs)


def values_at(result, timestamps):
    """Values of a ReadResult at the given timestamps (None for gaps)."""
    out = []
    for t in timestamps:
        i = (t - result.start_time) // result.step
        v = result.values[i]
        out.append(None if np.isnan(v) else float(v))
    return out
