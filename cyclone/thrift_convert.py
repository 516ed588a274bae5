"""Conversions between Thrift wire types (`cyclone_if.ttypes`) and `cyclone.series`.

Used by the Thrift server (`cyclone.protocols.thrift`), the Thrift client
(`cyclone.client.thrift`) and the remote store. Two layers:

1. Object conversions, `<thing>_to_thrift` / `<thing>_from_thrift`, for every
   struct and every result map of the IDL. They are exact inverses on valid
   data, except that a dense `ReadResult` (NaN gaps) travels as its non-null
   points plus start/end/step and is rebuilt dense on the other side.
   Conventions:
   - `Error`: None <-> absent. On the way in, an Error with an empty
     description means success and becomes None.
   - Error maps (`update_metadata`, `rename_series`, `write`): the Store API
     lists only failed keys. `errors_to_thrift(errors, keys)` also sends an
     empty Error for every succeeded key (the IDL promises "an Error for each
     key", and old clients index the map by key); `errors_from_thrift` drops
     the success entries again.
   - Points: numpy int64 timestamps / float64 values; NaN passes through
     (in a write it deletes that point; the store does it).
   - Bad input from the wire (a Datapoint without a timestamp, metadata
     without archives) raises `CycloneError` from the single-object
     functions; the map functions return it as a per-key error instead.

2. A numpy wire codec for the bulky messages (`write` arguments, `read` and
   `read_all` results): `list<Datapoint>` encodes as one fixed 23-byte record
   per point, so whole lists are built and parsed with `np.frombuffer` and
   no Python object per point. The codec produces exactly the bytes of the
   generated code; a decoder that meets anything it does not expect (field
   order, a missing field, an unknown field) raises `NotCanonical`, and the
   caller falls back to the generated code, which defines the semantics.
"""

from __future__ import annotations

import math
import struct
from operator import attrgetter
from typing import Any, Iterable, Mapping

import numpy as np
from thrift.Thrift import TType

from cyclone_if import ttypes as T
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

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1

# ======================================================================
# 1. object conversions
# ======================================================================


# ---------------------------------------------------------------- Error
def error_to_thrift(error: Error | None) -> T.Error | None:
    """Error -> ttypes.Error; None stays None (the field is left out)."""
    if error is None:
        return None
    return T.Error(error.description, bool(error.recoverable), bool(error.ignored))


def error_from_thrift(error: T.Error | None) -> Error | None:
    """ttypes.Error -> Error; absent or empty description (success) -> None."""
    if error is None or not error.description:
        return None
    return Error(error.description, bool(error.recoverable), bool(error.ignored))


def success_error() -> T.Error:
    """The Error sent for a key that succeeded (empty description)."""
    return T.Error("", False, False)


def errors_to_thrift(errors: Mapping[str, Error], keys: Iterable[str] = ()) -> dict[str, T.Error]:
    """A Store error map -> the wire map: every key in `keys` gets an entry,
    an empty (success) Error unless `errors` has one for it."""
    out: dict[str, T.Error] = {}
    for key in keys:
        if key not in errors:
            out[key] = success_error()
    for key, error in errors.items():
        out[key] = error_to_thrift(error) if error is not None else success_error()
    return out


def errors_from_thrift(errors: Mapping[str, T.Error] | None) -> dict[str, Error]:
    """The wire map -> a Store error map (failed keys only)."""
    out: dict[str, Error] = {}
    for key, t in (errors or {}).items():
        e = error_from_thrift(t)
        if e is not None:
            out[key] = e
    return out


# ---------------------------------------------------------------- points
_get_ts = attrgetter("timestamp")
_get_value = attrgetter("value")


def points_to_thrift(points: Points) -> list[T.Datapoint]:
    """Points -> list of Datapoint (NaN values kept: in a write they delete)."""
    Datapoint = T.Datapoint
    return [Datapoint(t, v) for t, v in zip(points.timestamps.tolist(), points.values.tolist())]


