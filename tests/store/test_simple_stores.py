"""multi, read_only, empty stores over real disk stores."""

from __future__ import annotations

from cyclone.store.disk import CachedDiskStore
from cyclone.store.empty import EmptyStore
from cyclone.store.multi import MultiStore
from cyclone.store.read_only import ReadOnlyStore

from .conftest import now_aligned, pts, values_at


def test_multi_replicates_and_merges(tmp_path, rules):
    a = CachedDiskStore(str(tmp_path / "a"), rules)
    b = CachedDiskStore(str(tmp_path / "b"), rules)
    multi = MultiStore({"a": a, "b": b})
    t = now_aligned()
    assert multi.write({"m.x": pts([(t, 1.0)])}) == {}
    assert values_at(a.read(["m.x"], t - 60, t + 60)["m.x"]["m.x"], [t]) == [1.0]
    assert values_at(b.read(["m.x"], t - 60, t + 60)["m.x"]["m.x"], [t]) == [1.0]
    # a gap in one replica is filled from the other
    a.write({"m.x": pts([(t, float("nan"))])})
    b.write({"m.y": pts([(t + 60, 5.0)])})
    r = multi.read(["m.*"], t - 60, t + 120)["m.*"]
    assert values_at(r["m.x"], [t]) == [1.0]
    assert values_at(r["m.y"], [t + 60]) == [5.0]
    assert multi.find(["m.*"])["m.*"].results == ["m.x", "m.y"]
    res = multi.delete_series(["m.*"])
    assert res["m.*"].disk_series_deleted == 3
    errors = multi.write({"bad..key": pts([(t, 1.0)])})
    assert errors["bad..key"].description.startswith("a: ")
    multi.close()


def test_read_only_refuses_changes_but_reads(tmp_path, rules):
    disk = CachedDiskStore(str(tmp_path / "r"), rules)
    t = now_aligned()
    disk.write({"ro.k": pts([(t, 3.0)])})
    ro = ReadOnlyStore(disk)
    assert ro.write({"ro.k": pts([(t, 4.0)])})["ro.k"].description == "store is read-only"
    assert ro.delete_series(["ro.*"])["ro.*"].error.description == "store is read-only"
    assert ro.rename_series({"ro.k": "ro.j"})["ro.k"].description == "store is read-only"
    assert values_at(ro.read(["ro.k"], t - 60, t + 60)["ro.k"]["ro.k"], [t]) == [3.0]
    assert ro.find(["ro.*"])["ro.*"].results == ["ro.k"]
    assert ro.stats()["refused_changes"] == 3
    ro.close()


def test_empty_store():
    e = EmptyStore()
    assert e.read(["a.*"], 0, 100) == {"a.*": {}}
    assert e.find(["a.*"])["a.*"].results == []
    assert e.write({"a": pts([(1, 1.0)])})["a"].description
    assert e.read_all("a").error is not None


def test_query_store_evaluates_expressions_and_passes_patterns(tmp_path, rules):
    from cyclone.store.query import QueryStore

    disk = CachedDiskStore(str(tmp_path / "q"), rules)
    t = now_aligned()
    disk.write({"q.x": pts([(t, 1.0), (t + 60, 2.0)]), "q.y": pts([(t, 10.0), (t + 60, 20.0)])})
    store = QueryStore(disk)
    res = store.read(["sumSeries(q.*)", "q.*", "scale(q.x, 3)", "nosuch(q.*)"], t - 60, t + 120)
    assert values_at(res["sumSeries(q.*)"]["sumSeries(q.*)"], [t, t + 60]) == [11.0, 22.0]
    assert sorted(res["q.*"]) == ["q.x", "q.y"]
    assert values_at(res["scale(q.x, 3)"]["scale(q.x,3)"], [t, t + 60]) == [3.0, 6.0]
    err = res["nosuch(q.*)"]["nosuch(q.*)"].error
    assert err is not None and "unknown function 'nosuch'" in err.description
    assert store.stats()["expression_errors"] == 1
    store.close()
