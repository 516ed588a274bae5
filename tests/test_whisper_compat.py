"""Differential tests: cyclone.store.whisper against the PyPI whisper 1.1.10 package.

The same random layouts and write sequences go through both; the files must
be byte-identical after every operation and every fetch must agree (also
when each library reads the other's file).
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import math
import os
import random
import shutil
import struct

import numpy as np
import pytest
import whisper as W
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cyclone.store import whisper as C

AGGS = list(W.aggregationMethods)
INF = float("inf")

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


class _Tracked:
    """Wraps whisper's file objects to notice writes that run past an archive's end.

    whisper 1.1.10 does that when one batch holds more contiguous intervals
    than an archive has slots (far-future points); we deliberately keep ring
    semantics instead, so such examples are not comparable byte for byte.
    """

    layout: list[tuple[int, int]] = []
    overflow = False

    def __init__(self, *args, **kwargs):
        self.f = builtins.open(*args, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        pos = self.f.tell()
        end = pos + len(data)
        off = 16 + 12 * len(_Tracked.layout)
        for _spp, pts in _Tracked.layout:
            if off <= pos < off + 12 * pts and end > off + 12 * pts:
                _Tracked.overflow = True
            off += 12 * pts
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


@contextlib.contextmanager
def tracking(layout):
    """Route whisper's open() through _Tracked for the duration."""
    _Tracked.layout = sorted(layout)
    _Tracked.overflow = False
    had = "open" in W.__dict__
    old = W.__dict__.get("open")
    W.open = _Tracked
    try:
        yield
    finally:
        if had:
            W.open = old
        else:
            del W.open


def bits(x):
    """A value's exact identity: floats by their bytes (NaN, -0.0 distinguished)."""
    if isinstance(x, float):
        return ("f", struct.pack("!d", x))
    if isinstance(x, (list, tuple)):
        return tuple(bits(y) for y in x)
    return x


def outcome(fn, *args, **kwargs):
    """(bits of the result) or ("raised", exception class name)."""
    try:
        return bits(fn(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 - comparing which exception, not handling it
        return ("raised", type(e).__name__)


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


_counter = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("whisper_compat")


def fresh_paths(workdir, n=2):
    i = next(_counter)
    return [str(workdir / ("f%d_%d.wsp" % (i, j))) for j in range(n)]


# --------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------


@st.composite
def layouts(draw):
    n = draw(st.integers(1, 4))
    spps = [draw(st.sampled_from([1, 2, 3, 5, 10, 60]))]
    for _ in range(n - 1):
        spps.append(spps[-1] * draw(st.sampled_from([2, 3, 4, 6, 10, 12])))
    pts: list[int] = []
    for i in range(n):
        lo = spps[i + 1] // spps[i] if i + 1 < n else 1
        if i:
            lo = max(lo, spps[i - 1] * pts[-1] // spps[i] + 1)
        lo = max(lo, 1)
        pts.append(draw(st.integers(lo, lo + 24)))
    return list(zip(spps, pts))


values = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0]),
    st.integers(-5, 5).map(float),
    st.floats(-1e9, 1e9, allow_nan=False),
    st.floats(-1e9, 1e9, allow_nan=False),
    st.sampled_from([INF, -INF, 1e308, -1e308]),
)
# some scenarios only use signed zeros, ties and NaN (whisper stores NaN as given), to hit
# the sign-of-zero, first-extreme-wins and NaN-ordering rules of the aggregations
PALETTE = [0.0, -0.0, -0.0, 1.0, -1.0, float("nan")]
palette = st.sampled_from(PALETTE)
xffs = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0))


# Layout-independent raw draws (fast to generate), mapped onto a layout in Python.
# point: (age selector, raw age, value); identical raw ages give identical timestamps.
_raw_point = st.tuples(st.integers(0, 19), st.integers(0, 2**20), values)
_raw_palette_point = st.tuples(st.integers(0, 19), st.integers(0, 2**20), palette)
_raw_op = st.tuples(
    st.sampled_from(["many", "many", "many_fd", "dense", "dense", "one", "one_fd"]),
    st.integers(0, 2**20),  # now advance
    st.integers(0, 2**32),  # seed for dense series / single update age
)


