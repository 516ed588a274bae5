"""Hash store: both ring algorithms (carbon equivalence, constant ring movement) and
routing over real disk stores in one process."""

from __future__ import annotations

import collections
import random
import string
import time

import numpy as np
import pytest
from carbon.hashing import ConsistentHashRing

from cyclone.config import ConfigError
from cyclone.series import Points, SeriesMetadata, ArchiveArg
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.disk import CachedDiskStore
from cyclone.store.factory import build_store, validate_store_config
from cyclone.store.hash import (
    CarbonHashRing,
    ConsistentHashMultiStore,
    ConstantHashRing,
    carbon_position,
    make_ring,
)

pytestmark = pytest.mark.timeout(120)

RULES = [["**", "60:1d", 0, "average"]]


def random_keys(n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "_-"
    return [".".join("".join(rnd.choices(alphabet, k=rnd.randint(1, 12)))
                     for _ in range(rnd.randint(1, 6))) for _ in range(n)]


# -- carbon's ring -------------------------------------------------------------------
@pytest.mark.parametrize("nodes,replicas", [
    ([("127.0.0.1", "a"), ("127.0.0.1", "b"), ("127.0.0.1", "c")], 100),
    ([("10.0.0.1", None), ("10.0.0.2", None), ("10.0.0.3", None), ("10.0.0.4", None)], 100),
    ([("cache-%d.example.com" % i, str(i)) for i in range(7)], 37),
])
def test_carbon_ring_matches_carbon_for_100k_keys(nodes, replicas):
    carbon = ConsistentHashRing(nodes, replica_count=replicas)
    ours = CarbonHashRing([str(n) for n in nodes], replicas)
    keys = random_keys(100_000)
    expected = [str(carbon.get_node(k)) for k in keys]
    got = [ours.nodes[i] for i in ours.nodes_for(keys)]
    mismatches = sum(e != g for e, g in zip(expected, got))
    assert mismatches == 0
    # every node gets a share
    assert set(got) == {str(n) for n in nodes}


def test_carbon_ring_collisions_resolved_like_carbon():
    # 12 nodes x 400 replicas = 4800 entries on a 65536 ring: ~170 collisions
    nodes = [("host%02d" % i, "x") for i in range(12)]
    carbon = ConsistentHashRing(nodes, replica_count=400)
    ours = CarbonHashRing([str(n) for n in nodes], 400)
    raw = [carbon_position("%s:%d" % (str(n), i)) for n in nodes for i in range(400)]
    assert len(set(raw)) < len(raw)  # the case under test really happens
    assert ours.positions == [p for p, _ in carbon.ring]
    assert [ours.nodes[o] for o in ours.owners] == [str(n) for _, n in carbon.ring]
    keys = random_keys(20_000, seed=7)
    assert [str(carbon.get_node(k)) for k in keys] == [ours.nodes[ours.node_for(k)] for k in keys]


def test_carbon_ring_order_matters_only_through_collisions():
    nodes = ["('a', None)", "('b', None)"]
    assert CarbonHashRing(nodes, 100).positions == CarbonHashRing(nodes[::-1], 100).positions


def test_carbon_position_is_first_four_md5_hex_digits():
    # md5("foo") = acbd18db...
    assert carbon_position("foo") == 0xACBD


# -- the constant-time ring ----------------------------------------------------------------
def test_constant_ring_is_balanced_and_moves_about_one_nth():
    keys = random_keys(50_000, seed=3)
    before = ConstantHashRing(["n1", "n2", "n3"], 16)
    after = ConstantHashRing(["n1", "n2", "n3", "n4"], 16)
    a, b = before.nodes_for(keys), after.nodes_for(keys)
    counts = collections.Counter(b)
    for node in range(4):
        assert 0.18 < counts[node] / len(keys) < 0.32
    moved = [(x, y) for x, y in zip(a, b) if x != y]
    assert 0.18 < len(moved) / len(keys) < 0.32
    assert all(y == 3 for _, y in moved)  # keys only move to the new node


def test_constant_ring_lookup_is_table_index():
    ring = ConstantHashRing(["a", "b"], 10)
    assert len(ring.table) == 1024
    assert ring.nodes_for(["x.y", "x.z"]) == [ring.node_for("x.y"), ring.node_for("x.z")]


@pytest.mark.parametrize("precision", [0, 25])
def test_bad_precision(precision):
    with pytest.raises(ValueError):
        make_ring(["a"], precision)


# -- the store over real disk stores ---------------------------------------------------------
@pytest.fixture
def rules():
    return AutocreateRules(RULES)


def disk_hash(tmp_path, rules, names=("s0", "s1", "s2"), precision=-100, **kw):
    stores = {n: CachedDiskStore(str(tmp_path / n), rules) for n in names}
    return ConsistentHashMultiStore(stores, precision, **kw), stores


def base_time() -> int:
    t = int(time.time())
    return t - t % 60 - 3600


@pytest.mark.parametrize("precision", [-100, 12])
def test_writes_go_to_owner_only_and_read_back(tmp_path, rules, precision):
    hs, stores = disk_hash(tmp_path, rules, precision=precision)
    try:
        t0 = base_time()
        keys = [f"app.host{i % 7}.metric{i}" for i in range(300)]
        data = {k: Points(np.arange(5) * 60 + t0, np.arange(5) + i) for i, k in enumerate(keys)}
        assert hs.write(data, skip_buffering=True) == {}
        for k in keys:
            owner = hs.owner_name(k)
            for name, s in stores.items():
                found = s.find([k])[k].results
                assert (k in found) == (name == owner), (k, name, owner)
        got = hs.read(keys, t0 - 60, t0 + 600)
        for i, k in enumerate(keys):
            assert got[k][k].datapoints() == [(t0 + 60 * j, float(j + i)) for j in range(5)]
        # patterns fan out and merge
        got = hs.read(["app.host3.*"], t0 - 60, t0 + 600)["app.host3.*"]
        assert sorted(got) == sorted(k for k in keys if k.startswith("app.host3."))
        found = hs.find(["app.*", "app.host1.*", "app.**"])
        assert found["app.*"].results == [f"app.host{i}.*" for i in range(7)]
        assert found["app.**"].results == sorted(keys)
        assert found["app.host1.*"].results == sorted(k for k in keys if k.startswith("app.host1."))
        assert hs.read_all(keys[0]).points.pairs() == [(t0 + 60 * j, float(j)) for j in range(5)]
        # deletes go everywhere
        deleted = hs.delete_series(["app.host2.*"])
        assert deleted["app.host2.*"].disk_series_deleted == len([k for k in keys if ".host2." in k])
        assert hs.find(["app.host2.*"])["app.host2.*"].results == []
    finally:
        hs.close()


def test_update_metadata_routes_by_key(tmp_path, rules):
    hs, stores = disk_hash(tmp_path, rules)
    try:
        md = SeriesMetadata([ArchiveArg(10, 100)], 0.0, 4)
        keys = [f"m.k{i}" for i in range(50)]
        assert hs.update_metadata({k: md for k in keys}) == {}
        for k in keys:
            owner = stores[hs.owner_name(k)]
            assert owner.read_all(k).metadata == md
            for s in stores.values():
                if s is not owner:
                    assert s.read_all(k).error is not None
    finally:
        hs.close()


def test_read_from_all_finds_misplaced_series(tmp_path, rules):
    hs, stores = disk_hash(tmp_path, rules)
    try:
        t0 = base_time()
        key = "misplaced.series"
        wrong = next(n for n in stores if n != hs.owner_name(key))
        stores[wrong].write({key: Points([t0], [42.0])})
        assert hs.read([key], t0 - 60, t0 + 60)[key] == {}
        assert hs.read_all(key).error is not None
        assert hs.set_read_from_all(True) is False
        assert hs.read([key], t0 - 60, t0 + 60)[key][key].datapoints() == [(t0, 42.0)]
        assert hs.read_all(key).points.pairs() == [(t0, 42.0)]
        # finds always merge from all substores
        assert hs.find(["misplaced.*"])["misplaced.*"].results == [key]
        assert hs.set_read_from_all(False) is True
        # a verify run forces it on without touching the switch
        hs.force_read_from_all(True)
        assert hs.read_from_all
        hs.force_read_from_all(False)
        assert not hs.read_from_all
    finally:
        hs.close()


def test_read_merges_copies_on_two_substores(tmp_path, rules):
    hs, stores = disk_hash(tmp_path, rules, read_from_all=True)
    try:
        t0 = base_time()
        key = "split.series"
        a, b = list(stores.values())[:2]
        a.write({key: Points([t0, t0 + 60], [1.0, 2.0])})
        b.write({key: Points([t0 + 120], [3.0])})
        got = hs.read([key], t0 - 60, t0 + 300)[key][key]
        assert got.datapoints() == [(t0, 1.0), (t0 + 60, 2.0), (t0 + 120, 3.0)]
    finally:
        hs.close()


def test_rename_across_owners_moves_the_series(tmp_path, rules):
    hs, stores = disk_hash(tmp_path, rules)
    try:
        t0 = base_time()
        src = "ren.src"
        dst = next(f"ren.dst{i}" for i in range(100) if hs.owner_name(f"ren.dst{i}") != hs.owner_name(src))
        same = next(f"ren.same{i}" for i in range(100) if hs.owner_name(f"ren.same{i}") == hs.owner_name(src))
        hs.write({src: Points([t0, t0 + 60], [1.0, 2.0])}, skip_buffering=True)
        assert hs.rename_series({src: dst}) == {}
        assert hs.find(["ren.*"])["ren.*"].results == [dst]
        assert stores[hs.owner_name(dst)].read_all(dst).points.pairs() == [(t0, 1.0), (t0 + 60, 2.0)]
        # back to a same-owner name: a plain rename on the owner
        hs.write({src: Points([t0 + 120], [3.0])}, skip_buffering=True)
        assert hs.rename_series({src: same}) == {}
        assert stores[hs.owner_name(same)].read_all(same).points.pairs() == [(t0 + 120, 3.0)]
        # into an existing series: refused without merge, merged with it
        hs.write({src: Points([t0 + 180], [4.0])}, skip_buffering=True)
        err = hs.rename_series({src: dst})
        assert "destination exists" in err[src].description
        assert hs.rename_series({src: dst}, merge=True) == {}
        assert hs.read_all(dst).points.pairs() == [(t0, 1.0), (t0 + 60, 2.0), (t0 + 180, 4.0)]
    finally:
        hs.close()


def test_local_only_touches_only_the_local_substore(tmp_path, rules):
    hs, stores = disk_hash(tmp_path, rules, local="s1")
    try:
        t0 = base_time()
        keys = [f"lo.k{i}" for i in range(60)]
        hs.write({k: Points([t0], [1.0]) for k in keys}, local_only=True)
        assert sorted(stores["s1"].find(["lo.*"])["lo.*"].results) == sorted(keys)
        assert stores["s0"].find(["lo.*"])["lo.*"].results == []
        assert stores["s2"].find(["lo.*"])["lo.*"].results == []
        # a local_only read sees the local substore whatever the ring says
        k = next(k for k in keys if hs.owner_name(k) != "s1")
        assert hs.read([k], t0 - 60, t0 + 60, local_only=True)[k][k].datapoints() == [(t0, 1.0)]
        assert hs.read([k], t0 - 60, t0 + 60)[k] == {}
        assert hs.find(["lo.*"], local_only=True)["lo.*"].results == sorted(keys)
    finally:
        hs.close()


def test_config_builds_hash_store(tmp_path):
    node = {"type": "hash", "precision": -50, "stores": {
        "('127.0.0.1', 'a')": {"type": "cached_disk", "directory": "a"},
        "('127.0.0.1', 'b')": {"type": "disk", "directory": "b"},
    }}
    cfg = validate_store_config("store_config", node, str(tmp_path))
    assert cfg["read_from_all"] is False and cfg["local"] == ""
    store = build_store(cfg, AutocreateRules(RULES))
    try:
        assert isinstance(store, ConsistentHashMultiStore)
        assert store.names == ["('127.0.0.1', 'a')", "('127.0.0.1', 'b')"]
        assert store.local_indexes == [0, 1]
        carbon = ConsistentHashRing([("127.0.0.1", "a"), ("127.0.0.1", "b")], replica_count=50)
        for k in random_keys(1000):
            assert store.owner_name(k) == str(carbon.get_node(k))
        # read_from_all is live: a reload applies only a changed value
        assert store.apply_config({"read_from_all": True}) == ["read_from_all"]
        store.set_read_from_all(False)
        assert store.apply_config({"read_from_all": True}) == []
        assert store.read_from_all is False
    finally:
        store.close()


@pytest.mark.parametrize("change,message", [
    ({"precision": 0}, "precision"),
    ({"local": "nope"}, "local substore"),
])
def test_config_errors(tmp_path, change, message):
    node = {"type": "hash", "stores": {"a": {"type": "disk", "directory": "a"}}, **change}
    cfg = validate_store_config("store_config", node, str(tmp_path))
    with pytest.raises(ConfigError, match=message):
        build_store(cfg, AutocreateRules(RULES))
