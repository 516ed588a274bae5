"""cyclone.thrift_convert: object conversions and the numpy wire codec.

The codec must produce exactly the bytes of the generated code (both the
C-accelerated and the pure-Python protocol), decode whatever the generated
code encodes, and refuse (NotCanonical) anything else so that the caller
falls back to the generated decoder.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol import TBinaryProtocol
from thrift.Thrift import TType
from thrift.transport import TTransport

from cyclone import thrift_convert as C
from cyclone.series import (
    ArchiveArg,
    CycloneError,
    DeleteResult,
    Error,
    FindResult,
    Points,
    ReadAllResult,
    ReadResult,
    SeriesMetadata,
)
from cyclone_if import Cyclone
from cyclone_if import ttypes as T

pytestmark = pytest.mark.timeout(120)


def encode(obj, accelerated: bool = True) -> bytes:
    buf = TTransport.TMemoryBuffer()
    cls = TBinaryProtocol.TBinaryProtocolAccelerated if accelerated else TBinaryProtocol.TBinaryProtocol
    obj.write(cls(buf))
    return buf.getvalue()


def decode(cls, data: bytes):
    obj = cls()
    obj.read(TBinaryProtocol.TBinaryProtocolAccelerated(TTransport.TMemoryBuffer(data)))
    return obj


def same_points(a: Points, b: Points) -> bool:
    return (np.array_equal(a.timestamps, b.timestamps)
            and np.array_equal(a.values, b.values, equal_nan=True))


def same_read(a: ReadResult, b: ReadResult) -> bool:
    return ((a.error, a.start_time, a.end_time, a.step) == (b.error, b.start_time, b.end_time, b.step)
            and np.array_equal(a.values, b.values, equal_nan=True))


# ----------------------------------------------------------------- Error
def test_error_conversions():
    assert C.error_to_thrift(None) is None
    assert C.error_to_thrift(Error("x", True, False)) == T.Error("x", True, False)
    assert C.error_from_thrift(None) is None
    assert C.error_from_thrift(T.Error("", False, False)) is None
    assert C.error_from_thrift(T.Error(None, None, None)) is None
    assert C.error_from_thrift(T.Error("boom", None, True)) == Error("boom", False, True)


def test_error_maps():
    errors = {"b": Error("bad b", True)}
    wire = C.errors_to_thrift(errors, ["a", "b", "c"])
    assert wire == {"a": T.Error("", False, False), "b": T.Error("bad b", True, False),
                    "c": T.Error("", False, False)}
    assert C.errors_from_thrift(wire) == errors
    assert C.errors_from_thrift(None) == {}
    assert C.errors_to_thrift({}) == {}


# ----------------------------------------------------------------- points
def test_points_conversions_keep_nan():
    pts = Points([10, 20, 30], [1.5, math.nan, -2.0])
    wire = C.points_to_thrift(pts)
    assert [dp.timestamp for dp in wire] == [10, 20, 30]
    assert math.isnan(wire[1].value)
    assert same_points(C.points_from_thrift(wire), pts)
    assert len(C.points_from_thrift([])) == 0
    assert len(C.points_from_thrift(None)) == 0


@pytest.mark.parametrize("dp, message", [
    (T.Datapoint(1, None), "k: datapoint 0 has no valid value (None)"),
    (T.Datapoint(None, 1.0), "k: datapoint 0 has no valid timestamp (None)"),
    (T.Datapoint(1 << 63, 1.0), f"k: datapoint 0 has no valid timestamp ({1 << 63})"),
])
def test_bad_datapoints(dp, message):
    with pytest.raises(CycloneError) as info:
        C.points_from_thrift([dp], "k")
    assert info.value.description == message
    points, errors = C.points_map_from_thrift({"k": [dp], "ok": [T.Datapoint(5, 6.0)]})
    assert errors == {"k": Error(message)}
    assert list(points) == ["ok"]


# ----------------------------------------------------------------- metadata
def test_metadata_conversions():
    md = SeriesMetadata([ArchiveArg(10, 8640), ArchiveArg(60, 1440)], 0.25, 4)
    wire = C.metadata_to_thrift(md)
    assert wire == T.SeriesMetadata([T.ArchiveArg(10, 8640), T.ArchiveArg(60, 1440)], 0.25, 4)
    assert C.metadata_from_thrift(wire) == md
    assert C.metadata_to_thrift(None) is None
    # missing xff / aggregation take the defaults
    assert C.metadata_from_thrift(T.SeriesMetadata([T.ArchiveArg(60, 10)])) == \
        SeriesMetadata([ArchiveArg(60, 10)], 0.5, 1)
    converted, errors = C.metadata_map_from_thrift({
        "ok": wire,
        "none": None,
        "empty": T.SeriesMetadata([], 0.5, 1),
        "half": T.SeriesMetadata([T.ArchiveArg(60, None)], 0.5, 1),
    })
    assert converted == {"ok": md}
    assert errors == {
        "none": Error("none: metadata has no archives"),
        "empty": Error("empty: metadata has no archives"),
        "half": Error("half: archive ArchiveArg(precision=60, points=None) lacks precision or points"),
    }
    assert C.metadata_map_to_thrift({"ok": md}) == {"ok": wire}


# ----------------------------------------------------------------- read results
def test_read_result_sends_only_non_null_points():
    rr = ReadResult(None, 100, 160, 10, np.array([1.0, np.nan, 3.0, np.nan, np.nan, 6.0]))
    wire = C.read_result_to_thrift(rr)
    assert wire == T.ReadResult(None, [T.Datapoint(100, 1.0), T.Datapoint(120, 3.0), T.Datapoint(150, 6.0)],
                                100, 160, 10)
    assert same_read(C.read_result_from_thrift(wire), rr)


def test_read_result_errors_and_empty():
    rr = ReadResult(Error("nope"))
    wire = C.read_result_to_thrift(rr)
    assert wire == T.ReadResult(T.Error("nope", False, False), [], 0, 0, 0)
    assert same_read(C.read_result_from_thrift(wire), rr)
    # an old server may leave fields out
    back = C.read_result_from_thrift(T.ReadResult())
    assert same_read(back, ReadResult())
    assert C.read_result_from_thrift(None).error == Error("missing read result")


def test_dense_values():
    v = C.dense_values(100, 150, 10, np.array([100, 130, 95, 150, 175]), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert [None if math.isnan(x) else x for x in v] == [1.0, None, None, 2.0, None]
    assert len(C.dense_values(100, 100, 10, np.array([]), np.array([]))) == 0
    assert len(C.dense_values(100, 200, 0, np.array([]), np.array([]))) == 0


def test_read_result_maps():
    results = {"a.*": {"a.b": ReadResult(None, 0, 20, 10, np.array([1.0, np.nan])),
                       "a.c": ReadResult(Error("x", True))},
               "zzz": {}}
    back = C.read_results_from_thrift(C.read_results_to_thrift(results))
    assert list(back) == ["a.*", "zzz"]
    assert back["zzz"] == {}
    for key in ("a.b", "a.c"):
        assert same_read(back["a.*"][key], results["a.*"][key])


def test_read_all_find_delete_results():
    ra = ReadAllResult(None, SeriesMetadata([ArchiveArg(60, 100)], 0.0, 2), Points([60, 120], [1.0, 2.0]))
    back = C.read_all_result_from_thrift(C.read_all_result_to_thrift(ra))
    assert back.error is None and back.metadata == ra.metadata and same_points(back.points, ra.points)
    err = ReadAllResult(Error("gone"))
    back = C.read_all_result_from_thrift(C.read_all_result_to_thrift(err))
    assert back.error == Error("gone") and back.metadata is None and len(back.points) == 0

    fr = {"a.*": FindResult(None, ["a.b", "a.c.*"]), "[": FindResult(Error("bad"), [])}
    assert C.find_results_from_thrift(C.find_results_to_thrift(fr)) == fr
    assert C.find_result_from_thrift(T.FindResult()) == FindResult(None, [])

    dr = {"a.*": DeleteResult(None, 3, 1), "b": DeleteResult(Error("x", True), 0, 0)}
    assert C.delete_results_from_thrift(C.delete_results_to_thrift(dr)) == dr
    assert C.delete_result_from_thrift(T.DeleteResult()) == DeleteResult(None, 0, 0)


def test_stats_to_thrift():
    out = C.stats_to_thrift({"a": 1, "b": 2.9, "c": True, "d": float("nan"), "e": "text",
                             "f": 1 << 70, "g": -math.inf, "h": np.int64(5), "i": np.float32(1.5)})
    assert out == {"a": 1, "b": 2, "c": 1, "f": C.I64_MAX, "g": C.I64_MIN, "h": 5, "i": 1}
    assert all(type(v) is int for v in out.values())


# ----------------------------------------------------------------- codec: bytes identical
keys = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=True, width=64)
values = st.one_of(finite, st.just(math.nan))
timestamps = st.integers(C.I64_MIN, C.I64_MAX)
point_lists = st.lists(st.tuples(timestamps, values), max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, point_lists, max_size=8), st.booleans(), st.booleans())
def test_write_args_codec_matches_generated(data, skip_buffering, local_only):
    pts = {k: Points.from_pairs(v) for k, v in data.items()}
    args = Cyclone.write_args(C.points_map_to_thrift(pts), skip_buffering, local_only)
    fast = C.encode_write_args(pts, skip_buffering, local_only)
    assert fast == encode(args) == encode(args, accelerated=False)
    back, sb, lo = C.decode_write_args(fast)
    assert (sb, lo) == (skip_buffering, local_only)
    assert list(back) == list(pts)
    for k in pts:
        assert same_points(back[k], pts[k])


def dense_strategy():
    return st.lists(st.one_of(finite, st.just(math.nan)), max_size=15).map(
        lambda vs: np.array(vs, dtype=np.float64))


errors = st.one_of(st.none(), st.builds(Error, keys, st.booleans(), st.booleans()))


@st.composite
def read_results(draw):
    step = draw(st.sampled_from([0, 1, 10, 60]))
    start = draw(st.integers(0, 2 ** 40)) * max(step, 1)
    vals = draw(dense_strategy()) if step else np.empty(0)
    return ReadResult(draw(errors), start, start + len(vals) * step, step, vals)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, st.dictionaries(keys, read_results(), max_size=4), max_size=4))
def test_read_reply_codec_matches_generated(results):
    res = Cyclone.read_result(success=C.read_results_to_thrift(results))
    fast = C.encode_read_success(results)
    assert fast == encode(res) == encode(res, accelerated=False)
    back = C.decode_read_success(fast)
    assert list(back) == list(results)
    for pattern, by_key in results.items():
        assert list(back[pattern]) == list(by_key)
        for key, rr in by_key.items():
            assert same_read(back[pattern][key], rr)


@settings(max_examples=100, deadline=None)
@given(errors,
       st.one_of(st.none(), st.builds(
           SeriesMetadata,
           st.lists(st.builds(ArchiveArg, st.integers(1, 2 ** 31 - 1), st.integers(1, 2 ** 31 - 1)),
                    min_size=1, max_size=4),
           st.floats(0, 1), st.integers(1, 8))),
       point_lists)
def test_read_all_reply_codec_matches_generated(error, metadata, pairs):
    ra = ReadAllResult(error, metadata, Points.from_pairs(pairs))
    res = Cyclone.read_all_result(success=C.read_all_result_to_thrift(ra))
    fast = C.encode_read_all_success(ra)
    assert fast == encode(res) == encode(res, accelerated=False)
    back = C.decode_read_all_success(fast)
    assert back.error == error and back.metadata == metadata and same_points(back.points, ra.points)


def test_big_write_codec_round_trip():
    rng = np.random.default_rng(0)
    pts = {f"k.{i}": Points(rng.integers(0, 2 ** 32, 10), rng.normal(size=10)) for i in range(2000)}
    fast = C.encode_write_args(pts)
    assert fast == encode(Cyclone.write_args(C.points_map_to_thrift(pts), False, False))
    back, _, _ = C.decode_write_args(fast)
    assert all(same_points(back[k], pts[k]) for k in pts)


# ----------------------------------------------------------------- codec: refusals
def _field(t: int, fid: int) -> bytes:
    return struct.pack("!bh", t, fid)


def _dp_reversed(ts: int, v: float) -> bytes:
    return _field(TType.DOUBLE, 2) + struct.pack("!d", v) + _field(TType.I64, 1) + struct.pack("!q", ts) + b"\x00"


def _write_args_with(dp_bytes: bytes, count: int = 1) -> bytes:
    return (_field(TType.MAP, 1) + struct.pack("!bbi", TType.STRING, TType.LIST, 1)
            + struct.pack("!i", 1) + b"k" + struct.pack("!bi", TType.STRUCT, count) + dp_bytes + b"\x00")


@pytest.mark.parametrize("body", [
    _write_args_with(_dp_reversed(5, 1.0)),                                            # field order
    _write_args_with(_field(TType.I64, 1) + struct.pack("!q", 5) + b"\x00" + b"\x00" * 11),  # missing value
    _write_args_with(b"\x00" * 10),                                                    # truncated
    _field(TType.I32, 9) + struct.pack("!i", 1) + b"\x00",                              # unknown field
    (_field(TType.MAP, 1) + struct.pack("!bbi", TType.STRING, TType.LIST, 2)
     + (struct.pack("!i", 1) + b"k" + struct.pack("!bi", TType.STRUCT, 0)) * 2 + b"\x00"),  # duplicate key
    _field(TType.MAP, 1) + struct.pack("!bbi", TType.STRING, TType.LIST, 0) + b"\x00" + b"junk",  # trailing
    (_field(TType.MAP, 1) + struct.pack("!bbi", TType.STRING, TType.LIST, 1)
     + struct.pack("!i", 2) + b"\xff\xfe" + struct.pack("!bi", TType.STRUCT, 0) + b"\x00"),  # bad UTF-8
])
def test_write_args_decoder_refuses_what_it_does_not_know(body):
    with pytest.raises(C.NotCanonical):
        C.decode_write_args(body)


def test_generated_decoder_reads_what_the_fast_one_refuses():
    body = _write_args_with(_dp_reversed(5, 1.5))
    args = decode(Cyclone.write_args, body)
    assert args.data == {"k": [T.Datapoint(5, 1.5)]}


def test_write_args_decode_at_offset_and_empty():
    body = C.encode_write_args({})
    assert C.decode_write_args(b"xyz" + body, 3) == ({}, False, False)
    back, _, _ = C.decode_write_args(C.encode_write_args({"a": Points.empty()}))
    assert list(back) == ["a"] and len(back["a"]) == 0


def test_read_reply_decoder_refusals():
    with pytest.raises(C.NotCanonical):  # an exception result (field 1 would be an exception struct)
        C.decode_read_success(_field(TType.STRUCT, 1) + b"\x00\x00")
    with pytest.raises(C.NotCanonical):  # no success field
        C.decode_read_success(b"\x00")
    good = C.encode_read_success({"a": {"a": ReadResult(None, 0, 10, 10, np.array([1.0]))}})
    with pytest.raises(C.NotCanonical):
        C.decode_read_success(good[:-3])
    assert same_read(C.decode_read_success(good)["a"]["a"], ReadResult(None, 0, 10, 10, np.array([1.0])))


@settings(max_examples=150, deadline=None)
@given(st.lists(keys, max_size=10, unique=True), st.dictionaries(keys, errors, max_size=5))
def test_errors_result_codec_matches_generated(all_keys, errors_):
    res = Cyclone.write_result(success=C.errors_to_thrift(errors_, all_keys))
    fast = C.encode_errors_success(errors_, all_keys)
    assert fast == encode(res) == encode(res, accelerated=False)
    expected = {k: e for k, e in errors_.items() if e is not None and e.description}
    assert C.decode_errors_success(fast) == expected
    assert C.errors_from_thrift(decode(Cyclone.write_result, fast).success) == expected


def test_errors_result_decoder_refusals():
    with pytest.raises(C.NotCanonical):
        C.decode_errors_success(b"\x00")
    good = C.encode_errors_success({"a": Error("x")}, ["b"])
    with pytest.raises(C.NotCanonical):
        C.decode_errors_success(good + b"\x00")