def _age(sel, raw, maxret, ret0, spp0):
    if sel < 11:
        return raw % (int(maxret * 1.3) + 2)
    if sel < 19 or raw % 8:
        return raw % (ret0 + 1)
    return -(1 + (raw >> 3) % (3 * spp0))  # a point in the future (rare)


@st.composite
def scenarios(draw, max_ops=6):
    layout = draw(layouts())
    maxret = max(s * p for s, p in layout)
    spp0, ret0 = layout[0][0], layout[0][0] * layout[0][1]
    use_palette = draw(st.integers(0, 4)) == 0
    raw_points = st.lists(_raw_palette_point if use_palette else _raw_point, min_size=1, max_size=40)
    ops = []
    for kind, rnow, seed in draw(st.lists(_raw_op, min_size=1, max_size=max_ops)):
        dnow = rnow % (maxret // 2 + 2) if rnow % 4 else rnow % (2 * spp0 + 1) - spp0
        rng = random.Random(seed)
        if kind == "dense":  # a regular series: one point per step over a stretch
            step = rng.choice(layout)[0]  # dense at some archive's resolution
            first = rng.randint(0, int(maxret * 1.1) if rng.random() < 0.5 else ret0)
            count = rng.randint(1, 80)
            if use_palette:
                pts = [(first + i * step, rng.choice(PALETTE)) for i in range(count)]
            else:
                scale = 10.0 ** rng.randint(-3, 9)
                pts = [(first + i * step, rng.uniform(-scale, scale)) for i in range(count)]
            if rng.random() < 0.3:
                rng.shuffle(pts)
            ops.append(("many", dnow, pts))
        elif kind.startswith("many"):
            # raw ages repeat often (small integers are favoured), giving identical timestamps
            pts = [(_age(sel, raw, maxret, ret0, spp0), v) for sel, raw, v in draw(raw_points)]
            ops.append((kind, dnow, pts))
        else:
            age = rng.randint(-spp0, maxret + spp0)
            value = rng.choice(PALETTE) if use_palette else rng.uniform(-1e6, 1e6)
            ops.append((kind, dnow, age, value))
    nows = [1_000_000_000 + draw(st.integers(0, 700_000_000)), draw(st.integers(0, 3 * maxret)),
            draw(st.integers(0, ret0))]
    return {
        "layout": layout,
        "agg": draw(st.sampled_from(AGGS)),
        "xff": draw(xffs),
        # a small "now" reaches interval 0 (whisper's run-gluing and empty-base quirks)
        "now": nows[draw(st.integers(0, 3)) % 3],
        "ops": ops,
    }


def apply_op(op, now, pa, pb, fd_b, header_b):
    """Run one op on whisper's file pa and ours pb; return both outcomes."""
    kind = op[0]
    if kind.startswith("many"):
        pts = [(max(now - age, 0), v) for age, v in op[2]]  # whisper can't store t < 0
        ra = outcome(W.update_many, pa, pts, now=now)
        if kind == "many":
            rb = outcome(C.update_many, pb, pts, now=now)
        else:
            ts = np.array([t for t, _ in pts], dtype=np.int64)
            vs = np.array([v for _, v in pts], dtype=np.float64)
            rb = outcome(C.update_many_fd, fd_b, header_b, ts, vs, now)
    else:
        t, v = max(now - op[2], 0), op[3]
        ra = outcome(W.update, pa, v, t, now=now)
        if kind == "one":
            rb = outcome(C.update, pb, v, t, now=now)
        else:
            rb = outcome(C.update_fd, fd_b, header_b, v, t, now)
    return ra, rb


def play(sc, pa, pb):
    """Create both files and play the scenario; False if whisper overflowed an archive."""
    layout = sc["layout"]
    with tracking(layout):
        W.create(pa, list(layout), sc["xff"], sc["agg"])
        C.create(pb, list(layout), sc["xff"], sc["agg"])
        assert read(pa) == read(pb)
        _Tracked.overflow = False
        now = sc["now"]
        fd = os.open(pb, os.O_RDWR)
        try:
            header = C.read_header(fd, pb)
            for op in sc["ops"]:
                now = max(now + op[1], 0)
                ra, rb = apply_op(op, now, pa, pb, fd, header)
                if _Tracked.overflow:
                    return None
                assert ra == rb, op
                assert read(pa) == read(pb), op
        finally:
            os.close(fd)
    return now


# --------------------------------------------------------------------------
# the differential tests
# --------------------------------------------------------------------------

FAST = dict(deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.filter_too_much])  # whisper-overflow examples are skipped
# CI runs 500 write/fetch scenarios; WHISPER_COMPAT_EXAMPLES=20000 for a deep soak
EXAMPLES = int(os.environ.get("WHISPER_COMPAT_EXAMPLES", "500"))


