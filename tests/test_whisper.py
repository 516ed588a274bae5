"""cyclone.store.whisper: exact bytes and values, fd-level API, deletes, resize, corruption.

(Randomised differential tests against the whisper package are in
test_whisper_compat.py.)
"""

from __future__ import annotations

import math
import os
import struct

import numpy as np
import pytest
import whisper as W

from cyclone.store import whisper as C

T = 999_999_900  # a multiple of 60, 300 and 3600 / 100
NAN = float("nan")


def point(t, v):
    return struct.pack("!Ld", t, v)


def zeros(n):
    return b"\x00" * (12 * n)


def new_file(tmp_path, layout, xff=0.5, agg="average", name="x.wsp"):
    path = str(tmp_path / name)
    C.create(path, list(layout), xff, agg)
    return path


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def archive_bytes(path, index):
    h = C.info(path)["archives"][index]
    return read(path)[h["offset"]: h["offset"] + h["size"]]


class Fd:
    """An fd and its header, as the server holds them."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        self.header = C.read_header(self.fd, path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def arr(*xs, dtype=np.int64):
    return np.array(xs, dtype=dtype)


# --------------------------------------------------------------------------
# header
# --------------------------------------------------------------------------


def test_build_header_exact():
    header, data = C.build_header([(3600, 48), (60, 1440)], 0.5, "average")
    assert data == (struct.pack("!2LfL", 1, 172800, 0.5, 2)
                    + struct.pack("!3L", 40, 60, 1440)
                    + struct.pack("!3L", 40 + 1440 * 12, 3600, 48))
    assert header == C.Header(1, 172800, 0.5, (C.ArchiveInfo(40, 60, 1440),
                                               C.ArchiveInfo(17320, 3600, 48)))
    assert header.file_size == 17320 + 48 * 12
    assert header.archive_list() == [(60, 1440), (3600, 48)]
    assert header.archives[0].retention == 86400
    assert header.archives[1].size == 576
    assert header.info_dict()["archives"][1] == {
        "offset": 17320, "secondsPerPoint": 3600, "points": 48, "retention": 172800, "size": 576}
    # aggregation by id or name; the xff is stored as float32
    h2, d2 = C.build_header([(60, 10)], 0.1, 7)
    assert h2.aggregation_method == 7
    assert h2.x_files_factor == struct.unpack("!f", struct.pack("!f", 0.1))[0] != 0.1
    assert C.build_header([(60, 10)], 0.1, "absmax")[1] == d2


def test_build_header_does_not_mutate_and_validates():
    layout = [(300, 10), (60, 100)]  # the coarser archive must retain longer
    with pytest.raises(C.InvalidConfiguration):
        C.build_header(layout, 0.5, 1)
    assert layout == [(300, 10), (60, 100)]
    assert C.build_header([(300, 10), (60, 10)], 0.5, 1)[0].archive_list() == [(60, 10), (300, 10)]
    for bad_agg in (0, 9, "median", None, True):
        with pytest.raises(C.InvalidAggregationMethod):
            C.build_header([(60, 10)], 0.5, bad_agg)
    for bad_xff in (-0.1, 1.01, NAN, "x"):
        with pytest.raises(C.InvalidXFilesFactor):
            C.build_header([(60, 10)], bad_xff, 1)


def test_create_fd_same_bytes_as_whisper(tmp_path):
    layout = [(10, 8640), (60, 10080), (3600, 8760)]
    W.create(str(tmp_path / "w"), list(layout), 0.3, "max")
    expect = read(str(tmp_path / "w"))
    for sparse in (True, False):
        p = str(tmp_path / ("c%d" % sparse))
        fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            header = C.create_fd(fd, layout, 0.3, 4, sparse=sparse)
            assert C.read_header(fd) == header
        finally:
            os.close(fd)
        assert read(p) == expect
        assert header.file_size == len(expect)


def test_read_header_sees_header_changes(tmp_path):
    p = new_file(tmp_path, [(60, 10), (600, 10)])
    with Fd(p) as f:
        assert f.header.aggregation_method == 1 and f.header.x_files_factor == 0.5
        assert C.setAggregationMethod(p, "sum", 0.25) == "average"
        h = C.read_header(f.fd, p)
        assert (h.aggregation_method, h.x_files_factor) == (2, 0.25)
        assert C.setXFilesFactor(p, 1) == 0.25
        assert C.read_header(f.fd).x_files_factor == 1.0
    assert C.info(p)["aggregationMethod"] == "sum"


# --------------------------------------------------------------------------
# writing: exact bytes and values
# --------------------------------------------------------------------------

LAYOUT = [(60, 5), (300, 4)]  # archive 0 at byte 40, archive 1 at byte 100
NOW = T + 300


def test_update_many_exact_bytes(tmp_path):
    p = new_file(tmp_path, LAYOUT)
    C.update_many(p, [(T + 120, 4.0), (T, 1.0), (T + 60, 2.0)], now=NOW)
    assert archive_bytes(p, 0) == point(T, 1.0) + point(T + 60, 2.0) + point(T + 120, 4.0) + zeros(2)
    # 3 of 5 minutes known >= xff 0.5: average into the 5-minute archive
    assert archive_bytes(p, 1) == point(T, 7.0 / 3) + zeros(3)
    # (fetch starts after `from`: with now = T + 299 the 1-minute archive still covers T - 1)
    assert C.fetch(p, T - 1, T + 299, now=T + 299) == ((T, T + 300, 60), [1.0, 2.0, 4.0, None, None])
    assert C.fetch(p, T, now=NOW) == ((T + 60, NOW + 60, 60), [2.0, 4.0, None, None, None])
    assert C.fetch(p, NOW - 1200, NOW, now=NOW) == ((T - 600, T + 600, 300), [None, None, 7.0 / 3, None])


AGG_EXPECT = {  # values 3, -5, 4 in minutes 0, 1, 3 of a 5-minute interval
    "average": 2.0 / 3, "sum": 2.0, "last": 4.0, "max": 4.0, "min": -5.0,
    "avg_zero": 2.0 / 5, "absmax": -5.0, "absmin": 3.0,
}


@pytest.mark.parametrize("agg", sorted(AGG_EXPECT))
def test_each_aggregation_exact(tmp_path, agg):
    p = new_file(tmp_path, LAYOUT, 0.5, agg)
    C.update_many(p, [(T, 3.0), (T + 60, -5.0), (T + 180, 4.0)], now=NOW)
    assert archive_bytes(p, 1) == point(T, AGG_EXPECT[agg]) + zeros(3)
    # the single-update path (scalar) and whisper agree
    q = new_file(tmp_path, LAYOUT, 0.5, agg, name="q.wsp")
    for t, v in [(T, 3.0), (T + 60, -5.0), (T + 180, 4.0)]:
        C.update(q, v, t, now=NOW)
    assert archive_bytes(q, 1) == point(T, AGG_EXPECT[agg]) + zeros(3)
    w = str(tmp_path / "w.wsp")
    W.create(w, list(LAYOUT), 0.5, agg)
    W.update_many(w, [(T, 3.0), (T + 60, -5.0), (T + 180, 4.0)], now=NOW)
    assert read(w) == read(p)


@pytest.mark.parametrize("vectorised", [False, True])
def test_aggregation_ties_and_signed_zero(tmp_path, vectorised):
    # first extreme in time wins; sums start at +0.0 like Python's sum()
    cases = {"max": ([0.0, -0.0], 0.0), "min": ([-0.0, 0.0], -0.0), "absmax": ([2.0, -2.0], 2.0),
             "absmin": ([-1.0, 1.0], -1.0), "sum": ([-0.0, -0.0], 0.0), "average": ([-0.0, -0.0], 0.0),
             "avg_zero": ([-0.0, -0.0], 0.0), "last": ([-0.0, 0.0], 0.0)}
    t0 = T + 60  # a multiple of 120
    for agg, (vals, expect) in cases.items():
        p = new_file(tmp_path, [(60, 4), (120, 4)], 0.5, agg, name=agg)
        pts = [(t0, vals[0]), (t0 + 60, vals[1])]
        if vectorised:  # two lower intervals at once go through the numpy path
            pts += [(t0 + 120, vals[0]), (t0 + 180, vals[1])]
        C.update_many(p, pts, now=t0 + 180)
        lower = archive_bytes(p, 1)
        assert lower[:12] == point(t0, expect), agg
        if vectorised:
            assert lower[12:24] == point(t0 + 120, expect), agg


def test_summation_is_sequential_like_python(tmp_path):
    # 60 one-second values whose sum depends on the order of addition
    vals = [1e16, 1.0, -1e16, 3.0, 0.1] * 12
    assert float(sum(vals)) != float(np.sum(vals))
    for agg in ("sum", "average", "avg_zero"):
        p = new_file(tmp_path, [(1, 120), (60, 10)], 0.0, agg, name=agg)
        C.update_many(p, [(T + i, v) for i, v in enumerate(vals)], now=T + 100)  # one interval
        C.update_many(p, [(T + 60 + i, v) for i, v in enumerate(vals + vals)], now=T + 120)  # two
        expect = float(sum(vals)) / (1 if agg == "sum" else 60)
        assert archive_bytes(p, 1)[:24] == point(T, expect) + point(T + 60, expect), agg


def test_xff_not_met_writes_nothing_lower(tmp_path):
    p = new_file(tmp_path, LAYOUT, 0.5)
    C.update_many(p, [(T, 1.0), (T + 60, 2.0)], now=NOW)  # 2 of 5 < 0.5
    assert archive_bytes(p, 1) == zeros(4)
    C.update(p, 3.0, T + 120, now=NOW)  # now 3 of 5
    assert archive_bytes(p, 1) == point(T, 2.0) + zeros(3)


def test_duplicates_newest_wins_first_of_identical_wins(tmp_path):
    p = new_file(tmp_path, LAYOUT, 0.0)
    C.update_many(p, [(T + 50, 5.0), (T + 10, 1.0), (T + 70, 7.0), (T + 70, 8.0), (T + 60, 6.0)], now=NOW)
    # minute T: T+50 is newest; minute T+60: two points at T+70, the first given wins
    assert archive_bytes(p, 0)[:24] == point(T, 5.0) + point(T + 60, 7.0)
    with Fd(p) as f:  # the fd API too, with unsorted arrays
        C.update_many_fd(f.fd, f.header, arr(T + 130, T + 125, T + 125), arr(1, 2, 3, dtype=float), NOW)
    assert archive_bytes(p, 0)[24:36] == point(T + 120, 1.0)


def test_archive_selection_too_old_and_future(tmp_path):
    p = new_file(tmp_path, LAYOUT, 0.0)
    w = str(tmp_path / "w.wsp")
    W.create(w, list(LAYOUT), 0.0)
    # age 240 -> archive 0; age 301 -> archive 1; age 1201 -> dropped; future -> archive 0
    pts = [(NOW - 240, 1.0), (NOW - 301, 2.0), (NOW - 1201, 3.0), (NOW + 30, 4.0)]
    C.update_many(p, pts, now=NOW)
    W.update_many(w, pts, now=NOW)
    assert read(p) == read(w)
    with Fd(p) as f:
        t0, v0 = C.read_archive_fd(f.fd, f.header, 0)
        t1, v1 = C.read_archive_fd(f.fd, f.header, 1)
    assert list(zip(t0.tolist(), v0.tolist())) == [(T + 60, 1.0), (T + 300, 4.0)]
    # archive 1: the age-301 point and the propagation of both minutes
    assert list(zip(t1.tolist(), v1.tolist())) == [(T - 300, 2.0), (T, 1.0), (T + 300, 4.0)]
    with pytest.raises(C.TimestampNotCovered):
        C.update(p, 1.0, NOW + 1, now=NOW)
    with pytest.raises(C.TimestampNotCovered):
        C.update(p, 1.0, NOW - 1200, now=NOW)  # maxRetention is exclusive for update()
    C.update(p, 1.0, NOW - 1199, now=NOW)


def test_timestamps_beyond_uint32_refused_before_writing(tmp_path):
    p = new_file(tmp_path, LAYOUT)
    before = read(p)
    with Fd(p) as f:
        with pytest.raises(ValueError):
            C.update_many_fd(f.fd, f.header, arr(NOW, 2**32 + 100), arr(1, 2, dtype=float), NOW)
        with pytest.raises(ValueError):  # 2**32 + 100 is in an interval past 2**32 - 1
            C.update_many_fd(f.fd, f.header, arr(2**32 + 100), arr(1, dtype=float), 2**32 + 110)
    assert read(p) == before
    # 2**32 + 5 lies in the minute starting at 2**32 - 16: storable, as in whisper
    w = str(tmp_path / "w.wsp")
    W.create(w, list(LAYOUT))
    W.update_many(w, [(2**32 + 5, 1.0)], now=2**32)
    C.update_many(p, [(2**32 + 5, 1.0)], now=2**32)
    assert read(p) == read(w)


def test_long_future_run_keeps_ring_semantics(tmp_path):
    # whisper 1.1.10 would write the tail of this run past archive 0 into archive 1
    p = new_file(tmp_path, [(1, 4), (2, 4)], 0.0, "last")
    C.update_many(p, [(T + i, float(i)) for i in range(10)], now=T)
    assert os.path.getsize(p) == 16 + 24 + 96
    with Fd(p) as f:
        t0, v0 = C.read_archive_fd(f.fd, f.header, 0)
        t1, v1 = C.read_archive_fd(f.fd, f.header, 1)
    assert t0.tolist() == [T + 6, T + 7, T + 8, T + 9] and v0.tolist() == [6.0, 7.0, 8.0, 9.0]
    assert t1.tolist() == [T + 6, T + 8] and v1.tolist() == [7.0, 9.0]


def test_update_many_accepts_float_and_string_input(tmp_path):
    p = new_file(tmp_path, LAYOUT, 0.0)
    q = new_file(tmp_path, LAYOUT, 0.0, name="q.wsp")
    C.update_many(p, [(T + 59.9, "2.5"), (float(T + 60), 1)], now=NOW)
    C.update_many(q, [(T, 2.5), (T + 60, 1.0)], now=NOW)
    assert read(p) == read(q)
    assert C.update_many(p, [], now=NOW) is None
    with pytest.raises(TypeError):
        C.update_many(p, [(T, None), (T + 1, 2.0)], now=NOW)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------


def test_fetch_fd_values_and_errors(tmp_path):
    p = new_file(tmp_path, LAYOUT)
    C.update_many(p, [(T, 1.0), (T + 120, 4.0), (T + 180, 0.0)], now=NOW)
    with Fd(p) as f:
        frm, until, step, vals = C.fetch_fd(f.fd, f.header, T, NOW, NOW)
        assert (frm, until, step) == (T + 60, NOW + 60, 60)
        assert vals.dtype == np.float64
        assert [None if math.isnan(v) else v for v in vals.tolist()] == [None, 4.0, 0.0, None, None]
        assert C.fetch_fd(f.fd, f.header, NOW + 1, NOW + 100, NOW) is None
        assert C.fetch_fd(f.fd, f.header, 0, NOW - 1201, NOW) is None
        with pytest.raises(C.InvalidTimeInterval):
            C.fetch_fd(f.fd, f.header, NOW, NOW - 1, NOW)
        with pytest.raises(ValueError):
            C.fetch_fd(f.fd, f.header, T, NOW, NOW, archive_to_select="2m")
        r = C.fetch_fd(f.fd, f.header, T - 1, NOW, NOW, archive_to_select="5m")
        assert r[:3] == (T, NOW + 300, 300) and r[3].tolist()[0] == pytest.approx(5.0 / 3)
    # an archive never written: all gaps
    q = new_file(tmp_path, LAYOUT, name="q.wsp")
    assert C.fetch(q, T, NOW, now=NOW) == ((T + 60, NOW + 60, 60), [None] * 5)


def test_read_archive_and_read_all(tmp_path):
    p = new_file(tmp_path, [(60, 5), (300, 6)], 0.0)
    old = [(T - 1200, 10.0), (T - 900, 20.0)]  # only fit archive 1
    C.update_many(p, old + [(T, 1.0), (T + 60, 2.0), (T + 240, 5.0)], now=NOW)
    with Fd(p) as f:
        t0, v0 = C.read_archive_fd(f.fd, f.header, 0)
        assert t0.dtype == np.int64 and v0.dtype == np.float64
        assert list(zip(t0.tolist(), v0.tolist())) == [(T, 1.0), (T + 60, 2.0), (T + 240, 5.0)]
        t1, v1 = C.read_archive_fd(f.fd, f.header, 1)
        assert list(zip(t1.tolist(), v1.tolist())) == [(T - 1200, 10.0), (T - 900, 20.0), (T, 8.0 / 3)]
        ta, va = C.read_all_fd(f.fd, f.header)
        # at T both archives have a point: the 1-minute value wins
        assert list(zip(ta.tolist(), va.tolist())) == [
            (T - 1200, 10.0), (T - 900, 20.0), (T, 1.0), (T + 60, 2.0), (T + 240, 5.0)]
        # a slot whose stamp does not belong there is not a point
        os.pwrite(f.fd, point(T + 7, 9.0), 40 + 3 * 12)
        os.pwrite(f.fd, point(T + 120 + 3000, 9.0), 40 + 2 * 12)  # another lap, right slot: valid
        t0, _ = C.read_archive_fd(f.fd, f.header, 0)
        assert t0.tolist() == [T, T + 60, T + 240, T + 3120]
    q = new_file(tmp_path, [(60, 5)], name="q.wsp")
    with Fd(q) as f:
        t, v = C.read_all_fd(f.fd, f.header)
        assert t.dtype == np.int64 and len(t) == 0 and len(v) == 0


def test_cross_read_with_whisper(tmp_path):
    layout = [(10, 30), (60, 20), (600, 10)]
    rng = np.random.default_rng(5)
    pts = [(NOW - int(a), float(v)) for a, v in zip(rng.integers(0, 6000, 200), rng.normal(0, 1e3, 200))]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    W.create(a, list(layout), 0.2, "avg_zero")
    C.create(b, list(layout), 0.2, "avg_zero")
    W.update_many(a, pts[:100], now=NOW)
    C.update_many(b, pts[:100], now=NOW)
    W.update_many(b, pts[100:], now=NOW)  # whisper writes on our file
    C.update_many(a, pts[100:], now=NOW)  # we write on whisper's
    assert read(a) == read(b)
    for frm in (NOW - 200, NOW - 1000, NOW - 5000):
        assert C.fetch(a, frm, NOW, now=NOW) == W.fetch(b, frm, NOW, now=NOW)


# --------------------------------------------------------------------------
# deleting points
# --------------------------------------------------------------------------


def filled(tmp_path, layout=LAYOUT, xff=0.5, agg="average", name="d.wsp"):
    p = new_file(tmp_path, layout, xff, agg, name)
    C.update_many(p, [(T, 1.0), (T + 60, 2.0), (T + 120, 4.0), (T + 180, 8.0)], now=NOW)
    assert archive_bytes(p, 1)[:12] == point(T, 15.0 / 4)
    return p


def test_delete_point_recomputes_lower(tmp_path):
    p = filled(tmp_path)
    with Fd(p) as f:
        assert C.delete_points_fd(f.fd, f.header, arr(T + 120), NOW) == 1
        assert archive_bytes(p, 0) == point(T, 1.0) + point(T + 60, 2.0) + zeros(1) + point(T + 180, 8.0) + zeros(1)
        assert archive_bytes(p, 1) == point(T, 11.0 / 3) + zeros(3)
        # 2 of 5 left < xff: the lower point goes; it was the lower archive's only point
        assert C.delete_points_fd(f.fd, f.header, arr(T + 60), NOW) == 1
        assert archive_bytes(p, 0) == point(T, 1.0) + zeros(2) + point(T + 180, 8.0) + zeros(1)
        assert archive_bytes(p, 1) == zeros(4)
        # nothing there / too old / future-but-empty: nothing cleared, nothing written
        before = read(p)
        assert C.delete_points_fd(f.fd, f.header, arr(T + 60, T - 5000, NOW + 30), NOW) == 0
        assert read(p) == before
    assert W.fetch(p, T - 1, T + 299, now=T + 299)[1] == [1.0, None, None, 8.0, None]


def test_delete_base_point_rotates_ring(tmp_path):
    p = filled(tmp_path)
    with Fd(p) as f:
        assert C.delete_points_fd(f.fd, f.header, arr(T, T + 5), NOW) == 1  # same minute: once
    # slot 0 holds the base: the ring turns so another point is there, data unchanged
    assert archive_bytes(p, 0) == point(T + 60, 2.0) + point(T + 120, 4.0) + point(T + 180, 8.0) + zeros(2)
    assert archive_bytes(p, 1) == point(T, 14.0 / 3) + zeros(3)
    for mod in (W, C):  # both libraries read it the same
        assert mod.fetch(p, T - 1, T + 299, now=T + 299)[1] == [None, 2.0, 4.0, 8.0, None]
    # writes keep landing in the right slots
    C.update_many(p, [(T + 240, 16.0), (T, 0.5)], now=NOW)
    assert W.fetch(p, T - 1, T + 299, now=T + 299)[1] == [0.5, 2.0, 4.0, 8.0, 16.0]
    with Fd(p) as f:  # delete everything: the archives end up all zero
        assert C.delete_points_fd(f.fd, f.header, arr(*range(T, T + 300, 60)), NOW) == 5
    assert read(p)[40:] == zeros(9)


def test_delete_in_lower_archive_and_chain(tmp_path):
    layout = [(60, 5), (300, 4), (1200, 3)]
    p = new_file(tmp_path, layout, 0.0, "sum")
    now = T + 1200
    C.update_many(p, [(T, 1.0), (T + 60, 2.0)], now=T + 300)  # into archive 0, propagated
    with Fd(p) as f:
        t2, v2 = C.read_archive_fd(f.fd, f.header, 2)
        assert (t2.tolist(), v2.tolist()) == ([T - 300], [3.0])  # T % 1200 == 300
        # at `now` T is too old for archive 0: the delete goes to archive 1, then down to 2
        assert C.delete_points_fd(f.fd, f.header, arr(T), now) == 1
        assert C.read_archive_fd(f.fd, f.header, 1)[0].tolist() == []
        assert C.read_archive_fd(f.fd, f.header, 2)[0].tolist() == []
        assert C.read_archive_fd(f.fd, f.header, 0)[0].tolist() == [T, T + 60]  # untouched


# --------------------------------------------------------------------------
# resize
# --------------------------------------------------------------------------


def series(path, layout_now, rng):
    """Regular data in every archive of `path`."""
    with Fd(path) as f:
        for a in reversed(f.header.archives):
            ts = np.arange(layout_now - a.retention + a.seconds_per_point, layout_now + 1,
                           a.seconds_per_point, dtype=np.int64)
            vals = rng.normal(10.0, 3.0, len(ts)).round(2)
            keep = rng.random(len(ts)) > 0.1
            C.update_many_fd(f.fd, f.header, ts[keep], vals[keep], layout_now)


def archives(path):
    with Fd(path) as f:
        return [C.read_archive_fd(f.fd, f.header, i) for i in range(len(f.header.archives))]


def in_window(t, v, now, retention):
    keep = now - t <= retention
    return t[keep].tolist(), v[keep].tolist()


def test_resize_same_layout_preserves_everything(tmp_path):
    layout = [(60, 60), (300, 48), (3600, 24)]
    p = new_file(tmp_path, layout, 0.5, "max")
    series(p, NOW, np.random.default_rng(1))
    before = archives(p)
    fetches = [C.fetch(p, NOW - span, NOW, now=NOW) for span in (3000, 14000, 80000)]
    inode = os.stat(p).st_ino
    header = C.resize(p, layout, now=NOW)
    assert os.stat(p).st_ino != inode and os.listdir(tmp_path) == ["x.wsp"]
    with Fd(p) as f:
        assert header == f.header
    assert (header.aggregation_method, header.x_files_factor) == (4, 0.5)
    after = archives(p)
    for (s, n), (tb, vb), (ta, va) in zip(layout, before, after):
        assert in_window(ta, va, NOW, s * n) == in_window(tb, vb, NOW, s * n)
    assert [C.fetch(p, NOW - span, NOW, now=NOW) for span in (3000, 14000, 80000)] == fetches
    assert [W.fetch(p, NOW - span, NOW, now=NOW) for span in (3000, 14000, 80000)] == fetches


def test_resize_longer_retention_keeps_every_value(tmp_path):
    p = new_file(tmp_path, [(60, 60), (300, 48)], 0.5, "average")
    series(p, NOW, np.random.default_rng(2))
    before = archives(p)
    C.resize(p, [(60, 240), (300, 96), (3600, 24)], now=NOW)
    after = archives(p)
    assert C.info(p)["archives"][2]["secondsPerPoint"] == 3600
    # each old archive's points are all in the new archive of the same resolution ...
    assert in_window(*after[0], NOW, 3600) == (before[0][0].tolist(), before[0][1].tolist())
    assert (after[1][0].tolist(), after[1][1].tolist()) == (before[1][0].tolist(), before[1][1].tolist())
    # ... and where only 5-minute data exists, the 1-minute archive holds it as sparse points
    older = [(t, v) for t, v in zip(*after[0]) if NOW - t > 3600]
    assert older == [(t, v) for t, v in zip(before[1][0].tolist(), before[1][1].tolist())
                     if 3600 < NOW - t <= 14400]
    # the new hourly archive aggregates the 5-minute one (12 slots, xff 0.5, average)
    t5, v5 = before[1]
    expect = {}
    for t, v in zip(t5.tolist(), v5.tolist()):
        expect.setdefault(t - t % 3600, []).append(v)
    expect = {h: sum(vs) / len(vs) for h, vs in expect.items() if len(vs) / 12 >= 0.5}
    assert dict(zip(after[2][0].tolist(), after[2][1].tolist())) == expect


def test_resize_to_coarser_and_finer(tmp_path):
    p = new_file(tmp_path, [(60, 30)], 0.0, "sum")
    vals = {T - 60 * i: float(i) for i in range(30)}
    C.update_many(p, list(vals.items()), now=T)
    C.resize(p, [(300, 10)], now=T, aggregation_method="sum", x_files_factor=0.0)
    (t, v), = archives(p)
    expect = {}
    for ts, x in vals.items():
        expect[ts - ts % 300] = expect.get(ts - ts % 300, 0.0) + x
    assert dict(zip(t.tolist(), v.tolist())) == {k: x for k, x in expect.items() if T - k <= 3000}
    # back to a finer layout: the 5-minute points stay, as sparse one-minute points
    C.resize(p, [(60, 60)], now=T)
    (t2, v2), = archives(p)
    assert dict(zip(t2.tolist(), v2.tolist())) == {k: x for k, x in zip(t.tolist(), v.tolist()) if T - k <= 3600}
    assert C.info(p)["aggregationMethod"] == "sum"


def test_resize_refuses_bad_layout_and_leaves_file(tmp_path):
    p = filled(tmp_path)
    before = read(p)
    with pytest.raises(C.InvalidConfiguration):
        C.resize(p, [(60, 10), (90, 100)], now=NOW)
    with pytest.raises(C.InvalidAggregationMethod):
        C.resize(p, [(60, 10)], aggregation_method="median", now=NOW)
    assert read(p) == before and os.listdir(tmp_path) == ["d.wsp"]


# --------------------------------------------------------------------------
# corruption
# --------------------------------------------------------------------------


def corrupt(tmp_path, how):
    p = str(tmp_path / "bad.wsp")
    C.create(p, [(60, 10), (600, 10)])
    data = bytearray(read(p))
    if how == "empty":
        data = b""
    elif how == "short header":
        data = data[:10]
    elif how == "short archive list":
        data = data[:16 + 12]
    elif how == "agg 0":
        data[0:4] = struct.pack("!L", 0)
    elif how == "agg 9":
        data[0:4] = struct.pack("!L", 9)
    elif how == "xff 1.5":
        data[8:12] = struct.pack("!f", 1.5)
    elif how == "xff -0.5":
        data[8:12] = struct.pack("!f", -0.5)
    elif how == "xff nan":
        data[8:12] = struct.pack("!f", NAN)
    elif how == "no archives":
        data[12:16] = struct.pack("!L", 0)
    elif how == "huge archive count":
        data[12:16] = struct.pack("!L", 2**32 - 1)
    elif how == "bad offset":
        data[16:20] = struct.pack("!L", 44)
    elif how == "zero points":
        data[24:28] = struct.pack("!L", 0)
    elif how == "truncated archive":
        data = data[:-5]
    elif how == "truncated first archive":
        data = data[:40 + 50]
    with open(p, "wb") as fh:
        fh.write(data)
    return p


CORRUPTIONS = ["empty", "short header", "short archive list", "agg 0", "agg 9", "xff 1.5", "xff -0.5",
               "xff nan", "no archives", "huge archive count", "bad offset", "zero points",
               "truncated archive", "truncated first archive"]


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_files_raise_naming_the_file(tmp_path, how):
    p = corrupt(tmp_path, how)
    fd = os.open(p, os.O_RDWR)
    try:
        with pytest.raises(C.CorruptWhisperFile) as e:
            C.read_header(fd, p)
        assert p in str(e.value) and e.value.path == p
        assert isinstance(e.value, C.WhisperException)
        with pytest.raises(C.CorruptWhisperFile) as e:
            C.read_header(fd)  # no path given: named after the fd's file
        assert e.value.path == os.path.realpath(p)
    finally:
        os.close(fd)
    for call in (lambda: C.info(p), lambda: C.fetch(p, 0, now=NOW), lambda: C.update(p, 1.0, NOW, now=NOW),
                 lambda: C.update_many(p, [(NOW, 1.0)], now=NOW), lambda: C.setXFilesFactor(p, 0.1)):
        with pytest.raises(C.CorruptWhisperFile) as e:
            call()
        assert p in str(e.value)


def test_truncated_after_header_was_cached(tmp_path):
    p = filled(tmp_path)
    with Fd(p) as f:
        os.ftruncate(f.fd, 40 + 30)  # the disk filled up / someone truncated it
        for call in (lambda: C.fetch_fd(f.fd, f.header, T - 1, NOW, NOW),
                     lambda: C.fetch_fd(f.fd, f.header, T, T + 61, NOW),
                     lambda: C.fetch_fd(f.fd, f.header, 0, NOW, NOW),
                     lambda: C.update_many_fd(f.fd, f.header, arr(T + 1, T + 240), arr(1, 2, dtype=float), NOW),
                     lambda: C.update_fd(f.fd, f.header, 1.0, T + 240, NOW),
                     lambda: C.read_archive_fd(f.fd, f.header, 0),
                     lambda: C.read_all_fd(f.fd, f.header),
                     lambda: C.delete_points_fd(f.fd, f.header, arr(T + 60), NOW)):
            with pytest.raises(C.CorruptWhisperFile) as e:
                call()
            assert os.path.realpath(p) in str(e.value)
        assert os.fstat(f.fd).st_size == 70  # nothing was written into the truncated file


def test_corrupt_whisper_file_exception_shape():
    e = C.CorruptWhisperFile("Unable to read header", "/x/y.wsp")
    assert (e.error, e.path, e.reason) == ("Unable to read header", "/x/y.wsp", "Unable to read header")
    assert str(e) == "Unable to read header (/x/y.wsp)"
    assert repr(e) == "<CorruptWhisperFile[/x/y.wsp] Unable to read header>"
    assert str(W.CorruptWhisperFile("Unable to read header", "/x/y.wsp")) == str(e)


# --------------------------------------------------------------------------
# properties of delete and resize over random histories
# --------------------------------------------------------------------------

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.test_whisper_compat import play, scenarios  # noqa: E402

PROPS = dict(max_examples=int(os.environ.get("WHISPER_COMPAT_EXAMPLES", "600")) // 4, deadline=None, database=None,
             suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def points_of(path):
    """Per archive: {timestamp: value} of every valid point."""
    return [dict(zip(t.tolist(), v.tolist())) for t, v in archives(path)]


def same(a, b):
    return struct.pack("!d", a) == struct.pack("!d", b)


def model_value(header, higher_points, lo, interval):
    """What propagation computes for `interval` of archive `lo` from the archive above."""
    h = header.archives[lo - 1]
    k = header.archives[lo].seconds_per_point // h.seconds_per_point
    known = [higher_points[t] for t in range(interval, interval + k * h.seconds_per_point, h.seconds_per_point)
             if t in higher_points]
    if not known or len(known) / float(k) < header.x_files_factor:
        return None
    return C._aggregate_one(header.aggregation_method, known, k)


@settings(**PROPS)
@given(sc=scenarios(max_ops=4), data=st.data())
def test_delete_points_property(tmp_path, sc, data):
    pa, pb = str(tmp_path / "a.wsp"), str(tmp_path / "b.wsp")
    for q in (pa, pb):
        if os.path.exists(q):
            os.unlink(q)
    now = play(sc, pa, pb)
    if now is None:
        return
    before = points_of(pb)
    with Fd(pb) as f:
        header = f.header
        stored = sorted({t for pts in before for t in pts})
        picks = data.draw(st.lists(st.sampled_from(stored), max_size=8)) if stored else []
        extra = data.draw(st.lists(st.integers(max(now - header.max_retention - 100, 0), now + 100), max_size=3))
        stamps = picks + extra
        cleared = C.delete_points_fd(f.fd, header, arr(*stamps) if stamps else arr(), now)
    after = points_of(pb)
    # which archive each stamp addresses (update_many's rule) and what it held there
    gone = [set() for _ in header.archives]
    for t in set(stamps):
        for i, a in enumerate(header.archives):
            if now - t <= a.retention:
                iv = t - t % a.seconds_per_point
                if iv in before[i]:
                    gone[i].add(iv)
                break
    # archives are processed in order; a recomputation above may already have
    # replaced (in the ring) a point a later archive was asked to delete
    first = next((len(g) for g in gone if g), 0)
    assert first <= cleared <= sum(len(g) for g in gone)
    touched = [set() for _ in header.archives]
    for i, a in enumerate(header.archives):
        if i:
            src = touched[i - 1] | gone[i - 1]
            touched[i] = {t - t % a.seconds_per_point for t in src}
    for i, a in enumerate(header.archives):
        for t in gone[i]:
            assert t not in after[i]
        for t, v in before[i].items():
            if t in gone[i] or t in touched[i]:
                continue
            evicted = any((t2 - t) % a.retention == 0 for t2 in touched[i] if t2 in after[i])
            assert evicted or (t in after[i] and same(after[i][t], v))
        if i == 0:
            continue
        for t in touched[i] - gone[i]:
            want = model_value(header, after[i - 1], i, t)
            if t in after[i] and (t not in before[i] or not same(after[i][t], before[i][t])):
                assert want is not None and same(after[i][t], want)  # (re)computed: by the rule
            if t in before[i] and t not in after[i]:
                evicted = any((t2 - t) % a.retention == 0 for t2 in after[i] if t2 != t)
                assert evicted or want is None  # cleared: the rule gives nothing
    # both libraries read the result alike
    for frm in (now - 10, now - header.max_retention // 2, now - header.max_retention):
        assert bits_equal(W.fetch(pb, frm, now, now=now), C.fetch(pb, frm, now, now=now))


def bits_equal(a, b):
    from tests.test_whisper_compat import bits
    return bits(a) == bits(b)


@settings(**PROPS)
@given(sc=scenarios(max_ops=4), grow=st.sampled_from([1, 1, 2, 3]))
@example(sc={"layout": [(1, 2), (2, 2)], "agg": "average", "xff": 0.0, "now": 1_000_000_000,
             "ops": [("many", -1, [(1, -0.0), (3, -1.0), (5, 1.0), (7, 1.0), (9, -0.0), (11, 1.0)])] * 2},
         grow=1)  # an interval as old as the archive's retention: it cannot stay
def test_resize_same_resolutions_keeps_points(tmp_path, sc, grow):
    pa, pb = str(tmp_path / "a.wsp"), str(tmp_path / "b.wsp")
    for q in (pa, pb):
        if os.path.exists(q):
            os.unlink(q)
    now = play(sc, pa, pb)
    if now is None or now < 10**6:
        return  # (near the epoch, interval 0 looks like an empty slot)
    with Fd(pb) as f:
        header = f.header
    before = points_of(pb)
    new_layout = [(s, n * grow) for s, n in header.archive_list()]
    C.resize(pb, new_layout, now=now)
    after = points_of(pb)
    assert sorted(os.listdir(tmp_path)) == ["a.wsp", "b.wsp"]
    for (s, n), old, new in zip(header.archive_list(), before, after):
        for t, v in old.items():
            # an archive of n slots holds the intervals of ages 0 .. s*n - 1 (an interval of
            # age s*n shares its slot with the newest one)
            if now - t < s * n:
                assert t in new and same(new[t], v)
    # every value fetch returned before is still returned
    for frm in (now - 10, now - header.max_retention // 2, now - header.max_retention):
        r0 = W.fetch(pa, frm, now, now=now)
        r1 = C.fetch(pb, frm, now, now=now)
        if r0 is not None and r1 is not None and r0[0] == r1[0]:
            for x, y in zip(r0[1], r1[1]):
                assert x is None or (y is not None and same(x, y))


def test_resize_keeps_points_a_future_point_would_push_out(tmp_path):
    # a point from a clock ahead (996) is written, then older ones overwrite its slot
    # in the 6 s archive of 3 slots, which holds 978, 984 and 990 at now = 994, while
    # the 3 s archive still holds 996: resizing must not let 996 push 978 out
    p = str(tmp_path / "f.wsp")
    now = 999_999_994
    C.create(p, [(3, 5), (6, 3)], 0.0, "average")
    C.update_many(p, [(999_999_996, 4.0)], now=now)
    C.update_many(p, [(999_999_978, 1.0), (999_999_984, 2.0), (999_999_990, 3.0)], now=now)
    before = points_of(p)
    assert before[1] == {999_999_978: 1.0, 999_999_984: 2.0, 999_999_990: 3.0}
    C.resize(p, [(3, 5), (6, 3)], now=now)
    after = points_of(p)
    assert after[1] == {999_999_978: 1.0, 999_999_984: 2.0, 999_999_990: 3.0}
    assert after[0] == before[0] == {999_999_984: 2.0, 999_999_990: 3.0, 999_999_996: 4.0}


def test_many_archives_header(tmp_path):
    # more archives than read_header's first pread covers
    layout = [(2 ** i, 4) for i in range(25)]
    w, p = str(tmp_path / "w.wsp"), str(tmp_path / "p.wsp")
    W.create(w, list(layout), 0.0, "last")
    C.create(p, list(layout), 0.0, "last")
    assert read(w) == read(p)
    with Fd(p) as f:
        assert f.header.archive_list() == layout
        assert f.header.file_size == 16 + 25 * 12 + 25 * 48
    pts = [(NOW - 3 * i, float(i)) for i in range(40)]
    W.update_many(w, pts, now=NOW)
    C.update_many(p, pts, now=NOW)
    assert read(w) == read(p)
    assert C.info(p) == W.info(w)
