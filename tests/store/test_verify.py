"""Verify / repair in one process: a hash store over real local disk stores (behind a
write buffer), series planted on the wrong substore, then verify and repair."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cyclone.series import ArchiveArg, Points, SeriesMetadata
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.disk import CachedDiskStore
from cyclone.store.hash import ConsistentHashMultiStore
from cyclone.store.write_buffer import WriteBufferStore
from cyclone.store.empty import EmptyStore
from cyclone.verify import STATUS_FIELDS, ClusterControl

pytestmark = pytest.mark.timeout(120)

RULES = [["**", "60:1d", 0, "average"]]


def base_time() -> int:
    t = int(time.time())
    return t - t % 60 - 3600


@pytest.fixture
def cluster(tmp_path):
    rules = AutocreateRules(RULES)
    disks = {n: CachedDiskStore(str(tmp_path / n), rules) for n in ("s0", "s1", "s2")}
    buffers = {n: WriteBufferStore(d, rules, retry_delay=0.1) for n, d in disks.items()}
    hs = ConsistentHashMultiStore(buffers, -100)
    control = ClusterControl.from_store(hs, delete_grace_secs=0.2, batch_size=50)
    yield hs, disks, control
    hs.close()


def wait_done(control: ClusterControl, timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while control.status()["running"]:
        assert time.monotonic() < deadline, control.status()
        time.sleep(0.05)
    return control.status()


def plant(disks, hs, n=400):
    """n series written straight into s0 (in nested directories), 3 points each."""
    t0 = base_time()
    keys = [f"v.d{i % 5}.sub{i % 3}.k{i}" for i in range(n)]
    disks["s0"].write({k: Points(t0 + 60 * np.arange(3), [i, i + 0.5, i + 0.25])
                       for i, k in enumerate(keys)})
    return t0, keys


def test_verify_counts_without_moving(cluster):
    hs, disks, control = cluster
    t0, keys = plant(disks, hs)
    misplaced = sum(hs.owner_name(k) != "s0" for k in keys)
    assert control.start(repair=False)
    status = wait_done(control)
    assert status["series_scanned"] == len(keys)
    assert status["misplaced"] == misplaced
    assert status["moved"] == 0 and status["errors"] == 0
    assert status["repair"] == 0 and status["runs"] == 1
    assert status["start_time"] <= status["end_time"]
    assert len(disks["s0"].find(["v.**"])["v.**"].results) == len(keys)


def test_repair_moves_every_series_to_its_owner(cluster):
    hs, disks, control = cluster
    t0, keys = plant(disks, hs)
    # the owner already holds newer data for one misplaced key; the source wins on equal timestamps
    k = next(k for k in keys if hs.owner_name(k) != "s0")
    i = keys.index(k)
    disks[hs.owner_name(k)].write({k: Points([t0 + 60, t0 + 180], [-1.0, 99.0])})
    assert not hs.read_from_all
    assert control.start(repair=True)
    assert hs.read_from_all  # forced on while running
    assert not control.start(repair=True)  # one run at a time
    status = wait_done(control)
    assert not hs.read_from_all
    misplaced = sum(hs.owner_name(k) != "s0" for k in keys)
    assert status["misplaced"] == misplaced
    assert status["moved"] == misplaced
    assert status["errors"] == 0
    for key in keys:
        for name, disk in disks.items():
            assert (key in disk.find([key])[key].results) == (name == hs.owner_name(key)), (key, name)
    got = hs.read(keys, t0 - 60, t0 + 600)
    for j, key in enumerate(keys):
        expected = [(t0, float(j)), (t0 + 60, j + 0.5), (t0 + 120, j + 0.25)]
        if key == k:
            expected.append((t0 + 180, 99.0))
        assert got[key][key].datapoints() == expected
    # a second run finds nothing to do
    assert control.start(repair=True)
    status = wait_done(control)
    assert status["misplaced"] == 0 and status["series_scanned"] == len(keys)
    assert status["runs"] == 2


def test_repair_keeps_the_owners_layout_and_moves_buffered_points(cluster):
    hs, disks, control = cluster
    t0 = base_time()
    key = next(f"lay.k{i}" for i in range(100) if hs.owner_name(f"lay.k{i}") != "s0")
    owner = hs.owner_name(key)
    disks["s0"].update_metadata({key: SeriesMetadata([ArchiveArg(60, 1440)], 0.0, 1)})
    disks["s0"].write({key: Points([t0], [1.0])})
    disks[owner].update_metadata({key: SeriesMetadata([ArchiveArg(60, 2880)], 0.0, 4)})
    # a point still in s0's write buffer moves too
    hs.stores[0].write({key: Points([t0 + 60], [2.0])})
    assert control.start(repair=True)
    assert wait_done(control)["moved"] == 1
    ra = disks[owner].read_all(key)
    assert ra.metadata.archive_args == [ArchiveArg(60, 2880)] and ra.metadata.agg_method == 4
    assert ra.points.pairs() == [(t0, 1.0), (t0 + 60, 2.0)]
    assert disks["s0"].read_all(key).error is not None


def test_cancel_and_status(cluster):
    hs, disks, control = cluster
    plant(disks, hs, n=2000)
    assert set(control.status()) == set(STATUS_FIELDS)
    assert not control.cancel()
    assert control.start(repair=False)
    assert control.cancel()
    status = wait_done(control)
    assert status["cancelled"] == 1
    assert not hs.read_from_all
    assert hs.stats()["read_from_all"] == 0


def test_read_from_all_switch_and_inert_control(cluster):
    hs, disks, control = cluster
    assert control.enabled
    assert control.set_read_from_all(True) is False
    assert control.get_read_from_all() is True
    assert control.start(repair=False)
    wait_done(control)
    assert control.get_read_from_all() is True  # a switch turned on by hand stays on
    assert control.set_read_from_all(False) is True
    inert = ClusterControl.from_store(EmptyStore())
    assert not inert.enabled
    assert inert.start(True) is False and inert.cancel() is False
    assert inert.get_read_from_all() is False
    assert inert.status()["running"] == 0