@settings(max_examples=EXAMPLES, **FAST)
@given(sc=scenarios(), data=st.data())
def test_writes_and_fetches_match_whisper(workdir, sc, data):
    pa, pb = fresh_paths(workdir)
    now = play(sc, pa, pb)
    assume(now is not None)
    layout = sc["layout"]
    maxret = max(s * p for s, p in layout)
    assert C.info(pb) == W.info(pa)

    for _ in range(data.draw(st.integers(1, 6))):
        from_t = now - data.draw(st.integers(-2 * layout[0][0], int(maxret * 1.3)))
        span = data.draw(st.one_of(st.none(), st.integers(-layout[0][0], int(maxret * 1.3))))
        until_t = None if span is None else from_t + span
        select = data.draw(st.one_of(st.none(), st.sampled_from([s for s, _ in layout] + [7])))
        if select is not None and data.draw(st.booleans()):
            select = "%ds" % select
        args = (from_t, until_t)
        kw = dict(now=now, archiveToSelect=select)
        expect = outcome(W.fetch, pa, *args, **kw)
        assert outcome(C.fetch, pb, *args, **kw) == expect
        # cross reads: each library reads the other's file
        assert outcome(C.fetch, pa, *args, **kw) == expect
        assert outcome(W.fetch, pb, *args, **kw) == expect
        # the fd-level fetch agrees (NaN for gaps)
        fd = os.open(pb, os.O_RDONLY)
        try:
            header = C.read_header(fd, pb)
            if expect and expect[0] == "raised":
                assert outcome(C.fetch_fd, fd, header, from_t, until_t, now, select) == expect
            else:
                r = C.fetch_fd(fd, header, from_t, until_t, now, select)
                if expect is None:
                    assert r is None
                else:
                    (f, u, s), vals = C.fetch(pb, *args, **kw)
                    assert r[:3] == (f, u, s)
                    assert r[3].dtype == np.float64 and len(r[3]) == len(vals)
                    for got, v in zip(r[3].tolist(), vals):
                        assert math.isnan(got) if v is None else bits(got) == bits(v)
        finally:
            os.close(fd)
    os.unlink(pa)
    os.unlink(pb)


