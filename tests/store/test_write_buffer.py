"""WriteBufferStore over a real CachedDiskStore: buffering, flushing, concurrency."""

from __future__ import annotations

import os
import random
import threading
import time

import numpy as np

from cyclone.series import ArchiveArg, Points, SeriesMetadata
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.disk import CachedDiskStore
from cyclone.store.write_buffer import WriteBufferStore, _Generation, select_points

from .conftest import now_aligned, pts, values_at


def make(tmp_path, rules, **kw):
    disk = CachedDiskStore(str(tmp_path / "data"), rules)
    return WriteBufferStore(disk, rules, **kw), disk


def test_write_flush_read_exact(tmp_path, rules):
    wb, disk = make(tmp_path, rules, batch_size=3)
    t = now_aligned()
    batch = {f"s.k{i}": pts([(t, float(i)), (t + 60, i + 0.5)]) for i in range(10)}
    assert wb.write(batch) == {}
    assert wb.flush(timeout=30)
    r = disk.read(["s.*"], t - 60, t + 120)["s.*"]
    assert len(r) == 10
    for i in range(10):
        assert values_at(r[f"s.k{i}"], [t, t + 60]) == [float(i), i + 0.5]
    stats = wb.stats()
    assert stats["points_flushed"] == 20 and stats["queue_points"] == 0
    wb.close()


def test_reads_and_finds_see_buffered_points_before_disk(tmp_path, rules):
    # one write batch every 4 s: the first goes at once, the second waits
    wb, disk = make(tmp_path, rules, max_write_batches_per_second=0.25)
    t = now_aligned()
    wb.write({"first.key": pts([(t, 1.0)])})
    deadline = time.time() + 10
    while wb.stats().get("points_flushed", 0) < 1 and time.time() < deadline:
        time.sleep(0.02)
    wb.write({"buf.new.key": pts([(t, 2.0), (t + 60, 3.0)])})
    time.sleep(0.2)
    assert not os.path.exists(os.path.join(disk.directory, "buf"))
    assert wb.find(["buf.*", "buf.new.*", "buf.**"]) and \
        wb.find(["buf.*"])["buf.*"].results == ["buf.new.*"]
    assert wb.find(["buf.new.*"])["buf.new.*"].results == ["buf.new.key"]
    assert wb.find(["buf.**"])["buf.**"].results == ["buf.new.key"]
    r = wb.read(["buf.new.*"], t - 60, t + 120)["buf.new.*"]["buf.new.key"]
    assert r.step == 60 and values_at(r, [t, t + 60]) == [2.0, 3.0]
    # buffered points overlay disk values of an existing series
    wb.write({"first.key": pts([(t + 60, 9.0)])})
    r = wb.read(["first.key"], t - 60, t + 120)["first.key"]["first.key"]
    assert values_at(r, [t, t + 60]) == [1.0, 9.0]
    wb.max_write_batches_per_second = 0
    assert wb.flush(timeout=30)
    r = disk.read(["buf.new.key"], t - 60, t + 120)["buf.new.key"]["buf.new.key"]
    assert values_at(r, [t, t + 60]) == [2.0, 3.0]
    wb.close()


def test_find_sees_a_series_whose_flush_lands_during_the_find(tmp_path, rules):
    # the disk listing misses the series, then the flush moves it out of the buffer
    # before the buffer is looked at: it must still be found
    class FlushAfterListing(CachedDiskStore):
        def find(self, patterns_, local_only=False):
            results = super().find(patterns_, local_only)
            if patterns_ == ["race.*"]:
                assert results["race.*"].results == []   # the race is really exercised
                assert wb.flush(timeout=30)
            return results

    disk = FlushAfterListing(str(tmp_path / "data"), rules)
    # one write batch every 4 s: the first goes at once, the race.a batch waits
    wb = WriteBufferStore(disk, rules, max_write_batches_per_second=0.25)
    t = now_aligned()
    wb.write({"first.key": pts([(t, 1.0)])})
    assert wb.flush(timeout=30)
    wb.write({"race.a": pts([(t, 1.0)])})
    assert wb.find(["race.*"])["race.*"].results == ["race.a"]
    assert os.path.exists(os.path.join(disk.directory, "race", "a.wsp"))
    wb.close()


def test_a_read_snapshot_is_unchanged_by_later_appends_compaction_and_requeues():
    # a reader selects from chunks copied under the lock, then works without it
    gen = _Generation()
    gen.append({"a": pts([(60, 1.0)]), "b": pts([(60, 2.0)])})
    snap, wanted = gen.chunks(), gen.ids_for(["a", "b"])
    gen.append({"a": pts([(120, 3.0)])}, front=True)  # a requeue goes in front
    for i in range(70):  # past 64 chunks the generation compacts
        gen.append({"a": pts([(180 + 60 * i, 4.0)])})
    got = select_points(snap, wanted)
    assert {k: p.pairs() for k, p in got.items()} == {"a": [(60, 1.0)], "b": [(60, 2.0)]}
    now = select_points(gen.chunks(), gen.ids_for(["a"]))["a"]
    assert now.pairs()[:3] == [(120, 3.0), (60, 1.0), (180, 4.0)] and len(now) == 72