def points_from_thrift(datapoints: list[T.Datapoint] | None, key: str = "") -> Points:
    """list of Datapoint -> Points. Raises CycloneError on a datapoint with a
    missing or non-numeric timestamp/value, or a timestamp outside int64."""
    if not datapoints:
        return Points.empty()
    try:
        ts_list = list(map(_get_ts, datapoints))
        value_list = list(map(_get_value, datapoints))
        if None in ts_list or None in value_list:  # numpy would turn a None value into NaN
            raise TypeError("missing field")
        ts = np.array(ts_list, dtype=np.int64)
        values = np.array(value_list, dtype=np.float64)
    except (TypeError, ValueError, OverflowError, AttributeError):
        for i, dp in enumerate(datapoints):
            t = getattr(dp, "timestamp", None)
            v = getattr(dp, "value", None)
            if not isinstance(t, int) or isinstance(t, bool) or not I64_MIN <= t <= I64_MAX:
                raise CycloneError(f"{key}: datapoint {i} has no valid timestamp ({t!r})") from None
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise CycloneError(f"{key}: datapoint {i} has no valid value ({v!r})") from None
        raise CycloneError(f"{key}: invalid datapoints") from None
    return Points(ts, values)


def points_map_to_thrift(points_by_key: Mapping[str, Points]) -> dict[str, list[T.Datapoint]]:
    return {key: points_to_thrift(p) for key, p in points_by_key.items()}


def points_map_from_thrift(
    data: Mapping[str, list[T.Datapoint]] | None,
) -> tuple[dict[str, Points], dict[str, Error]]:
    """Wire write data -> (points by key, errors for keys that could not be converted)."""
    out: dict[str, Points] = {}
    errors: dict[str, Error] = {}
    for key, dps in (data or {}).items():
        try:
            out[key] = points_from_thrift(dps, key)
        except CycloneError as e:
            errors[key] = e.to_error()
    return out, errors


# ---------------------------------------------------------------- metadata
def archive_arg_to_thrift(arg: ArchiveArg) -> T.ArchiveArg:
    return T.ArchiveArg(int(arg.precision), int(arg.points))


def archive_arg_from_thrift(arg: T.ArchiveArg) -> ArchiveArg:
    if arg is None or not isinstance(arg.precision, int) or not isinstance(arg.points, int):
        raise CycloneError(f"archive {arg!r} lacks precision or points")
    return ArchiveArg(arg.precision, arg.points)


def metadata_to_thrift(metadata: SeriesMetadata | None) -> T.SeriesMetadata | None:
    if metadata is None:
        return None
    return T.SeriesMetadata(
        [archive_arg_to_thrift(a) for a in metadata.archive_args],
        float(metadata.x_files_factor),
        int(metadata.agg_method),
    )


def metadata_from_thrift(metadata: T.SeriesMetadata | None, key: str = "") -> SeriesMetadata:
    """ttypes.SeriesMetadata -> SeriesMetadata. Missing archives raise CycloneError;
    a missing x_files_factor / agg_method take the defaults (0.5, average)."""
    if metadata is None or not metadata.archive_args:
        raise CycloneError(f"{key}: metadata has no archives")
    try:
        archives = [archive_arg_from_thrift(a) for a in metadata.archive_args]
    except CycloneError as e:
        raise CycloneError(f"{key}: {e.description}") from None
    xff = 0.5 if metadata.x_files_factor is None else float(metadata.x_files_factor)
    agg = 1 if metadata.agg_method is None else int(metadata.agg_method)
    return SeriesMetadata(archives, xff, agg)


def metadata_map_to_thrift(metadata_by_key: Mapping[str, SeriesMetadata]) -> dict[str, T.SeriesMetadata]:
    return {key: metadata_to_thrift(m) for key, m in metadata_by_key.items()}


def metadata_map_from_thrift(
    metadata: Mapping[str, T.SeriesMetadata] | None,
) -> tuple[dict[str, SeriesMetadata], dict[str, Error]]:
    """Wire metadata map -> (metadata by key, errors for keys that could not be converted)."""
    out: dict[str, SeriesMetadata] = {}
    errors: dict[str, Error] = {}
    for key, m in (metadata or {}).items():
        try:
            out[key] = metadata_from_thrift(m, key)
        except CycloneError as e:
            errors[key] = e.to_error()
    return out, errors