@st.composite
def first_writes(draw):
    """A layout and the first batch a new series gets, ascending with unique
    timestamps as the disk store hands it over: mostly one run of intervals
    (the fast path), sometimes gaps, old or future points, more than a ring."""
    layout = draw(layouts())
    spp0, pts0 = layout[0]
    maxret = max(s * p for s, p in layout)
    now = 1_000_000_000 + draw(st.integers(0, 700_000_000)) if draw(st.integers(0, 9)) else \
        draw(st.integers(0, 3 * spp0))  # a tiny "now" reaches interval 0
    kind = draw(st.sampled_from(["run", "run", "run", "sub", "random"]))
    if kind == "random":
        ts = [now - draw(st.integers(-2 * spp0, int(maxret * 1.2)))
              for _ in range(draw(st.integers(1, 40)))]
    else:
        count = draw(st.integers(1, pts0 + 2 if draw(st.booleans()) else 70))
        newest_age = draw(st.integers(-spp0, spp0 * pts0 + spp0))
        step = spp0 if kind == "run" else max(1, spp0 // draw(st.sampled_from([2, 3])))
        ts = [now - newest_age - i * step for i in range(count)]
    rng = random.Random(draw(st.integers(0, 2**32)))
    pts = {max(t, 0): rng.choice([1.0, -0.0, 2.5, rng.uniform(-1e6, 1e6)]) for t in ts}
    return layout, draw(st.sampled_from(AGGS)), draw(xffs), now, sorted(pts.items())


@settings(max_examples=max(200, EXAMPLES // 2), **FAST)
@given(fw=first_writes())
def test_create_with_points_matches_whisper_create_then_update_many(workdir, fw):
    layout, agg, xff, now, pts = fw
    pa, pb = fresh_paths(workdir)
    with tracking(layout):
        W.create(pa, list(layout), xff, agg)
        expect = outcome(W.update_many, pa, pts, now=now)
        assume(not _Tracked.overflow)
    ts = np.array([t for t, _ in pts], dtype=np.int64)
    vs = np.array([v for _, v in pts], dtype=np.float64)
    fd = os.open(pb, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        header, written = C.create_with_points_fd(fd, layout, xff, agg, ts, vs, now)
        got = None if written else outcome(C.update_many_fd, fd, header, ts, vs, now, False)
    finally:
        os.close(fd)
    assert got == expect
    assert read(pb) == read(pa)
    os.unlink(pa)
    os.unlink(pb)


@pytest.mark.parametrize("layout", [[(60, 1440)], [(10, 60), (60, 60), (600, 10)]])
@pytest.mark.parametrize("count", [1, 5, 40])
def test_create_with_points_writes_a_first_run_with_the_header(tmp_path, layout, count):
    now = 1_700_000_000
    pts = [(now - 30 - i * layout[0][0], float(i)) for i in range(count)][::-1]
    pa, pb = str(tmp_path / "a.wsp"), str(tmp_path / "b.wsp")
    W.create(pa, layout, 0.1, "average")
    W.update_many(pa, pts, now=now)
    fd = os.open(pb, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        ts = np.array([t for t, _ in pts])
        vs = np.array([v for _, v in pts])
        _, written = C.create_with_points_fd(fd, layout, 0.1, "average", ts, vs, now)
    finally:
        os.close(fd)
    assert written
    assert read(pb) == read(pa)


@settings(max_examples=max(120, EXAMPLES // 4), **FAST)
@given(sc=scenarios(max_ops=3), data=st.data())
def test_merge_and_diff_match_whisper(workdir, sc, data):
    # two files with the same layout and independent histories
    pa, pb = fresh_paths(workdir)
    now = play(sc, pa, pb)
    assume(now is not None)
    sc2 = dict(sc, ops=data.draw(scenarios(max_ops=3)).get("ops"))
    sc2["now"] = now - data.draw(st.integers(0, 200))
    qa, qb = fresh_paths(workdir)
    layout = sc["layout"]
    maxret = max(s * p for s, p in layout)
    # the second scenario's ages were drawn for another layout: clip them to this one
    ops = []
    for op in sc2["ops"]:
        if op[0].startswith("many"):
            ops.append((op[0], op[1] % (maxret // 2 + 1), [(a % (maxret + 1), v) for a, v in op[2]]))
        else:
            ops.append((op[0], op[1] % (maxret // 2 + 1), op[2] % maxret, op[3]))
    sc2["ops"] = ops
    now2 = play(sc2, qa, qb)
    assume(now2 is not None)
    now = max(now, now2)

    until = data.draw(st.one_of(st.none(), st.integers(now - maxret, now + 10)))
    ignore = data.draw(st.booleans())
    assert outcome(C.diff, pb, qb, ignore, until, now) == outcome(W.diff, pa, qa, ignore, until, now)

    t_from = data.draw(st.one_of(st.none(), st.integers(now - maxret - 10, now)))
    t_to = data.draw(st.one_of(st.none(), st.integers(now - maxret, now + 20)))
    with tracking(layout):
        ra = outcome(W.merge, pa, qa, t_from, t_to, now)
        assume(not _Tracked.overflow)
    rb = outcome(C.merge, pb, qb, t_from, t_to, now)
    assert ra == rb
    assert read(qa) == read(qb)
    for p in (pa, pb, qa, qb):
        os.unlink(p)


@settings(max_examples=max(60, EXAMPLES // 8), **FAST)
@given(sc=scenarios(max_ops=3), agg=st.sampled_from(AGGS + ["bogus"]),
       xff=st.one_of(st.none(), xffs, st.just(1.5)), more=scenarios(max_ops=2))
def test_set_aggregation_then_write_matches_whisper(workdir, sc, agg, xff, more):
    pa, pb = fresh_paths(workdir)
    now = play(sc, pa, pb)
    assume(now is not None)
    assert outcome(C.setAggregationMethod, pb, agg, xff) == outcome(W.setAggregationMethod, pa, agg, xff)
    assert read(pa) == read(pb)
    if xff is not None:
        assert outcome(C.setXFilesFactor, pb, xff) == outcome(W.setXFilesFactor, pa, xff)
        assert read(pa) == read(pb)
    # later writes propagate with the new settings in both
    maxret = max(s * p for s, p in sc["layout"])
    pts = [(max(now - a % (maxret + 1), 0), v) for op in more["ops"] if op[0].startswith("many")
           for a, v in op[2]]
    if pts:
        with tracking(sc["layout"]):
            W.update_many(pa, pts, now=now)
            assume(not _Tracked.overflow)
        C.update_many(pb, pts, now=now)
        assert read(pa) == read(pb)
    assert C.info(pb) == W.info(pa)
    os.unlink(pa)
    os.unlink(pb)


# --------------------------------------------------------------------------
# library corners, table driven
# --------------------------------------------------------------------------

RETENTIONS = [
    "60:1440", "1m:1d", "1h:5y", "10s:6h", "1min:1w", "1d:1y", "5m:30", "60:10d", " 60:10 ",
    "1s:1s", "7:3d", "1w:2y", "1y:10y", "2h:90d", "15s:7d", "1minute:1day", "3sec:1hours",
    "bad", "1x:1d", "1m:", ":5", "1M:1d", "1mo:1d", "0:1d", "0:10", "-1:10", "1m:-5",
    "1.5m:1d", "1m:1.5d", "1m:1d:2", "60", "", "1m :1d", "1 m:1d", "1secs:1d",
]


@pytest.mark.parametrize("definition", RETENTIONS)
def test_parse_retention_def_matches_whisper(definition):
    assert outcome(C.parseRetentionDef, definition) == outcome(W.parseRetentionDef, definition)


def test_parse_retention_def_examples():
    assert C.parseRetentionDef("60:1440") == (60, 1440)
    assert C.parseRetentionDef("1m:1d") == (60, 1440)
    assert C.parseRetentionDef("1h:5y") == (3600, 43800)
    assert C.parseRetentionDef("1m:90d") == (60, 129600)
    assert C.parseRetentionDef("10s:1w") == (10, 60480)


LAYOUTS = [
    [],
    [(60, 1440)],
    [(60, 1440), (60, 100)],
    [(60, 1440), (90, 2000)],
    [(60, 1440), (300, 288)],
    [(60, 1440), (300, 200)],
    [(300, 2000), (60, 1440)],
    [(10, 5), (60, 100)],
    [(10, 6), (60, 100)],
    [(1, 60), (60, 60), (3600, 24)],
    [(1, 60), (60, 1), (3600, 24)],
    [(10, 8640), (60, 43200), (3600, 43800)],
    [(5, 10), (10, 10)],
    [(5, 10), (10, 6)],
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_validate_archive_list_matches_whisper(layout):
    mine, theirs = [tuple(a) for a in layout], [tuple(a) for a in layout]
    assert outcome(C.validateArchiveList, mine) == outcome(W.validateArchiveList, theirs)
    assert mine == theirs  # both sort in place
    if layout:
        try:
            W.validateArchiveList(list(layout))
        except W.InvalidConfiguration as e:
            with pytest.raises(C.InvalidConfiguration) as mine_e:
                C.validateArchiveList(list(layout))
            assert str(mine_e.value) == str(e)


def test_validate_archive_list_refuses_empty_archives():
    # whisper accepts these and then writes a useless file; we refuse them
    for layout in ([(60, 0)], [(0, 10)], [(-60, 10)]):
        with pytest.raises(C.InvalidConfiguration):
            C.validateArchiveList(list(layout))


@pytest.mark.parametrize("layout", [
    [(1, 10)], [(60, 1440)], [(10, 8640), (60, 43200), (3600, 43800)], [(1, 60), (60, 60), (3600, 24)],
])
@pytest.mark.parametrize("agg", AGGS)
@pytest.mark.parametrize("xff", [0.0, 0.1, 0.5, 1.0])
def test_create_and_info_match_whisper(tmp_path, layout, agg, xff):
    pa, pb, pc, pd = (str(tmp_path / n) for n in ("a", "b", "c", "d"))
    W.create(pa, list(layout), xff, agg)
    C.create(pb, list(layout), xff, agg)
    C.create(pc, list(layout), xff, agg, sparse=True)
    C.create(pd, list(layout), xff, agg, useFallocate=True)
    expect = read(pa)
    assert read(pb) == expect
    assert read(pc) == expect
    assert read(pd) == expect
    assert C.info(pb) == W.info(pa)
    assert W.info(pb) == W.info(pa)
    header, data = C.build_header(layout, xff, agg)
    assert expect[: len(data)] == data
    assert header.file_size == len(expect)


def test_create_refusals(tmp_path):
    p = str(tmp_path / "x.wsp")
    C.create(p, [(60, 10)])
    with pytest.raises(C.InvalidConfiguration):
        C.create(p, [(60, 10)])
    q = str(tmp_path / "y.wsp")
    with pytest.raises(C.InvalidAggregationMethod):
        C.create(q, [(60, 10)], aggregationMethod="median")
    with pytest.raises(C.InvalidXFilesFactor):
        C.create(q, [(60, 10)], xFilesFactor=1.5)
    with pytest.raises(C.InvalidXFilesFactor):
        C.create(q, [(60, 10)], xFilesFactor="half")
    with pytest.raises(C.InvalidXFilesFactor):
        C.create(q, [(60, 10)], xFilesFactor=float("nan"))
    with pytest.raises(C.InvalidConfiguration):
        C.create(q, [])
    assert not os.path.exists(q)  # unlike whisper, no empty file is left behind
    # whisper's own behaviour for the same mistakes, for the record
    with pytest.raises(W.InvalidAggregationMethod):
        W.create(q, [(60, 10)], aggregationMethod="median")
    assert os.path.getsize(q) == 0


def test_info_missing_file():
    assert C.info("/nonexistent/x.wsp") is None
    assert W.info("/nonexistent/x.wsp") is None


@pytest.mark.parametrize("agg", AGGS + ["median", None])
@pytest.mark.parametrize("xff", [None, 0.0, 0.25, 1.0, 2.0, "x"])
def test_set_aggregation_method_matches_whisper(tmp_path, agg, xff):
    pa, pb = str(tmp_path / "a"), str(tmp_path / "b")
    W.create(pa, [(60, 10), (600, 10)], 0.5, "max")
    shutil.copy(pa, pb)
    assert outcome(C.setAggregationMethod, pb, agg, xff) == outcome(W.setAggregationMethod, pa, agg, xff)
    assert read(pa) == read(pb)
    assert outcome(C.setXFilesFactor, pb, xff) == outcome(W.setXFilesFactor, pa, xff)
    assert read(pa) == read(pb)


def test_merge_and_diff_refuse_unalike(tmp_path):
    pa, pb = str(tmp_path / "a"), str(tmp_path / "b")
    C.create(pa, [(60, 10)])
    C.create(pb, [(60, 20)])
    with pytest.raises(NotImplementedError):
        C.merge(pa, pb)
    with pytest.raises(NotImplementedError):
        C.diff(pa, pb)
    pc = str(tmp_path / "c")
    C.create(pc, [(60, 10)])
    with pytest.raises(ValueError):
        C.merge(pa, pc, 100, 50)


# --------------------------------------------------------------------------
# realistic layouts, scattered batches (exercises the multi-read gather paths)
# --------------------------------------------------------------------------


def _scattered_run(tmp_path, tag, layout, agg, seed):
    """Scattered batches then scattered deletes; returns the final bytes of ours."""
    rng = random.Random(seed)
    pa, pb = str(tmp_path / ("a" + tag)), str(tmp_path / ("b" + tag))
    W.create(pa, list(layout), 0.3, agg)
    C.create(pb, list(layout), 0.3, agg)
    now = 1_600_000_000
    maxret = max(s * p for s, p in layout)
    for _ in range(4):
        now += rng.randint(0, 3600)
        pts = []
        for _ in range(rng.randint(1, 6)):  # a few dense stretches at random ages
            start = now - rng.randint(0, maxret)
            step = rng.choice(layout)[0]
            pts += [(start - i * step, rng.uniform(-100, 100)) for i in range(rng.randint(1, 200))]
        pts += [(now - rng.randint(0, maxret), rng.uniform(-1, 1)) for _ in range(rng.randint(0, 50))]
        rng.shuffle(pts)
        W.update_many(pa, pts, now=now)
        C.update_many(pb, pts, now=now)
        assert read(pa) == read(pb)
    for span in (3600, 86400, 7 * 86400, maxret):
        assert C.fetch(pb, now - span, now, now=now) == W.fetch(pa, now - span, now, now=now)
    fd = os.open(pb, os.O_RDWR)
    try:
        h = C.read_header(fd, pb)
        stamps = [now - rng.randint(0, maxret) for _ in range(300)]
        all_t, _ = C.read_all_fd(fd, h)
        stamps += rng.sample(all_t.tolist(), min(200, len(all_t)))
        assert C.delete_points_fd(fd, h, np.array(stamps, dtype=np.int64), now) > 0
    finally:
        os.close(fd)
    assert C.fetch(pb, now - 86400, now, now=now) == W.fetch(pb, now - 86400, now, now=now)
    return read(pb)


@pytest.mark.parametrize("n,layout", list(enumerate([[(10, 8640), (60, 10080), (600, 4464)],
                                                     [(60, 1440), (300, 2016), (3600, 2160)]])))
def test_scattered_batches_on_real_layouts(tmp_path, monkeypatch, n, layout):
    results = []
    for gap, reads in ((256, 16), (1, 1000), (4, 2)):  # one read per stretch ... whole archive
        monkeypatch.setattr(C, "_GATHER_GAP", gap)
        monkeypatch.setattr(C, "_GATHER_READS", reads)
        results.append(_scattered_run(tmp_path, "%d_%d" % (gap, reads), layout, AGGS[n * 3], 11 + n))
    assert results[0] == results[1] == results[2]
