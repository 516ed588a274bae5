"""DiskStore / CachedDiskStore: every API call over real whisper files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import whisper as pywhisper

from cyclone.series import ArchiveArg, Points, SeriesMetadata
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.disk import CachedDiskStore, DiskStore

from .conftest import now_aligned, pts, values_at


def test_autocreate_writes_exact_file_layout(disk_store):
    t = now_aligned()
    assert disk_store.write({"a.b.c": pts([(t, 1.5), (t + 60, 2.5)])}) == {}
    path = os.path.join(disk_store.directory, "a", "b", "c.wsp")
    info = pywhisper.info(path)
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(60, 1440), (3600, 720)]
    assert info["xFilesFactor"] == 0.5
    assert info["aggregationMethod"] == "average"
    (start, end, step), values = pywhisper.fetch(path, t - 60, t + 120)
    assert step == 60
    assert values[(t - start) // 60] == 1.5
    assert values[(t + 60 - start) // 60] == 2.5


def test_read_back_exact_and_gaps(disk_store):
    t = now_aligned()
    disk_store.write({"x.y": pts([(t, 1.0), (t + 120, -3.25)])})
    result = disk_store.read(["x.y"], t - 60, t + 180)["x.y"]["x.y"]
    assert result.error is None and result.step == 60
    assert values_at(result, [t, t + 60, t + 120]) == [1.0, None, -3.25]


def test_mixed_batch_errors_are_per_key(tmp_path):
    from cyclone.store.autocreate import AutocreateRules

    store = DiskStore(str(tmp_path / "d"), AutocreateRules([["ok.**", "60:1d", 0, "sum"]]))
    t = now_aligned()
    errors = store.write({
        "ok.good": pts([(t, 1.0)]),
        "ok..bad": pts([(t, 1.0)]),
        "other.norule": pts([(t, 1.0)]),
        "../escape": pts([(t, 1.0)]),
    })
    assert set(errors) == {"ok..bad", "other.norule", "../escape"}
    assert "no autocreate rule" in errors["other.norule"].description
    assert "empty component" in errors["ok..bad"].description or ".." in errors["ok..bad"].description
    assert store.read(["ok.good"], t - 60, t + 60)["ok.good"]["ok.good"].values.tolist().count(1.0) == 1
    assert not os.path.exists(tmp_path / "escape.wsp")
    assert store.stats()["write_errors"] == 3


def test_nan_deletes_a_point_and_duplicates_last_wins(disk_store):
    t = now_aligned()
    disk_store.write({"k": pts([(t, 1.0), (t + 60, 2.0), (t + 60, 5.0)])})
    r = disk_store.read(["k"], t - 60, t + 120)["k"]["k"]
    assert values_at(r, [t, t + 60]) == [1.0, 5.0]
    disk_store.write({"k": pts([(t, float("nan"))])})
    r = disk_store.read(["k"], t - 60, t + 120)["k"]["k"]
    assert values_at(r, [t, t + 60]) == [None, 5.0]


def test_find_directories_leaves_and_globstar(disk_store):
    t = now_aligned()
    for key in ["a.b.c", "a.b.d", "a.e", "a.f.g.h", "z"]:
        disk_store.write({key: pts([(t, 1.0)])})
    found = disk_store.find(["a.*", "a.b.*", "*", "a.**", "a.{b,f}.*", "nothing.*"])
    assert found["a.*"].results == ["a.b.*", "a.e", "a.f.*"]
    assert found["a.b.*"].results == ["a.b.c", "a.b.d"]
    assert found["*"].results == ["a.*", "z"]
    assert found["a.**"].results == ["a.b.c", "a.b.d", "a.e", "a.f.g.h"]
    assert found["a.{b,f}.*"].results == ["a.b.c", "a.b.d", "a.f.g.*"]
    assert found["nothing.*"].results == []
    assert disk_store.find(["a.[b"])["a.[b"].error is not None


def test_delete_key_pattern_and_subtree(disk_store):
    t = now_aligned()
    for key in ["d.x.1", "d.x.2", "d.y.1", "d.z"]:
        disk_store.write({key: pts([(t, 1.0)])})
    res = disk_store.delete_series(["d.x.1", "d.y.*"])
    assert res["d.x.1"].disk_series_deleted == 1
    assert res["d.y.*"].disk_series_deleted == 1
    assert not os.path.exists(os.path.join(disk_store.directory, "d", "y"))  # empty dir removed
    assert disk_store.find(["d.*"])["d.*"].results == ["d.x.*", "d.z"]
    res = disk_store.delete_series(["d.**"])
    assert res["d.**"].disk_series_deleted == 2
    assert disk_store.find(["*"])["*"].results == []
    assert disk_store.delete_series(["**"])["**"].error is not None


def test_rename_with_and_without_merge(disk_store):
    t = now_aligned()
    disk_store.write({"r.src": pts([(t, 1.0), (t + 60, 2.0)]), "r.dst": pts([(t + 120, 3.0)])})
    errors = disk_store.rename_series({"r.src": "r.dst"})
    assert "destination exists" in errors["r.src"].description
    assert disk_store.rename_series({"r.src": "r.dst"}, merge=True) == {}
    r = disk_store.read(["r.dst"], t - 60, t + 180)["r.dst"]["r.dst"]
    assert values_at(r, [t, t + 60, t + 120]) == [1.0, 2.0, 3.0]
    assert disk_store.find(["r.*"])["r.*"].results == ["r.dst"]
    assert disk_store.rename_series({"r.dst": "q.new.name"}) == {}
    r = disk_store.read(["q.new.name"], t - 60, t + 180)["q.new.name"]["q.new.name"]
    assert values_at(r, [t, t + 60, t + 120]) == [1.0, 2.0, 3.0]
    assert disk_store.find(["*"])["*"].results == ["q.*"]
    assert "does not exist" in disk_store.rename_series({"nope": "x"})["nope"].description


def test_update_metadata_modes(disk_store):
    t = now_aligned()
    md1 = SeriesMetadata([ArchiveArg(60, 100)], 0.0, 2)
    md2 = SeriesMetadata([ArchiveArg(60, 200), ArchiveArg(600, 100)], 0.0, 4)
    assert "does not exist" in disk_store.update_metadata({"m": md1}, create_new=False)["m"].description
    assert disk_store.update_metadata({"m": md1}) == {}
    disk_store.write({"m": pts([(t, 7.0)])})
    path = os.path.join(disk_store.directory, "m.wsp")
    # skip_existing: unchanged
    assert disk_store.update_metadata({"m": md2}, skip_existing=True) == {}
    assert pywhisper.info(path)["aggregationMethod"] == "sum"
    # resample: new layout, data kept
    assert disk_store.update_metadata({"m": md2}) == {}
    info = pywhisper.info(path)
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(60, 200), (600, 100)]
    assert info["aggregationMethod"] == "max"
    r = disk_store.read(["m"], t - 60, t + 60)["m"]["m"]
    assert values_at(r, [t]) == [7.0]
    # truncate: new layout, data gone
    assert disk_store.update_metadata({"m": md1}, truncate_existing=True) == {}
    r = disk_store.read(["m"], t - 60, t + 60)["m"]["m"]
    assert values_at(r, [t]) == [None]
    bad = SeriesMetadata([ArchiveArg(60, 100), ArchiveArg(60, 200)], 0.0, 1)
    assert disk_store.update_metadata({"bad": bad})["bad"].description


def test_read_all_returns_metadata_and_points(disk_store):
    t = now_aligned()
    disk_store.write({"ra": pts([(t, 1.0), (t + 60, 3.0)])})
    result = disk_store.read_all("ra")
    assert result.error is None
    assert result.metadata.archive_args == [ArchiveArg(60, 1440), ArchiveArg(3600, 720)]
    assert result.metadata.agg_method == 1
    pairs = dict(result.points.pairs())
    assert pairs[t] == 1.0 and pairs[t + 60] == 3.0
    assert "does not exist" in disk_store.read_all("nope").error.description


def test_corrupt_file_is_an_error_for_that_key_only(disk_store):
    t = now_aligned()
    disk_store.write({"good": pts([(t, 1.0)]), "bad": pts([(t, 2.0)])})
    disk_store.close()
    path = os.path.join(disk_store.directory, "bad.wsp")
    with open(path, "r+b") as f:
        f.truncate(30)
    store = type(disk_store)(disk_store.directory, disk_store.autocreate)
    result = store.read(["good", "bad"], t - 60, t + 60)
    assert values_at(result["good"]["good"], [t]) == [1.0]
    assert "bad.wsp" in result["bad"]["bad"].error.description
    errors = store.write({"bad": pts([(t, 3.0)]), "good": pts([(t + 60, 4.0)])})
    assert list(errors) == ["bad"]
    store.close()


def test_fd_cache_bounded_and_evicted_fds_closed(disk_store):
    t = now_aligned()
    for i in range(30):
        disk_store.write({f"fd.k{i}": pts([(t, float(i))])})
    assert disk_store.stats()["open_files"] <= 8
    r = disk_store.read(["fd.*"], t - 60, t + 60)["fd.*"]
    assert [values_at(r[f"fd.k{i}"], [t])[0] for i in range(30)] == [float(i) for i in range(30)]
    disk_store.open_file_cache_size = 2
    disk_store.write({"fd.k0": pts([(t + 60, 1.0)])})
    assert disk_store.stats()["open_files"] <= 2


def test_cached_disk_sees_its_own_changes(tmp_path, rules):
    from cyclone.store.disk import CachedDiskStore

    store = CachedDiskStore(str(tmp_path / "c"), rules)
    t = now_aligned()
    assert store.find(["c.*"])["c.*"].results == []
    store.write({"c.one": pts([(t, 1.0)])})
    assert store.find(["c.*"])["c.*"].results == ["c.one"]
    store.write({"c.two.deep": pts([(t, 1.0)])})
    assert store.find(["c.*"])["c.*"].results == ["c.one", "c.two.*"]
    store.delete_series(["c.one"])
    assert store.find(["c.*"])["c.*"].results == ["c.two.*"]
    assert store.stats()["directory_cache_hits"] > 0
    store.close()


def test_header_cache_serves_reopens_and_file_limit_0_keeps_none(tmp_path, rules):
    from cyclone.store.disk import CachedDiskStore

    t = now_aligned()
    for limit, cached, hits in ((1000, 3, 2), (0, 0, 0)):
        store = CachedDiskStore(str(tmp_path / f"h{limit}"), rules, open_file_cache_size=1, file_limit=limit)
        for i in range(3):  # one descriptor: every write after the first reopens a closed file
            store.write({f"h.k{i}": pts([(t, float(i))])})
        store.write({"h.k0": pts([(t + 60, 10.0)]), "h.k1": pts([(t + 60, 11.0)])})
        stats = store.stats()
        assert stats["cached_headers"] == cached and stats.get("header_cache_hits", 0) == hits
        r = store.read(["h.*"], t - 60, t + 120)["h.*"]
        assert [values_at(r[f"h.k{i}"], [t, t + 60]) for i in range(3)] == \
            [[0.0, 10.0], [1.0, 11.0], [2.0, None]]
        store.file_limit = 0  # live: drops what is cached
        assert store.stats()["cached_headers"] == 0
        store.close()


def _series_of_a_batch(t: int) -> dict[str, list[tuple[int, float]]]:
    """Enough keys for the parallel open path (OPEN_BATCH_MIN), of every kind a write meets."""
    from cyclone.store.disk import OPEN_BATCH_MIN

    out = {f"batch.one.k{i}": [(t, float(i))] for i in range(OPEN_BATCH_MIN)}
    out["batch.run"] = [(t - 60 * i, 0.5 * i) for i in range(40)][::-1]  # propagates to the hour archive
    out["batch.gap"] = [(t - 600, 1.0), (t, 2.0)]  # not one run: header first, then update
    out["batch.dup"] = [(t, 1.0), (t, 9.0)]  # the last value for a timestamp wins
    out["batch.nan"] = [(t, float("nan"))]  # a delete on a new series: an empty series
    return out


def test_a_batch_of_new_series_gives_the_bytes_of_whisper_create_and_update_many(disk_store, tmp_path):
    t = now_aligned()
    series = _series_of_a_batch(t)
    assert disk_store.write({k: pts(v) for k, v in series.items()}) == {}
    assert disk_store.stats()["series_created"] == len(series)
    for key, pairs in series.items():
        ours = os.path.join(disk_store.directory, *key.split(".")) + ".wsp"
        theirs = str(tmp_path / f"{key}.wsp")
        pywhisper.create(theirs, [(60, 1440), (3600, 720)], 0.5, "average")
        good = [(ts, v) for ts, v in dict(pairs).items() if v == v]
        if good:
            pywhisper.update_many(theirs, good)
        with open(ours, "rb") as a, open(theirs, "rb") as b:
            assert a.read() == b.read(), key
    r = disk_store.read(["batch.*"], t - 3600, t + 60)["batch.*"]
    assert values_at(r["batch.dup"], [t]) == [9.0] and values_at(r["batch.gap"], [t - 600, t]) == [1.0, 2.0]


@pytest.mark.parametrize("cls", [DiskStore, CachedDiskStore])
def test_a_batch_mixing_new_open_closed_bad_and_corrupt_series(tmp_path, cls):
    rules = AutocreateRules([["mix.**", "60:1d,1h:30d", 0.5, "average"]])
    disk_store = cls(str(tmp_path / "data"), rules, open_file_cache_size=8)
    t = now_aligned()
    disk_store.write({"mix.old.a": pts([(t - 60, 1.0)]), "mix.old.b": pts([(t - 60, 2.0)])})
    corrupt = os.path.join(disk_store.directory, "mix", "corrupt.wsp")
    with open(corrupt, "wb") as f:
        f.write(b"not a whisper file at all")
    batch = {f"mix.new.k{i}": pts([(t, float(i))]) for i in range(40)}  # more than the fd cache (8)
    batch.update({"mix.old.a": pts([(t, 10.0)]), "mix.old.b": pts([(t, 20.0)]),
                  "nocreate.x": pts([(t, 1.0)]), "mix..bad": pts([(t, 1.0)]), "mix.corrupt": pts([(t, 1.0)])})
    errors = disk_store.write(batch)
    assert set(errors) == {"nocreate.x", "mix..bad", "mix.corrupt"}
    assert "no autocreate rule" in errors["nocreate.x"].description
    assert "corrupt" in errors["mix.corrupt"].description.lower()
    r = disk_store.read(["mix.new.*", "mix.old.*"], t - 120, t + 60)
    assert [values_at(r["mix.new.*"][f"mix.new.k{i}"], [t])[0] for i in range(40)] == [float(i) for i in range(40)]
    assert values_at(r["mix.old.*"]["mix.old.a"], [t - 60, t]) == [1.0, 10.0]
    assert values_at(r["mix.old.*"]["mix.old.b"], [t - 60, t]) == [2.0, 20.0]
    assert not os.path.exists(os.path.join(disk_store.directory, "nocreate"))
    assert disk_store.stats()["open_files"] <= 8
    disk_store.close()


@pytest.mark.parametrize("cls", [DiskStore, CachedDiskStore])
def test_a_batch_of_series_existing_before_a_restart_and_an_empty_file(tmp_path, cls):
    # a new store knows no headers, so the batch open tries an exclusive create
    # first: for files that exist it must fall back to opening them
    rules = AutocreateRules([["re.**", "60:1d", 0.5, "average"]])
    t = now_aligned()
    first = cls(str(tmp_path / "data"), rules)
    assert first.write({f"re.k{i}": pts([(t - 60, float(i))]) for i in range(30)}) == {}
    first.close()
    empty = os.path.join(str(tmp_path / "data"), "re", "empty.wsp")
    open(empty, "wb").close()  # a crash between create and header write
    store = cls(str(tmp_path / "data"), rules)
    batch = {f"re.k{i}": pts([(t, 100.0 + i)]) for i in range(30)}
    batch["re.empty"] = pts([(t, 5.0)])
    assert store.write(batch) == {}
    r = store.read(["re.*"], t - 120, t + 60)["re.*"]
    assert [values_at(r[f"re.k{i}"], [t - 60, t]) for i in range(30)] == [[float(i), 100.0 + i] for i in range(30)]
    assert values_at(r["re.empty"], [t]) == [5.0]
    assert store.stats()["series_created"] == 1
    with open(os.path.join(str(tmp_path / "data"), "re", "k0.wsp"), "rb") as f:
        assert len(f.read()) == 16 + 12 + 1440 * 12
    store.close()


def test_a_write_of_more_new_series_than_three_open_rounds(disk_store):
    from cyclone.store.disk import OPEN_ROUND  # rounds: OPEN_FIRST_ROUND, then OPEN_ROUND each

    t = now_aligned()
    n = 3 * OPEN_ROUND + 7
    batch = {f"rounds.d{i % 5}.k{i}": pts([(t, float(i))]) for i in range(n)}
    assert disk_store.write(batch) == {}
    assert disk_store.stats()["series_created"] == n and disk_store.stats()["open_files"] <= 8
    r = disk_store.read(["rounds.*.*"], t - 60, t + 60)["rounds.*.*"]
    assert {k: values_at(v, [t])[0] for k, v in r.items()} == {k: p.values[0] for k, p in batch.items()}


def test_open_jobs_split_by_directory_between_threads():
    from cyclone.store.disk import _OpenJob, _split_by_directory

    jobs = [_OpenJob(None, f"/data/{d}/k{i}.wsp", None, f"{d}.k{i}", 1, False)
            for d, n in (("a", 5), ("b", 3), ("c", 2)) for i in range(n)]
    parts = _split_by_directory(jobs, 2)
    assert [sorted({os.path.dirname(j.path) for j in part}) for part in parts] == [["/data/a"], ["/data/b", "/data/c"]]
    assert sorted(j.key for part in parts for j in part) == sorted(j.key for j in jobs)
    one_dir = jobs[:5]
    assert _split_by_directory(one_dir, 2) == [one_dir[0::2], one_dir[1::2]]


def test_concurrent_batches_creating_the_same_series_lose_nothing(disk_store):
    import threading

    t = now_aligned()
    keys = [f"race.k{i}" for i in range(64)]
    barrier = threading.Barrier(4)
    errors = []

    def writer(j: int) -> None:
        barrier.wait()  # four writers create the same new series at once, each its own timestamp
        errors.append(disk_store.write({k: pts([(t - 60 * j, float(j))]) for k in keys}))

    threads = [threading.Thread(target=writer, args=(j,)) for j in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert errors == [{}, {}, {}, {}]
    r = disk_store.read(["race.*"], t - 300, t + 60)["race.*"]
    for k in keys:
        assert values_at(r[k], [t - 180, t - 120, t - 60, t]) == [3.0, 2.0, 1.0, 0.0], k


def test_plain_disk_store_sees_files_made_by_other_processes(tmp_path, rules):
    store = DiskStore(str(tmp_path / "p"), rules)
    t = now_aligned()
    os.makedirs(tmp_path / "p" / "ext")
    pywhisper.create(str(tmp_path / "p" / "ext" / "s.wsp"), [(60, 100)])
    pywhisper.update(str(tmp_path / "p" / "ext" / "s.wsp"), 4.0, t)
    assert store.find(["ext.*"])["ext.*"].results == ["ext.s"]
    r = store.read(["ext.s"], t - 60, t + 60)["ext.s"]["ext.s"]
    assert values_at(r, [t]) == [4.0]
    store.close()


def test_listing_scanned_while_a_series_is_created_is_not_cached(tmp_path, rules):
    """A find racing a create may miss the new series once, but never caches the miss."""
    from cyclone.store.disk import CachedDiskStore

    class RacyStore(CachedDiskStore):
        during_scan = None

        def _scan_dir(self, relpath):
            listing = super()._scan_dir(relpath)
            hook = self.during_scan if relpath == "race" else None
            if hook is not None:
                self.during_scan = None
                hook()  # another thread creates a series after the scan, before caching
            return listing

    store = RacyStore(str(tmp_path / "r"), rules)
    t = now_aligned()
    store.write({"race.x": pts([(t, 1.0)])})
    store.during_scan = lambda: store.write({"race.y": pts([(t, 2.0)])})
    assert store.find(["race.*"])["race.*"].results == ["race.x"]
    assert store.find(["race.*"])["race.*"].results == ["race.x", "race.y"]
    store.close()


def test_empty_file_left_by_a_crash_gets_a_header_on_write(disk_store):
    """A zero-byte series file (a crash between create and header write) is
    initialised by the next write instead of failing as corrupt forever."""
    t = now_aligned()
    path = os.path.join(disk_store.directory, "crash", "left.wsp")
    os.makedirs(os.path.dirname(path))
    open(path, "wb").close()
    assert disk_store.write({"crash.left": pts([(t, 7.0)])}) == {}
    info = pywhisper.info(path)
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(60, 1440), (3600, 720)]
    assert os.path.getsize(path) == 16 + 2 * 12 + (1440 + 720) * 12
    (start, _end, step), values = pywhisper.fetch(path, t - 60, t + 60)
    assert values[(t - start) // step] == 7.0
    assert disk_store.stats()["series_created"] == 1


def test_small_batches_match_whisper_byte_for_byte(disk_store, tmp_path):
    """Writes of a few points (the Python fast path) give the same file as
    whisper.update_many, including propagation to the hour archive."""
    t = now_aligned(3600) - 3 * 3600
    batches = [
        [(t + 60 * i, float(i)) for i in range(10)],                 # one contiguous run
        [(t + 3600 + 60 * i, i * 0.5) for i in (0, 0, 1, 5)],        # duplicate + gap
        [(t + 7200 + 30, 1.0), (t + 7200 + 45, 2.0), (t + 7260, 3.0)],  # two in one interval
        [(t + 600, 99.0)],                                           # single, overwrites
    ]
    ref = str(tmp_path / "ref.wsp")
    pywhisper.create(ref, [(60, 1440), (3600, 720)], xFilesFactor=0.5, aggregationMethod="average")
    for batch in batches:
        disk_store.write({"small.fast": pts(batch)})
        pywhisper.update_many(ref, batch)
    mine = os.path.join(disk_store.directory, "small", "fast.wsp")
    with open(mine, "rb") as a, open(ref, "rb") as b:
        assert a.read() == b.read()