# ---------------------------------------------------------------- ReadResult
def _nonnull(rr: ReadResult) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, values) of the non-null points of a dense read."""
    values = np.asarray(rr.values, dtype=np.float64)
    if rr.step == 0 or values.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    idx = np.flatnonzero(~np.isnan(values))
    return rr.start_time + idx.astype(np.int64) * rr.step, values[idx]


def read_result_to_thrift(rr: ReadResult) -> T.ReadResult:
    """Dense ReadResult -> ttypes.ReadResult whose `data` holds the non-null points."""
    ts, values = _nonnull(rr)
    return T.ReadResult(
        error=error_to_thrift(rr.error),
        data=points_to_thrift(Points(ts, values)),
        start_time=int(rr.start_time),
        end_time=int(rr.end_time),
        step=int(rr.step),
    )


def dense_values(start: int, end: int, step: int, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Dense float64 array for [start, end) at `step`, NaN except at the given points.
    A point is placed in the slot that contains it; points out of range are dropped."""
    if step <= 0 or end <= start:
        return np.empty(0, np.float64)
    n = (end - start) // step
    out = np.full(n, np.nan)
    if len(ts):
        offs = ts - start
        idx = offs // step
        ok = (offs >= 0) & (idx < n)
        out[idx[ok]] = values[ok]
    return out


def read_result_from_thrift(t: T.ReadResult | None) -> ReadResult:
    """ttypes.ReadResult -> dense ReadResult (NaN gaps), start/end/step kept."""
    if t is None:
        return ReadResult(error=Error("missing read result"))
    start = int(t.start_time or 0)
    end = int(t.end_time or 0)
    step = int(t.step or 0)
    try:
        pts = points_from_thrift(t.data)
    except CycloneError as e:
        return ReadResult(error=e.to_error(), start_time=start, end_time=end, step=step)
    return ReadResult(error_from_thrift(t.error), start, end, step,
                      dense_values(start, end, step, pts.timestamps, pts.values))


def read_results_to_thrift(
    results: Mapping[str, Mapping[str, ReadResult]],
) -> dict[str, dict[str, T.ReadResult]]:
    return {
        pattern: {key: read_result_to_thrift(rr) for key, rr in by_key.items()}
        for pattern, by_key in results.items()
    }


def read_results_from_thrift(
    results: Mapping[str, Mapping[str, T.ReadResult]] | None,
) -> dict[str, dict[str, ReadResult]]:
    return {
        pattern: {key: read_result_from_thrift(t) for key, t in (by_key or {}).items()}
        for pattern, by_key in (results or {}).items()
    }


# ---------------------------------------------------------------- ReadAllResult
def read_all_result_to_thrift(r: ReadAllResult) -> T.ReadAllResult:
    return T.ReadAllResult(
        error=error_to_thrift(r.error),
        metadata=metadata_to_thrift(r.metadata),
        data=points_to_thrift(r.points),
    )


def read_all_result_from_thrift(t: T.ReadAllResult | None) -> ReadAllResult:
    if t is None:
        return ReadAllResult(error=Error("missing read_all result"))
    error = error_from_thrift(t.error)
    metadata = None
    if t.metadata is not None and t.metadata.archive_args:
        try:
            metadata = metadata_from_thrift(t.metadata)
        except CycloneError as e:
            error = error or e.to_error()
    try:
        pts = points_from_thrift(t.data)
    except CycloneError as e:
        return ReadAllResult(error=error or e.to_error(), metadata=metadata)
    return ReadAllResult(error, metadata, pts)


# ---------------------------------------------------------------- FindResult
def find_result_to_thrift(r: FindResult) -> T.FindResult:
    return T.FindResult(error=error_to_thrift(r.error), results=list(r.results))


def find_result_from_thrift(t: T.FindResult | None) -> FindResult:
    if t is None:
        return FindResult(error=Error("missing find result"))
    return FindResult(error_from_thrift(t.error), list(t.results or []))


def find_results_to_thrift(results: Mapping[str, FindResult]) -> dict[str, T.FindResult]:
    return {pattern: find_result_to_thrift(r) for pattern, r in results.items()}


def find_results_from_thrift(results: Mapping[str, T.FindResult] | None) -> dict[str, FindResult]:
    return {pattern: find_result_from_thrift(t) for pattern, t in (results or {}).items()}


# ---------------------------------------------------------------- DeleteResult
def delete_result_to_thrift(r: DeleteResult) -> T.DeleteResult:
    return T.DeleteResult(
        error=error_to_thrift(r.error),
        disk_series_deleted=int(r.disk_series_deleted),
        buffer_series_deleted=int(r.buffer_series_deleted),
    )