def test_append_keeps_its_own_copy_of_the_points():
    gen = _Generation()
    p = pts([(60, 1.0)])
    gen.append({"a": p})
    p.timestamps[0], p.values[0] = 120, 9.0  # the caller reuses its arrays
    assert gen.series_points(["a"])["a"].pairs() == [(60, 1.0)]


def test_append_columns_keeps_its_own_copy_and_input_order():
    gen = _Generation()
    ts = np.array([60, 60, 120, 120, 180], dtype=np.int64)
    vals = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert gen.append_columns(["a", "b", "a", "b", "a"], ts, vals) == 5
    ts[:] = 0  # the caller reuses its arrays
    vals[:] = 0.0
    gen.append_columns(["b", "c"], np.array([60, 60], dtype=np.int64), np.array([9.0, 7.0]))
    got = {k: p.pairs() for k, p in gen.series_points(["a", "b", "c"]).items()}
    assert got == {"a": [(60, 1.0), (120, 3.0), (180, 5.0)],
                   "b": [(60, 2.0), (120, 4.0), (60, 9.0)],
                   "c": [(60, 7.0)]}
    assert gen.keys == ["a", "b", "c"] and gen.n_points == 7


def test_write_columns_lands_exactly_and_refuses_rows_of_bad_keys(tmp_path):
    rules = AutocreateRules([["ok.**", "60:1d", 0, "average"]])
    wb, disk = make(tmp_path, rules, batch_size=2)
    t = now_aligned()
    keys = ["ok.a", "no.rule", "ok.b", "bad..key", "ok.a", "ok.b", "ok.a"]
    ts = np.array([t, t, t, t, t + 60, t + 60, t + 60], dtype=np.int64)  # ok.a: t+60 twice, last wins
    vals = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    errors = wb.write_columns(keys, ts, vals)
    assert set(errors) == {"no.rule", "bad..key"}
    assert "invalid key" in errors["bad..key"].description
    assert wb.stats()["writes_refused"] == 2 and wb.stats()["points_buffered"] == 5
    # the buffer answers reads before the flush, the disk after it, with the same values
    r = wb.read(["ok.*"], t - 60, t + 120)["ok.*"]
    assert values_at(r["ok.a"], [t, t + 60]) == [1.0, 7.0] and values_at(r["ok.b"], [t, t + 60]) == [3.0, 6.0]
    assert wb.flush(timeout=30)
    r = disk.read(["ok.*", "no.*"], t - 60, t + 120)
    assert values_at(r["ok.*"]["ok.a"], [t, t + 60]) == [1.0, 7.0]
    assert values_at(r["ok.*"]["ok.b"], [t, t + 60]) == [3.0, 6.0]
    assert r["no.*"] == {}
    wb.close()


def test_store_write_columns_groups_for_stores_without_columns(tmp_path, rules):
    disk = CachedDiskStore(str(tmp_path / "data"), rules)
    t = now_aligned()
    errors = disk.write_columns(["x.a", "x.b", "x.a"], np.array([t, t, t + 60], dtype=np.int64),
                                np.array([1.0, 2.0, 3.0]))
    assert errors == {}
    r = disk.read(["x.*"], t - 60, t + 120)["x.*"]
    assert values_at(r["x.a"], [t, t + 60]) == [1.0, 3.0] and values_at(r["x.b"], [t]) == [2.0]
    disk.close()


def test_refuses_keys_without_rule_and_invalid_keys(tmp_path):
    rules = AutocreateRules([["ok.**", "60:1d", 0, "average"]])
    wb, disk = make(tmp_path, rules)
    t = now_aligned()
    errors = wb.write({"ok.a": pts([(t, 1.0)]), "no.rule": pts([(t, 1.0)]), "bad..key": pts([(t, 1.0)])})
    assert set(errors) == {"no.rule", "bad..key"}
    assert wb.stats()["writes_refused"] == 2
    wb.close()


def test_delete_removes_buffered_and_disk_series(tmp_path, rules):
    wb, disk = make(tmp_path, rules, max_write_batches_per_second=0.25)
    t = now_aligned()
    wb.write({"del.a": pts([(t, 1.0)])})
    assert wb.flush(timeout=30)
    wb.write({"del.b": pts([(t, 1.0)]), "del.a": pts([(t + 60, 2.0)])})
    res = wb.delete_series(["del.*"])
    assert res["del.*"].disk_series_deleted == 1
    assert res["del.*"].buffer_series_deleted == 2
    wb.max_write_batches_per_second = 0
    assert wb.flush(timeout=30)
    assert wb.find(["del.*"])["del.*"].results == []
    assert not os.path.exists(os.path.join(disk.directory, "del"))
    wb.close()