def delete_result_from_thrift(t: T.DeleteResult | None) -> DeleteResult:
    if t is None:
        return DeleteResult(error=Error("missing delete result"))
    return DeleteResult(error_from_thrift(t.error), int(t.disk_series_deleted or 0),
                        int(t.buffer_series_deleted or 0))


def delete_results_to_thrift(results: Mapping[str, DeleteResult]) -> dict[str, T.DeleteResult]:
    return {pattern: delete_result_to_thrift(r) for pattern, r in results.items()}


def delete_results_from_thrift(results: Mapping[str, T.DeleteResult] | None) -> dict[str, DeleteResult]:
    return {pattern: delete_result_from_thrift(t) for pattern, t in (results or {}).items()}


# ---------------------------------------------------------------- stats
def stats_to_thrift(stats: Mapping[str, Any]) -> dict[str, int]:
    """A counters map -> map<string,i64>: values made int (floats truncated,
    bools 0/1), clamped to the i64 range; non-numeric and NaN values dropped."""
    out: dict[str, int] = {}
    for name, value in stats.items():
        if isinstance(value, (bool, np.bool_)):
            out[str(name)] = int(value)
        elif isinstance(value, (int, np.integer)):
            out[str(name)] = min(max(int(value), I64_MIN), I64_MAX)
        elif isinstance(value, (float, np.floating)):
            if math.isnan(value):
                continue
            if math.isinf(value):
                out[str(name)] = I64_MAX if value > 0 else I64_MIN
            else:
                out[str(name)] = min(max(int(value), I64_MIN), I64_MAX)
    return out


def stats_from_thrift(stats: Mapping[str, int] | None) -> dict[str, int]:
    return {str(k): int(v) for k, v in (stats or {}).items() if v is not None}


# ======================================================================
# 2. numpy wire codec (TBinaryProtocol, strict)
# ======================================================================


class NotCanonical(Exception):
    """The fast decoder met an encoding it does not handle; use the generated code."""


# One Datapoint in TBinaryProtocol: i64 field 1, double field 2, stop.
DATAPOINT_DTYPE = np.dtype([
    ("t1", "u1"), ("id1", ">i2"), ("ts", ">i8"),
    ("t2", "u1"), ("id2", ">i2"), ("v", ">f8"),
    ("stop", "u1"),
])
assert DATAPOINT_DTYPE.itemsize == 23
# the constant bytes of a record (field headers and stop); ts and value are filled in
_RECORD_TEMPLATE = np.frombuffer(
    struct.pack("!bhqbhdb", TType.I64, 1, 0, TType.DOUBLE, 2, 0.0, TType.STOP), np.uint8)

_I8 = struct.Struct("!b")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_I64 = struct.Struct("!q")
_DBL = struct.Struct("!d")
_FIELD = struct.Struct("!bh")
_LIST = struct.Struct("!bi")
_MAP = struct.Struct("!bbi")
_STOP = b"\x00"


def _records(ts: np.ndarray, values: np.ndarray) -> memoryview:
    """The wire bytes of len(ts) Datapoint structs, as a view of a fresh array."""
    rec = np.empty(len(ts), DATAPOINT_DTYPE)
    rec.view(np.uint8).reshape(-1, 23)[:] = _RECORD_TEMPLATE
    rec["ts"] = ts
    rec["v"] = values
    return memoryview(rec).cast("B")


def encode_datapoint_records(ts: np.ndarray, values: np.ndarray) -> bytes:
    """The wire bytes of len(ts) Datapoint structs (no list header)."""
    return _records(ts, values).tobytes()


def _check_records(rec: np.ndarray) -> None:
    if len(rec) and not (
        (rec["t1"] == TType.I64).all() and (rec["id1"] == 1).all()
        and (rec["t2"] == TType.DOUBLE).all() and (rec["id2"] == 2).all()
        and (rec["stop"] == 0).all()
    ):
        raise NotCanonical("datapoint fields")


def decode_datapoint_records(buf: bytes | memoryview, offset: int, count: int) -> Points:
    """Points from `count` canonical Datapoint records at `offset`; NotCanonical otherwise."""
    if count < 0 or offset + count * 23 > len(buf):
        raise NotCanonical("datapoint list overruns the message")
    rec = np.frombuffer(buf, DATAPOINT_DTYPE, count, offset)
    _check_records(rec)
    return Points(rec["ts"].astype(np.int64), rec["v"].astype(np.float64))