def test_buffered_update_metadata_then_write(tmp_path, rules):
    wb, disk = make(tmp_path, rules)
    t = now_aligned()
    md = SeriesMetadata([ArchiveArg(60, 100)], 0.0, 2)
    assert wb.update_metadata({"meta.one": md}) == {}
    wb.write({"meta.one": pts([(t, 4.0)])})
    assert wb.find(["meta.*"])["meta.*"].results == ["meta.one"]
    assert wb.flush(timeout=30)
    ra = disk.read_all("meta.one")
    assert ra.metadata.archive_args == [ArchiveArg(60, 100)] and ra.metadata.agg_method == 2
    assert dict(ra.points.pairs())[t] == 4.0
    wb.close()


def test_rename_flushes_buffered_points_first(tmp_path, rules):
    wb, disk = make(tmp_path, rules)
    t = now_aligned()
    wb.write({"mv.src": pts([(t, 1.0)])})
    assert wb.rename_series({"mv.src": "mv.dst"}) == {}
    r = wb.read(["mv.dst"], t - 60, t + 60)["mv.dst"]["mv.dst"]
    assert values_at(r, [t]) == [1.0]
    assert wb.find(["mv.*"])["mv.*"].results == ["mv.dst"]
    wb.close()


def test_recoverable_errors_are_retried_until_the_disk_recovers(tmp_path, rules):
    wb, disk = make(tmp_path, rules)
    wb.retry_delay = 0.1
    blocker = tmp_path / "data" / "blocked"
    blocker.write_text("a file where a directory should be")
    t = now_aligned()
    wb.write({"blocked.series": pts([(t, 6.0)])})
    deadline = time.time() + 10
    while wb.stats().get("points_requeued", 0) < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert wb.stats()["points_requeued"] >= 1
    blocker.unlink()
    assert wb.flush(timeout=30)
    r = disk.read(["blocked.series"], t - 60, t + 60)["blocked.series"]["blocked.series"]
    assert values_at(r, [t]) == [6.0]
    wb.close()


def test_concurrent_writers_and_readers(tmp_path, rules):
    """4 writers and 2 readers for 5 s: readers only ever see written values; all land."""
    wb, disk = make(tmp_path, rules, batch_size=50)
    t0 = now_aligned() - 1300 * 60  # the read window stays in the 1-minute archive
    keys = [f"conc.w{w}.k{i}" for w in range(4) for i in range(25)]

    def value(key: str, ts: int) -> float:
        return float(hash((key, ts)) % 1000003)

    stop = threading.Event()
    written: dict[str, set[int]] = {k: set() for k in keys}
    bad: list[str] = []

    def writer(w: int) -> None:
        rnd = random.Random(w)
        mine = [k for k in keys if k.startswith(f"conc.w{w}.")]
        step = 0
        while not stop.is_set() and step < 1250:
            batch = {}
            for k in rnd.sample(mine, 10):
                ts = t0 + step * 60
                batch[k] = pts([(ts, value(k, ts))])
                written[k].add(ts)
            step += 1
            assert wb.write(batch) == {}

    def reader() -> None:
        while not stop.is_set():
            res = wb.read(["conc.*.*"], t0 - 60, t0 + 1260 * 60)["conc.*.*"]
            for key, r in res.items():
                if r.error is not None or not r.step:
                    continue
                idx = np.flatnonzero(~np.isnan(r.values))
                for i in idx[:50]:
                    ts = r.start_time + int(i) * r.step
                    if r.values[i] != value(key, ts):
                        bad.append(f"{key}@{ts}={r.values[i]}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    time.sleep(5)
    stop.set()
    for th in threads:
        th.join(timeout=60)
    assert not bad, bad[:5]
    assert wb.flush(timeout=60)
    res = disk.read(["conc.*.*"], t0 - 60, t0 + 1260 * 60)["conc.*.*"]
    total = 0
    for key, tss in written.items():
        r = res[key]
        got = {r.start_time + int(i) * r.step: float(r.values[i])
               for i in np.flatnonzero(~np.isnan(r.values))}
        assert got == {ts: value(key, ts) for ts in tss}, key
        total += len(tss)
    assert total > 1000
    wb.close()


def test_memory_bound_reports_over_limit(tmp_path, rules):
    wb, disk = make(tmp_path, rules, max_write_batches_per_second=0.25, max_buffered_points=100)
    t = now_aligned()
    wb.write({"mem.first": pts([(t, 1.0)])})
    time.sleep(0.2)
    wb.write({f"mem.k{i}": Points(np.arange(t, t + 600, 60), np.ones(10)) for i in range(20)})
    assert wb.is_over_limit()
    wb.max_write_batches_per_second = 0
    assert wb.flush(timeout=30)
    assert not wb.is_over_limit()
    wb.close()