def _w_string(out: list, s: str) -> None:
    b = s.encode("utf-8")
    out.append(_I32.pack(len(b)))
    out.append(b)


def _w_error_field(out: list, fid: int, error: Error | None) -> None:
    if error is None:
        return
    out.append(_FIELD.pack(TType.STRUCT, fid))
    out.append(_FIELD.pack(TType.STRING, 1))
    _w_string(out, error.description)
    out.append(_FIELD.pack(TType.BOOL, 2) + (b"\x01" if error.recoverable else b"\x00"))
    out.append(_FIELD.pack(TType.BOOL, 3) + (b"\x01" if error.ignored else b"\x00"))
    out.append(_STOP)


def _w_points_list_field(out: list, fid: int, ts: np.ndarray, values: np.ndarray) -> None:
    out.append(_FIELD.pack(TType.LIST, fid) + _LIST.pack(TType.STRUCT, len(ts)))
    if len(ts):
        out.append(_records(ts, values))


def _w_i64_field(out: list, fid: int, v: int) -> None:
    out.append(_FIELD.pack(TType.I64, fid) + _I64.pack(v))


def _w_bool_field(out: list, fid: int, v: bool) -> None:
    out.append(_FIELD.pack(TType.BOOL, fid) + (b"\x01" if v else b"\x00"))


class _Reader:
    """A strict cursor over a TBinaryProtocol message body."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | memoryview, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    def _take(self, n: int) -> int:
        p = self.pos
        if p + n > len(self.buf):
            raise NotCanonical("truncated")
        self.pos = p + n
        return p

    def byte(self) -> int:
        return _I8.unpack_from(self.buf, self._take(1))[0]

    def i32(self) -> int:
        return _I32.unpack_from(self.buf, self._take(4))[0]

    def i64(self) -> int:
        return _I64.unpack_from(self.buf, self._take(8))[0]

    def double(self) -> float:
        return _DBL.unpack_from(self.buf, self._take(8))[0]

    def field(self) -> tuple[int, int]:
        """(type, id); type 0 = stop."""
        t = self.byte()
        if t == TType.STOP:
            return 0, 0
        return t, _I16.unpack_from(self.buf, self._take(2))[0]

    def string(self) -> str:
        n = self.i32()
        if n < 0:
            raise NotCanonical("negative string length")
        p = self._take(n)
        try:
            return bytes(self.buf[p:p + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise NotCanonical("string is not UTF-8") from None

    def bool_(self) -> bool:
        return self.byte() != 0

    def list_header(self, elem: int) -> int:
        t = self.byte()
        n = self.i32()
        if t != elem or n < 0:
            raise NotCanonical("list type")
        return n

    def map_header(self, ktype: int, vtype: int) -> int:
        kt = self.byte()
        vt = self.byte()
        n = self.i32()
        if n < 0 or (n and (kt != ktype or vt != vtype)):
            raise NotCanonical("map type")
        return n

    def datapoints(self) -> Points:
        n = self.list_header(TType.STRUCT)
        p = self._take(23 * n)
        return decode_datapoint_records(self.buf, p, n)

    def error_struct(self) -> Error | None:
        desc, rec, ign = None, False, False
        while True:
            t, fid = self.field()
            if t == 0:
                break
            if fid == 1 and t == TType.STRING:
                desc = self.string()
            elif fid == 2 and t == TType.BOOL:
                rec = self.bool_()
            elif fid == 3 and t == TType.BOOL:
                ign = self.bool_()
            else:
                raise NotCanonical("error field")
        if not desc:
            return None
        return Error(desc, rec, ign)

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise NotCanonical("trailing bytes")


# ---------------------------------------------------------------- write args
def _points(ts: np.ndarray, values: np.ndarray) -> Points:
    """A Points from arrays already int64/float64 of equal length (no checks: hot path)."""
    p = object.__new__(Points)
    p.timestamps = ts
    p.values = values
    return p


def encode_write_args(points_by_key: Mapping[str, Points], skip_buffering: bool = False,
                      local_only: bool = False) -> bytes:
    """The `write_args` struct bytes (what follows the message header)."""
    out: list = [_FIELD.pack(TType.MAP, 1) + _MAP.pack(TType.STRING, TType.LIST, len(points_by_key))]
    if points_by_key:
        all_points = list(points_by_key.values())
        counts = [len(p.timestamps) for p in all_points]
        if sum(counts):
            big = _records(np.concatenate([p.timestamps for p in all_points]),
                           np.concatenate([p.values for p in all_points]))
        pos = 0
        i32 = _I32.pack
        list_hdr = _LIST.pack
        append = out.append
        for key, n in zip(points_by_key, counts):
            kb = key.encode("utf-8")
            append(i32(len(kb)) + kb + list_hdr(TType.STRUCT, n))
            if n:
                end = pos + 23 * n
                append(big[pos:end])
                pos = end
    _w_bool_field(out, 2, skip_buffering)
    _w_bool_field(out, 3, local_only)
    out.append(_STOP)
    return b"".join(out)


_KEY_HEADER = struct.Struct("!i")
_LIST_HEADER = struct.Struct("!bi")


def decode_write_args(buf: bytes, pos: int = 0) -> tuple[dict[str, Points], bool, bool]:
    """(points_by_key, skip_buffering, local_only) from `write_args` bytes at `pos`
    to the end of `buf`. NotCanonical for anything the generated code should handle."""
    buf = bytes(buf)
    r = _Reader(buf, pos)
    keys: list[str] = []
    starts: list[int] = []
    counts: list[int] = []
    skip_buffering = local_only = False
    seen_data = False
    size = len(buf)
    while True:
        t, fid = r.field()
        if t == 0:
            break
        if fid == 1 and t == TType.MAP and not seen_data:
            seen_data = True
            n = r.map_header(TType.STRING, TType.LIST)
            p = r.pos
            key_len = _KEY_HEADER.unpack_from
            list_hdr = _LIST_HEADER.unpack_from
            try:
                for _ in range(n):
                    (klen,) = key_len(buf, p)
                    p += 4
                    if klen < 0 or p + klen > size:
                        raise NotCanonical("key length")
                    keys.append(buf[p:p + klen].decode("utf-8"))
                    p += klen
                    et, c = list_hdr(buf, p)
                    p += 5
                    if et != TType.STRUCT or c < 0:
                        raise NotCanonical("list type")
                    starts.append(p)
                    counts.append(c)
                    p += 23 * c
            except (struct.error, UnicodeDecodeError):
                raise NotCanonical("write_args map") from None
            if p > size:
                raise NotCanonical("truncated")
            r.pos = p
        elif fid == 2 and t == TType.BOOL:
            skip_buffering = r.bool_()
        elif fid == 3 and t == TType.BOOL:
            local_only = r.bool_()
        else:
            raise NotCanonical("write_args field")
    r.end()
    if len(set(keys)) != len(keys):
        raise NotCanonical("duplicate keys")  # the generated code defines which one wins
    total = sum(counts)
    if not total:
        return {k: Points.empty() for k in keys}, skip_buffering, local_only
    packed = b"".join([buf[a:a + 23 * c] for a, c in zip(starts, counts)])
    rec = np.frombuffer(packed, DATAPOINT_DTYPE, total)
    _check_records(rec)
    ts = rec["ts"].astype(np.int64)
    vals = rec["v"].astype(np.float64)
    out = {}
    lo = 0
    for key, c in zip(keys, counts):
        hi = lo + c
        out[key] = _points(ts[lo:hi], vals[lo:hi])
        lo = hi
    return out, skip_buffering, local_only


# ---------------------------------------------------------------- error map results
_SUCCESS_ERROR = (_FIELD.pack(TType.STRING, 1) + _I32.pack(0) + _FIELD.pack(TType.BOOL, 2) + b"\x00"
                  + _FIELD.pack(TType.BOOL, 3) + b"\x00" + _STOP)


def encode_errors_success(errors: Mapping[str, Error | None], keys: Iterable[str] = ()) -> bytes:
    """The `<method>_result` struct bytes of a successful map<string, Error> call
    (write, update_metadata, rename_series): the same bytes as the generated code
    writes for `errors_to_thrift(errors, keys)`."""
    entries: list = []
    append = entries.append
    i32 = _I32.pack
    for key in keys:
        if key not in errors:
            kb = key.encode("utf-8")
            append(i32(len(kb)) + kb + _SUCCESS_ERROR)
    n = len(entries) + len(errors)
    for key, error in errors.items():
        kb = key.encode("utf-8")
        if error is None:
            append(i32(len(kb)) + kb + _SUCCESS_ERROR)
            continue
        desc = error.description.encode("utf-8")
        append(i32(len(kb)) + kb + _FIELD.pack(TType.STRING, 1) + i32(len(desc)) + desc
               + _FIELD.pack(TType.BOOL, 2) + (b"\x01" if error.recoverable else b"\x00")
               + _FIELD.pack(TType.BOOL, 3) + (b"\x01" if error.ignored else b"\x00") + _STOP)
    return (_FIELD.pack(TType.MAP, 0) + _MAP.pack(TType.STRING, TType.STRUCT, n)
            + b"".join(entries) + _STOP)


def decode_errors_success(buf: bytes, pos: int = 0) -> dict[str, Error]:
    """The failed keys of a map<string, Error> result (success entries dropped);
    NotCanonical for anything else (an exception reply, an unexpected field)."""
    buf = bytes(buf)
    r = _Reader(buf, pos)
    t, fid = r.field()
    if t != TType.MAP or fid != 0:
        raise NotCanonical("result field")
    n = r.map_header(TType.STRING, TType.STRUCT)
    out: dict[str, Error] = {}
    ok = _SUCCESS_ERROR
    ok_len = len(ok)
    key_len = _KEY_HEADER.unpack_from
    size = len(buf)
    p = r.pos
    try:
        for _ in range(n):
            (klen,) = key_len(buf, p)
            kstart = p + 4
            kend = kstart + klen
            if klen < 0 or kend > size:
                raise NotCanonical("key length")
            if buf.startswith(ok, kend):  # the common case: success, skipped unread
                p = kend + ok_len
                continue
            key = buf[kstart:kend].decode("utf-8")
            r.pos = kend
            error = r.error_struct()
            p = r.pos
            if error is not None:
                out[key] = error
    except (struct.error, UnicodeDecodeError):
        raise NotCanonical("error map") from None
    r.pos = p
    if r.field()[0] != 0:
        raise NotCanonical("result trailing field")
    r.end()
    return out


# ---------------------------------------------------------------- read result
def read_success_chunks(results: Mapping[str, Mapping[str, ReadResult]]) -> list:
    """The `read_result` struct bytes for a successful call (field 0 = the map), as a
    list of bytes-like chunks: join them (with any header) in one copy."""
    # the points of every series are encoded in one numpy pass, then sliced
    nonnull = [[_nonnull(rr) for rr in by_key.values()] for by_key in results.values()]
    flat = [tv for per_pattern in nonnull for tv in per_pattern]
    total = sum(len(t) for t, _v in flat)
    big = _records(np.concatenate([t for t, _v in flat]), np.concatenate([v for _t, v in flat])) \
        if total else memoryview(b"")
    out: list = [_FIELD.pack(TType.MAP, 0) + _MAP.pack(TType.STRING, TType.MAP, len(results))]
    append = out.append
    pos = 0
    list_header = _FIELD.pack(TType.LIST, 2)
    for (pattern, by_key), per_pattern in zip(results.items(), nonnull):
        _w_string(out, pattern)
        append(_MAP.pack(TType.STRING, TType.STRUCT, len(by_key)))
        for (key, rr), (ts, _v) in zip(by_key.items(), per_pattern):
            _w_string(out, key)
            _w_error_field(out, 1, rr.error)
            n = len(ts)
            append(list_header + _LIST.pack(TType.STRUCT, n))
            if n:
                end = pos + 23 * n
                append(big[pos:end])
                pos = end
            append(_FIELD.pack(TType.I64, 4) + _I64.pack(int(rr.start_time))
                   + _FIELD.pack(TType.I64, 5) + _I64.pack(int(rr.end_time))
                   + _FIELD.pack(TType.I64, 6) + _I64.pack(int(rr.step)) + _STOP)
    append(_STOP)
    return out


def encode_read_success(results: Mapping[str, Mapping[str, ReadResult]], prefix: bytes = b"") -> bytes:
    """The `read_result` struct bytes for a successful call (field 0 = the map),
    after `prefix` (e.g. the message header, saving a copy of a big reply)."""
    return b"".join([prefix, *read_success_chunks(results)])


def _r_read_result(r: _Reader) -> ReadResult:
    error = None
    pts = None
    start = end = step = 0
    while True:
        t, fid = r.field()
        if t == 0:
            break
        if fid == 1 and t == TType.STRUCT:
            error = r.error_struct()
        elif fid == 2 and t == TType.LIST:
            pts = r.datapoints()
        elif fid == 4 and t == TType.I64:
            start = r.i64()
        elif fid == 5 and t == TType.I64:
            end = r.i64()
        elif fid == 6 and t == TType.I64:
            step = r.i64()
        else:
            raise NotCanonical("ReadResult field")
    if pts is None:
        return ReadResult(error, start, end, step, dense_values(start, end, step, np.empty(0, np.int64),
                                                               np.empty(0)))
    return ReadResult(error, start, end, step, dense_values(start, end, step, pts.timestamps, pts.values))


def decode_read_success(buf: bytes | memoryview, pos: int = 0) -> dict[str, dict[str, ReadResult]]:
    """The read results from `read_result` struct bytes; NotCanonical otherwise
    (including an exception reply or a missing success field)."""
    r = _Reader(buf, pos)
    t, fid = r.field()
    if t != TType.MAP or fid != 0:
        raise NotCanonical("read_result field")
    results: dict[str, dict[str, ReadResult]] = {}
    for _ in range(r.map_header(TType.STRING, TType.MAP)):
        pattern = r.string()
        by_key: dict[str, ReadResult] = {}
        for _ in range(r.map_header(TType.STRING, TType.STRUCT)):
            key = r.string()
            by_key[key] = _r_read_result(r)
        results[pattern] = by_key
    if r.field()[0] != 0:
        raise NotCanonical("read_result trailing field")
    r.end()
    return results


# ---------------------------------------------------------------- read_all result
def encode_read_all_success(result: ReadAllResult) -> bytes:
    """The `read_all_result` struct bytes for a successful call."""
    out: list = [_FIELD.pack(TType.STRUCT, 0)]
    _w_error_field(out, 1, result.error)
    md = result.metadata
    if md is not None:
        out.append(_FIELD.pack(TType.STRUCT, 2))
        out.append(_FIELD.pack(TType.LIST, 1) + _LIST.pack(TType.STRUCT, len(md.archive_args)))
        for a in md.archive_args:
            out.append(_FIELD.pack(TType.I32, 1) + _I32.pack(a.precision)
                       + _FIELD.pack(TType.I32, 2) + _I32.pack(a.points) + _STOP)
        out.append(_FIELD.pack(TType.DOUBLE, 2) + _DBL.pack(md.x_files_factor))
        out.append(_FIELD.pack(TType.I32, 3) + _I32.pack(md.agg_method))
        out.append(_STOP)
    _w_points_list_field(out, 3, result.points.timestamps, result.points.values)
    out.append(_STOP)
    out.append(_STOP)
    return b"".join(out)


def decode_read_all_success(buf: bytes | memoryview, pos: int = 0) -> ReadAllResult:
    r = _Reader(buf, pos)
    t, fid = r.field()
    if t != TType.STRUCT or fid != 0:
        raise NotCanonical("read_all_result field")
    error = None
    metadata = None
    pts = Points.empty()
    while True:
        t, fid = r.field()
        if t == 0:
            break
        if fid == 1 and t == TType.STRUCT:
            error = r.error_struct()
        elif fid == 2 and t == TType.STRUCT:
            archives: list[ArchiveArg] = []
            xff, agg = 0.5, 1
            while True:
                t2, f2 = r.field()
                if t2 == 0:
                    break
                if f2 == 1 and t2 == TType.LIST:
                    for _ in range(r.list_header(TType.STRUCT)):
                        if r.field() != (TType.I32, 1):
                            raise NotCanonical("ArchiveArg")
                        prec = r.i32()
                        if r.field() != (TType.I32, 2):
                            raise NotCanonical("ArchiveArg")
                        npts = r.i32()
                        if r.field()[0] != 0:
                            raise NotCanonical("ArchiveArg")
                        archives.append(ArchiveArg(prec, npts))
                elif f2 == 2 and t2 == TType.DOUBLE:
                    xff = r.double()
                elif f2 == 3 and t2 == TType.I32:
                    agg = r.i32()
                else:
                    raise NotCanonical("SeriesMetadata field")
            metadata = SeriesMetadata(archives, xff, agg) if archives else None
        elif fid == 3 and t == TType.LIST:
            pts = r.datapoints()
        else:
            raise NotCanonical("ReadAllResult field")
    if r.field()[0] != 0:
        raise NotCanonical("read_all_result trailing field")
    r.end()
    return ReadAllResult(error, metadata, pts)
