"""The whisper file format: bytes and arithmetic, nothing else.

This module owns reading and writing whisper files (the format of the PyPI
``whisper`` 1.1.x package, byte for byte): the header, archive selection,
point placement in the ring buffers, propagation (aggregation with
xFilesFactor) into lower-resolution archives, fetch, merge, diff, resize,
point deletion and corruption checks. It knows nothing about keys,
directories, caches or locking; callers serialise writers of one file.

Two layers:

* whisper-compatible path functions with whisper's names, signatures,
  return shapes and exceptions (``create``, ``info``, ``update``,
  ``update_many``, ``fetch``, ``merge``, ``diff``, ``setAggregationMethod``,
  ``setXFilesFactor``, ``validateArchiveList``, ``parseRetentionDef``), so
  code written for ``whisper`` can swap in ``cyclone.store.whisper``;
* file-descriptor functions for the server (``read_header``, ``create_fd``,
  ``update_many_fd``, ``update_fd``, ``fetch_fd``, ``read_archive_fd``,
  ``read_all_fd``, ``delete_points_fd``, ``resample_fd``) that take an open
  fd plus a parsed, cacheable :class:`Header`, use ``os.pread``/``os.pwrite``
  only, and work on numpy arrays (one positioned write per contiguous run,
  vectorised aggregation).

Behaviour reproduced from whisper 1.1.10 (see
``reference/whisper-format.md``), including its quirks: newest timestamp
wins within an interval and the first of identical timestamps wins in
``update_many``; the base interval of an empty archive is the start of the
first run written; propagation to an empty lower archive places first the
interval that Python's ``set`` iteration yields first (and, like whisper,
re-reads the base per point when interval 0 is involved); ``average``/
``sum``/``avg_zero`` add left to right exactly like Python 3.11's ``sum``
(3.12's compensated ``sum`` would change whisper's own results);
``max``/``min``/``absmax``/``absmin`` return the first extreme in time
order, with Python's NaN ordering; fetch over more than an archive's
retention returns the wrapped number of values; ``merge`` re-propagates
each archive it copies (the reference page says it does not; the code
does). The differential tests in ``tests/test_whisper_compat.py`` hold us
to byte-identical files.

Deliberate differences (whisper would corrupt or crash):

* ``create`` validates the aggregation method and xFilesFactor (NaN is
  refused) before touching the filesystem; whisper leaves an empty file
  behind when they are bad. An archive with 0 points or 0 seconds per point
  is refused. ``aggregationMethod`` may also be given as an id (1-8).
* When one write batch holds more contiguous intervals for an archive than
  the archive has slots (only possible with far-future timestamps), whisper
  1.1.10 writes past the archive's end into the next archive (or grows the
  file); we keep ring-buffer semantics (the newest intervals win) and never
  write outside the archive.
* Timestamps whose interval is outside the uint32 range raise
  ``ValueError`` before anything is written (whisper raises
  ``struct.error`` half way).
* Truncated or inconsistent files raise :class:`CorruptWhisperFile` (naming
  the file) instead of returning short or garbage results; the fd-level
  calls also refuse a file shorter than its (cached) header says.

Beyond whisper: ``delete_points_fd`` (clears points, recomputes the lower
archives; never clears slot 0 of a non-empty archive, which would make the
whole archive look empty, but turns the ring instead) and ``resize`` /
``resample_fd`` (new layout, values of matching resolutions kept exactly).
"""

from __future__ import annotations

import functools
import operator
import os
import re
import struct
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

__all__ = [
    "WhisperException", "InvalidConfiguration", "InvalidAggregationMethod",
    "InvalidTimeInterval", "InvalidXFilesFactor", "TimestampNotCovered",
    "CorruptWhisperFile",
    "ArchiveInfo", "Header", "POINT_DTYPE",
    "aggregationTypeToMethod", "aggregationMethodToType", "aggregationMethods",
    "parseRetentionDef", "validateArchiveList", "create", "info", "update",
    "update_many", "fetch", "setAggregationMethod", "setXFilesFactor", "merge",
    "diff", "resize",
    "read_header", "build_header", "create_fd", "create_with_points_fd", "update_many_fd",
    "update_fd",
    "fetch_fd", "read_archive_fd", "read_all_fd", "delete_points_fd",
    "resample_fd", "aggregation_id",
]

# --------------------------------------------------------------------------
# format constants
# --------------------------------------------------------------------------

POINT_DTYPE = np.dtype([("t", ">u4"), ("v", ">f8")])
POINT_SIZE = 12
METADATA_SIZE = 16
ARCHIVE_INFO_SIZE = 12
_META = struct.Struct("!2LfL")
_ARCHIVE_INFO = struct.Struct("!3L")
_POINT = struct.Struct("!Ld")
_U32_MAX = 0xFFFFFFFF
_EMPTY_POINT = b"\x00" * POINT_SIZE
# one pread of this many bytes holds the header of any file with <= 20 archives
_HEADER_READ = METADATA_SIZE + 20 * ARCHIVE_INFO_SIZE

aggregationTypeToMethod: dict[int, str] = {
    1: "average",
    2: "sum",
    3: "last",
    4: "max",
    5: "min",
    6: "avg_zero",
    7: "absmax",
    8: "absmin",
}
aggregationMethodToType: dict[str, int] = {v: k for k, v in aggregationTypeToMethod.items()}
aggregationMethods = aggregationTypeToMethod.values()

_UNITS = ("seconds", "minutes", "hours", "days", "weeks", "years")
UnitMultipliers: dict[str, int] = {
    "seconds": 1,
    "minutes": 60,
    "hours": 3600,
    "days": 86400,
    "weeks": 86400 * 7,
    "years": 86400 * 365,
}
_NUM_UNIT = re.compile(r"^(\d+)([a-z]+)$")


# --------------------------------------------------------------------------
# exceptions (whisper's names and hierarchy)
# --------------------------------------------------------------------------

class WhisperException(Exception):
    """Base class for whisper exceptions."""


class InvalidConfiguration(WhisperException):
    """Invalid configuration."""


class InvalidAggregationMethod(WhisperException):
    """Invalid aggregation method."""


class InvalidTimeInterval(WhisperException):
    """Invalid time interval."""


class InvalidXFilesFactor(WhisperException):
    """Invalid xFilesFactor."""


class TimestampNotCovered(WhisperException):
    """Timestamp not covered by any archives in this database."""


class CorruptWhisperFile(WhisperException):
    """A truncated or inconsistent whisper file.

    Constructed like whisper's: ``CorruptWhisperFile(error, path)``; ``str()``
    is ``"<error> (<path>)"`` so it always names the file. ``reason`` is an
    alias of ``error``.
    """

    def __init__(self, error: str, path: str) -> None:
        Exception.__init__(self, error)
        self.error = error
        self.path = path

    @property
    def reason(self) -> str:
        return self.error

    def __repr__(self) -> str:
        return "<CorruptWhisperFile[%s] %s>" % (self.path, self.error)

    def __str__(self) -> str:
        return "%s (%s)" % (self.error, self.path)


# --------------------------------------------------------------------------
# header objects
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ArchiveInfo:
    """One archive: absolute byte offset of its first point, resolution, slots."""

    offset: int
    seconds_per_point: int
    points: int

    @property
    def retention(self) -> int:
        return self.seconds_per_point * self.points

    @property
    def size(self) -> int:
        return self.points * POINT_SIZE


@dataclass(frozen=True)
class Header:
    """A parsed whisper header. Immutable, so it can be cached per file."""

    aggregation_method: int
    max_retention: int
    x_files_factor: float
    archives: tuple[ArchiveInfo, ...]

    @property
    def file_size(self) -> int:
        """Expected byte length of the file."""
        last = self.archives[-1]
        return last.offset + last.size

    @property
    def header_size(self) -> int:
        return METADATA_SIZE + ARCHIVE_INFO_SIZE * len(self.archives)

    @property
    def aggregation_name(self) -> str:
        return aggregationTypeToMethod[self.aggregation_method]

    def archive_list(self) -> list[tuple[int, int]]:
        """[(seconds_per_point, points), ...] as given to ``create``."""
        return [(a.seconds_per_point, a.points) for a in self.archives]

    def to_bytes(self) -> bytes:
        """The exact header bytes."""
        out = [_META.pack(self.aggregation_method, self.max_retention,
                          self.x_files_factor, len(self.archives))]
        out += [_ARCHIVE_INFO.pack(a.offset, a.seconds_per_point, a.points) for a in self.archives]
        return b"".join(out)

    def info_dict(self) -> dict[str, Any]:
        """The dict whisper's ``info()`` returns."""
        return {
            "aggregationMethod": aggregationTypeToMethod[self.aggregation_method],
            "maxRetention": self.max_retention,
            "xFilesFactor": self.x_files_factor,
            "archives": [
                {
                    "offset": a.offset,
                    "secondsPerPoint": a.seconds_per_point,
                    "points": a.points,
                    "retention": a.retention,
                    "size": a.size,
                }
                for a in self.archives
            ],
        }


# --------------------------------------------------------------------------
# retention definitions and archive-list validation
# --------------------------------------------------------------------------

def _unit(s: str) -> str:
    for name in _UNITS:
        if name.startswith(s):
            return name
    raise ValueError("Invalid unit '%s'" % s)


def parseRetentionDef(retentionDef: str) -> tuple[int, int]:
    """``"60:1440"``, ``"1m:1d"``, ``"1h:5y"`` -> (seconds_per_point, points).

    Units s, m(in), h, d, w, y (prefix match, y = 365 days); a bare number
    of points is a count, a number with a unit is a duration.
    """
    try:
        precision, points = retentionDef.strip().split(":", 1)
    except ValueError:
        raise ValueError("Invalid retention definition '%s'" % retentionDef)

    if precision.isdigit():
        seconds = int(precision)
    else:
        match = _NUM_UNIT.match(precision)
        if not match:
            raise ValueError("Invalid precision specification '%s'" % precision)
        seconds = int(match.group(1)) * UnitMultipliers[_unit(match.group(2))]

    if points.isdigit():
        count = int(points)
    else:
        match = _NUM_UNIT.match(points)
        if not match:
            raise ValueError("Invalid retention specification '%s'" % points)
        count = int(match.group(1)) * UnitMultipliers[_unit(match.group(2))] // seconds
    return (seconds, count)


def validateArchiveList(archiveList: list) -> None:
    """Raise InvalidConfiguration unless archiveList is a valid layout.

    Like whisper, sorts ``archiveList`` in place by precision. Rules: at
    least one archive; no two with the same precision; each precision
    divides the next; each lower archive retains strictly longer; each
    archive holds at least next.precision / precision points. Stricter than
    whisper: precision and points must be positive.
    """
    if not archiveList:
        raise InvalidConfiguration("You must specify at least one archive configuration!")

    archiveList.sort(key=lambda a: a[0])

    for i, archive in enumerate(archiveList):
        if archive[0] <= 0 or archive[1] <= 0:
            raise InvalidConfiguration(
                "Archive precision and points must be positive (archive%d: %s)" % (i, archive))
        if i == len(archiveList) - 1:
            break
        nxt = archiveList[i + 1]
        if not archive[0] < nxt[0]:
            raise InvalidConfiguration(
                "A Whisper database may not be configured having "
                "two archives with the same precision (archive%d: %s, archive%d: %s)" %
                (i, archive, i + 1, nxt))
        if nxt[0] % archive[0] != 0:
            raise InvalidConfiguration(
                "Higher precision archives' precision "
                "must evenly divide all lower precision archives' precision "
                "(archive%d: %s, archive%d: %s)" % (i, archive[0], i + 1, nxt[0]))
        retention = archive[0] * archive[1]
        next_retention = nxt[0] * nxt[1]
        if not next_retention > retention:
            raise InvalidConfiguration(
                "Lower precision archives must cover "
                "larger time intervals than higher precision archives "
                "(archive%d: %s seconds, archive%d: %s seconds)" %
                (i, retention, i + 1, next_retention))
        per_consolidation = nxt[0] // archive[0]
        if not archive[1] >= per_consolidation:
            raise InvalidConfiguration(
                "Each archive must have at least enough points "
                "to consolidate to the next archive (archive%d consolidates %d of "
                "archive%d's points but it has only %d total points)" %
                (i + 1, per_consolidation, i, archive[1]))


def aggregation_id(method: int | str) -> int:
    """Aggregation id (1..8) of a method given by name or id."""
    if isinstance(method, str):
        try:
            return aggregationMethodToType[method]
        except KeyError:
            raise InvalidAggregationMethod("Unrecognized aggregation method: %s" % method)
    if isinstance(method, (int, np.integer)) and not isinstance(method, bool) \
            and int(method) in aggregationTypeToMethod:
        return int(method)
    raise InvalidAggregationMethod("Unrecognized aggregation method: %s" % (method,))


def _check_xff(xff: Any) -> float:
    try:
        value = float(xff)
    except ValueError:
        raise InvalidXFilesFactor("Invalid xFilesFactor %s, not a float" % xff)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise InvalidXFilesFactor("Invalid xFilesFactor %s, not between 0 and 1" % xff)
    return value


def _f32(x: float) -> float:
    """x as stored in the header (float32), read back as a Python float."""
    return struct.unpack("!f", struct.pack("!f", x))[0]


def build_header(archive_list: Iterable[Sequence[int]], x_files_factor: float,
                 aggregation_method: int | str) -> tuple[Header, bytes]:
    """Validate a layout like ``create`` and return (Header, exact header bytes)."""
    archives = [(int(p), int(n)) for p, n in archive_list]
    validateArchiveList(archives)
    agg = aggregation_id(aggregation_method)
    xff = _check_xff(x_files_factor)
    for spp, pts in archives:
        if spp > _U32_MAX or pts > _U32_MAX:
            raise InvalidConfiguration("Archive (%d, %d) does not fit the format" % (spp, pts))
    max_retention = max(spp * pts for spp, pts in archives)
    offset = METADATA_SIZE + ARCHIVE_INFO_SIZE * len(archives)
    infos = []
    for spp, pts in archives:
        infos.append(ArchiveInfo(offset, spp, pts))
        offset += pts * POINT_SIZE
    if max_retention > _U32_MAX or offset > (1 << 62):
        raise InvalidConfiguration("Archive layout too large for the format")
    header = Header(agg, max_retention, _f32(xff), tuple(infos))
    return header, header.to_bytes()


# --------------------------------------------------------------------------
# low-level I/O helpers
# --------------------------------------------------------------------------

def _fd_name(fd: int) -> str:
    try:
        return os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return "<fd %d>" % fd


def _pread(fd: int, n: int, offset: int, what: str) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        raise CorruptWhisperFile("%s: wanted %d bytes at offset %d, file has %d there (truncated?)"
                                 % (what, n, offset, len(data)), _fd_name(fd))
    return data


def _read_base(fd: int, a: ArchiveInfo) -> int:
    """Timestamp stored in slot 0 of an archive (0 = archive never written)."""
    data = os.pread(fd, 4, a.offset)
    if len(data) != 4:
        raise CorruptWhisperFile("Unable to read base datapoint (truncated archive at %d)"
                                 % a.offset, _fd_name(fd))
    return int.from_bytes(data, "big")


def _read_archive(fd: int, a: ArchiveInfo) -> np.ndarray:
    return np.frombuffer(_pread(fd, a.size, a.offset, "archive"), dtype=POINT_DTYPE)


def _read_ring(fd: int, a: ArchiveInfo, slot: int, count: int) -> np.ndarray:
    """`count` (<= points) consecutive slots starting at `slot`, wrapping."""
    end = slot + count
    if end <= a.points:
        data = _pread(fd, count * POINT_SIZE, a.offset + slot * POINT_SIZE, "datapoints")
    else:
        data = (_pread(fd, (a.points - slot) * POINT_SIZE, a.offset + slot * POINT_SIZE, "datapoints")
                + _pread(fd, (end - a.points) * POINT_SIZE, a.offset, "datapoints"))
    return np.frombuffer(data, dtype=POINT_DTYPE)


_GATHER_GAP = 256  # slots (3 KB): closer wanted slots share one read
_GATHER_READS = 16  # more separate stretches than this: read the whole archive


def _gather(fd: int, a: ArchiveInfo, first: int, rel: np.ndarray) -> np.ndarray:
    """Entries at unwrapped slots ``first + rel`` (rel >= 0, ascending): one pread per
    stretch of wanted slots (two if it wraps), or one of the whole archive."""
    n = len(rel)
    span = int(rel[-1]) + 1
    if span <= a.points and span <= n + _GATHER_GAP:
        return _read_ring(fd, a, first % a.points, span)[rel]
    if span <= a.points * 2:
        cut = np.flatnonzero(rel[1:] - rel[:-1] > _GATHER_GAP) + 1
        if len(cut) < _GATHER_READS:
            bounds = [0, *cut.tolist(), n]
            parts = []
            for s, e in zip(bounds[:-1], bounds[1:]):
                r0 = int(rel[s])
                length = int(rel[e - 1]) - r0 + 1
                if length > a.points:
                    break
                parts.append(_read_ring(fd, a, (first + r0) % a.points, length)[rel[s:e] - r0])
            else:
                return np.concatenate(parts) if len(parts) > 1 else parts[0]
    return _read_archive(fd, a)[(first + rel) % a.points]


def _write_ring(fd: int, a: ArchiveInfo, slot: int, buf: Any, count: int) -> None:
    """Write `count` packed points starting at `slot`, splitting at the archive end."""
    first = a.points - slot
    if count <= first:
        os.pwrite(fd, buf, a.offset + slot * POINT_SIZE)
    else:
        mv = memoryview(buf).cast("B")
        os.pwrite(fd, mv[: first * POINT_SIZE], a.offset + slot * POINT_SIZE)
        os.pwrite(fd, mv[first * POINT_SIZE:], a.offset)


# below this many points, Python lists beat numpy's per-call overhead
SMALL_BATCH = 32


def strictly_ascending(ts: np.ndarray) -> bool:
    """True if every timestamp is greater than the one before it."""
    if len(ts) <= SMALL_BATCH:
        tl = ts.tolist()
        return all(map(operator.lt, tl, tl[1:]))
    return bool((ts[1:] > ts[:-1]).all())


_RUN_PACKERS: dict[int, struct.Struct] = {}


def _pack_run(aligned: list[int], vals: list[float]) -> bytes:
    """Big-endian (timestamp, value) records of a short run."""
    n = len(aligned)
    packer = _RUN_PACKERS.get(n)
    if packer is None:
        packer = _RUN_PACKERS[n] = struct.Struct("!" + "Ld" * n)
    flat = [0] * (2 * n)
    flat[0::2] = aligned
    flat[1::2] = vals
    return packer.pack(*flat)


def _last_per_interval(ts: np.ndarray, vals: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Aligned intervals of chronological points; within an interval the last
    point (newest; for equal stamps the first given) wins."""
    aligned = ts - ts % step
    if len(aligned) > 1:
        keep = aligned[:-1] != aligned[1:]
        if not keep.all():
            keep = np.append(keep, True)
            aligned = aligned[keep]
            vals = vals[keep]
    return aligned, vals


def _last_per_interval_small(ts: np.ndarray, vals: np.ndarray, step: int) -> tuple[list[int], list[float]]:
    """_last_per_interval for a few points, as Python lists."""
    al = [t - t % step for t in ts.tolist()]
    vl = vals.tolist()
    if not all(map(operator.lt, al, al[1:])):
        last = [i for i in range(len(al) - 1) if al[i] != al[i + 1]]
        last.append(len(al) - 1)
        al = [al[i] for i in last]
        vl = [vl[i] for i in last]
    return al, vl


def _pack(ts: np.ndarray, vals: np.ndarray) -> np.ndarray:
    rec = np.empty(len(ts), dtype=POINT_DTYPE)
    rec["t"] = ts
    rec["v"] = vals
    return rec


# --------------------------------------------------------------------------
# header reading
# --------------------------------------------------------------------------

_HEADER_CACHE: dict[bytes, Header] = {}
_HEADER_CACHE_MAX = 4096


def _parse_header(data: bytes, size: int, path: str) -> Header:
    if len(data) < METADATA_SIZE:
        raise CorruptWhisperFile("Unable to read header: truncated header (%d bytes)" % len(data), path)
    agg, max_retention, xff, count = _META.unpack_from(data, 0)
    if agg not in aggregationTypeToMethod:
        raise CorruptWhisperFile("Unable to read header: unknown aggregation method id %d" % agg, path)
    if not 0.0 <= xff <= 1.0:
        raise CorruptWhisperFile("Unable to read header: xFilesFactor %r outside [0, 1]" % xff, path)
    if count == 0:
        raise CorruptWhisperFile("Unable to read header: no archives", path)
    header_size = METADATA_SIZE + ARCHIVE_INFO_SIZE * count
    if len(data) < header_size:
        raise CorruptWhisperFile("Unable to read archive metadata: truncated header "
                                 "(%d archives need %d bytes, file has %d)"
                                 % (count, header_size, size), path)
    archives = []
    offset = header_size
    prev = None
    for i in range(count):
        off, spp, pts = _ARCHIVE_INFO.unpack_from(data, METADATA_SIZE + ARCHIVE_INFO_SIZE * i)
        if spp == 0 or pts == 0:
            raise CorruptWhisperFile("archive%d has %d seconds per point and %d points"
                                     % (i, spp, pts), path)
        if off != offset:
            raise CorruptWhisperFile("archive%d offset %d inconsistent (expected %d)"
                                     % (i, off, offset), path)
        if prev is not None:
            if spp <= prev.seconds_per_point or spp * pts <= prev.retention:
                raise CorruptWhisperFile("archive%d (%d:%d) not coarser and longer than archive%d"
                                         % (i, spp, pts, i - 1), path)
            if prev.points < spp // prev.seconds_per_point:
                raise CorruptWhisperFile("archive%d has fewer points than one archive%d interval"
                                         % (i - 1, i), path)
        prev = ArchiveInfo(off, spp, pts)
        archives.append(prev)
        offset += pts * POINT_SIZE
    if size < offset:
        raise CorruptWhisperFile("truncated archive: file is %d bytes, archives need %d"
                                 % (size, offset), path)
    return Header(agg, max_retention, xff, tuple(archives))


def read_header(fd: int, path: str = "") -> Header:
    """Parse and validate the header of an open whisper file (one pread + fstat).

    Raises CorruptWhisperFile naming `path` (or the fd's file) on a truncated
    header, unknown aggregation id, xFilesFactor outside [0, 1] or NaN,
    inconsistent archive offsets/sizes, or a file shorter than its archives.
    """
    size = os.fstat(fd).st_size
    data = os.pread(fd, _HEADER_READ, 0)
    if len(data) >= METADATA_SIZE:
        count = int.from_bytes(data[12:16], "big")
        need = METADATA_SIZE + ARCHIVE_INFO_SIZE * count
        if need <= len(data):
            data = data[:need]
        elif need <= size:
            data = os.pread(fd, need, 0)
    header = _HEADER_CACHE.get(data)
    if header is not None and size >= header.file_size:
        return header
    header = _parse_header(data, size, path or _fd_name(fd))
    if len(_HEADER_CACHE) >= _HEADER_CACHE_MAX:
        _HEADER_CACHE.clear()
    _HEADER_CACHE[data] = header
    return header


# --------------------------------------------------------------------------
# aggregation (vectorised, bit-identical to whisper.aggregate on Python 3.11)
# --------------------------------------------------------------------------

def _seqsum(v: np.ndarray) -> np.ndarray:
    """Row sums of v (m, k) added strictly left to right from 0, like Python's sum()."""
    m, k = v.shape
    if k <= 16 and m >= 64:
        s = v[:, 0] + 0.0  # 0 + x: turns -0.0 into 0.0 like sum() (which starts at int 0)
        for j in range(1, k):
            s += v[:, j]
        return s
    # accumulate is sequential by definition; + 0.0 maps the -0.0 a run of -0.0s
    # leaves to the 0.0 sum() gives (other partial sums agree exactly)
    return np.add.accumulate(v, axis=1)[:, -1] + 0.0


def _python_rows(method: int, v: np.ndarray, known: np.ndarray | None, out: np.ndarray, k: int) -> None:
    """Redo rows holding a known NaN with Python's max/min (NaN breaks ordering)."""
    nan = v != v
    if known is not None:
        nan &= known
    rows = nan.any(axis=1)
    if rows.any():
        for r in np.flatnonzero(rows).tolist():
            vals = v[r] if known is None else v[r][known[r]]
            out[r] = _aggregate_one(method, vals.tolist(), k)


def _aggregate_full(method: int, v: np.ndarray, k: int) -> np.ndarray:
    """Aggregate each row of v (m, k) when every slot is known."""
    with np.errstate(all="ignore"):
        if method == 1 or method == 6:
            return _seqsum(v) / float(k)
        if method == 2:
            return _seqsum(v)
    if method == 3:
        return v[:, -1].copy()
    m = v.shape[0]
    if method == 4:
        idx = v.argmax(axis=1)
    elif method == 5:
        idx = v.argmin(axis=1)
    elif method == 7:
        idx = np.abs(v).argmax(axis=1)
    elif method == 8:
        idx = np.abs(v).argmin(axis=1)
    else:
        raise InvalidAggregationMethod("Unrecognized aggregation method %s" % method)
    out = v.ravel()[idx + np.arange(0, m * k, k)]
    _python_rows(method, v, None, out, k)
    return out


def _aggregate(method: int, v: np.ndarray, known: np.ndarray, cnt: np.ndarray, k: int) -> np.ndarray:
    """Aggregate each row of v (m, k) over its `known` slots (at least one per row)."""
    if method == 1 or method == 2 or method == 6:
        w = v.copy()
        w[~known] = 0.0
        with np.errstate(all="ignore"):
            s = _seqsum(w)
            if method == 1:
                return s / cnt
            if method == 2:
                return s
            return s / float(k)
    m = v.shape[0]
    base = np.arange(0, m * k, k)
    if method == 3:
        return v.ravel()[base + (k - 1) - known[:, ::-1].argmax(axis=1)]
    if method == 4:
        w = v.copy()
        w[~known] = -np.inf  # a gap is only picked if every known value is -inf: same bits
        out = w.ravel()[base + w.argmax(axis=1)]
    elif method == 5:
        w = v.copy()
        w[~known] = np.inf
        out = w.ravel()[base + w.argmin(axis=1)]
    elif method == 7:
        a = np.abs(v)
        a[~known] = -1.0
        out = v.ravel()[base + a.argmax(axis=1)]
    elif method == 8:
        a = np.abs(v)
        a[~known] = np.inf
        idx = a.argmin(axis=1)
        bad = ~known.ravel()[base + idx]
        if bad.any():  # every known |value| is inf and a gap came first
            idx[bad] = (known[bad] & np.isinf(v[bad])).argmax(axis=1)
        out = v.ravel()[base + idx]
    else:
        raise InvalidAggregationMethod("Unrecognized aggregation method %s" % method)
    _python_rows(method, v, known, out, k)
    return out


def _aggregate_one(method: int, vals: list[float], k: int) -> float:
    """Scalar twin of `_aggregate` for one row of known values (time order): whisper.aggregate."""
    if method == 1:
        return float(sum(vals)) / float(len(vals))
    if method == 2:
        return float(sum(vals))
    if method == 3:
        return vals[-1]
    if method == 4:
        return max(vals)
    if method == 5:
        return min(vals)
    if method == 6:
        return float(sum(vals)) / float(k)
    if method == 7:
        return max(vals, key=abs)
    if method == 8:
        return min(vals, key=abs)
    raise InvalidAggregationMethod("Unrecognized aggregation method %s" % method)


# --------------------------------------------------------------------------
# propagation
# --------------------------------------------------------------------------

def _lower_intervals(aligned: np.ndarray, lspp: int, contiguous: bool) -> np.ndarray:
    """Distinct lower intervals of ascending aligned intervals (ascending)."""
    if contiguous:
        lo = int(aligned[0])
        hi = int(aligned[-1])
        return np.arange(lo - lo % lspp, hi - hi % lspp + 1, lspp, dtype=np.int64)
    fit = aligned - aligned % lspp
    if len(fit) > 1:
        keep = np.empty(len(fit), dtype=bool)
        keep[0] = True
        np.not_equal(fit[1:], fit[:-1], out=keep[1:])
        fit = fit[keep]
    return fit


_MIN_KNOWN: dict[tuple[int, float], int] = {}


def _min_known(k: int, xff: float) -> int:
    """Fewest known slots of k that propagate: whisper's ``known / float(k) >= xff``
    (evaluated with the same float arithmetic), and at least one."""
    key = (k, xff)
    n = _MIN_KNOWN.get(key)
    if n is None:
        n = next((c for c in range(1, k + 1) if c / float(k) >= xff), k + 1)
        if len(_MIN_KNOWN) > 4096:
            _MIN_KNOWN.clear()
        _MIN_KNOWN[key] = n
    return n


def _propagate_compute(fd: int, header: Header, hi: int, lo: int, intervals: np.ndarray,
                       hbase: int | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    """For each lower interval (ascending, unique): (passes-xff mask, aggregate).

    Reads lower.spp / higher.spp slots of the higher archive per interval
    (from slot 0 if the higher archive is empty, like whisper), keeps the
    slots whose timestamp is the expected one, and aggregates. The mask is
    None when every slot of every interval is known (all pass).
    """
    h = header.archives[hi]
    step = h.seconds_per_point
    lspp = header.archives[lo].seconds_per_point
    k = lspp // step
    m = len(intervals)
    n = m * k
    if hbase is None:
        hbase = _read_base(fd, h)
    iv0 = int(intervals[0])
    if hbase != 0 and int(intervals[-1]) - iv0 == (m - 1) * lspp:
        # consecutive lower intervals: one contiguous stretch of the higher archive
        first = (iv0 - hbase) // step
        if n <= h.points:
            seg = _read_ring(fd, h, first % h.points, n)
        else:
            seg = _read_archive(fd, h)[(first + np.arange(n)) % h.points]
        expected = np.arange(iv0, iv0 + n * step, step, dtype=np.int64)
    else:
        offs = np.arange(k, dtype=np.int64)
        if hbase == 0:
            seg = np.tile(_read_ring(fd, h, 0, k), m)
        else:
            starts = (intervals - hbase) // step
            first = int(starts[0])
            seg = _gather(fd, h, first, ((starts - first)[:, None] + offs).ravel())
        expected = (intervals[:, None] + offs * step).ravel()
    known = seg["t"] == expected
    v = seg["v"].astype(np.float64).reshape(m, k)
    if known.all():
        return None, _aggregate_full(header.aggregation_method, v, k)
    known = known.reshape(m, k)
    cnt = known.sum(axis=1)
    passes = cnt >= _min_known(k, header.x_files_factor)
    agg = np.empty(m, dtype=np.float64)
    if passes.all():
        agg = _aggregate(header.aggregation_method, v, known, cnt, k)
    elif passes.any():
        agg[passes] = _aggregate(header.aggregation_method, v[passes], known[passes], cnt[passes], k)
    return passes, agg


def _write_intervals(fd: int, a: ArchiveInfo, ivs: np.ndarray, vals: np.ndarray,
                     all_ivs: np.ndarray | None = None, contiguous: bool = False) -> int:
    """Write (interval, value) points (ascending, unique) one run per pwrite; returns the
    archive's base afterwards (0 if unknown).

    With `all_ivs` (whisper propagation), whenever the order of the writes
    matters they are done one by one in the iteration order of
    ``set(all_ivs)``, re-reading the base before each like whisper does: when
    the archive is empty (the first written becomes the base), when intervals
    are a retention or more apart (the last written wins a shared slot), and
    when interval 0 is among them (writing it to slot 0 empties the archive).
    """
    base = _read_base(fd, a)
    n = len(ivs)
    zero = int(ivs[0]) == 0
    wide = n > 1 and int(ivs[-1]) - int(ivs[0]) >= a.retention
    if all_ivs is not None and n > 1 and base == 0 and not zero and not wide:
        # the first written (in set order) becomes the base; the rest follow it
        wanted = set(ivs.tolist())
        base = next(x for x in set(all_ivs.tolist()) if x in wanted)
    elif all_ivs is not None and n > 1 and (base == 0 or zero or wide):
        wanted = dict(zip(ivs.tolist(), vals.tolist()))
        step = a.seconds_per_point
        for x in set(all_ivs.tolist()):
            if x not in wanted:
                continue
            slot = 0 if base == 0 else ((x - base) // step) % a.points
            os.pwrite(fd, _POINT.pack(x, wanted[x]), a.offset + slot * POINT_SIZE)
            if slot == 0:
                base = x
        return base
    if base == 0:
        base = int(ivs[0])
    _write_runs(fd, a, base, ivs, vals, contiguous)
    if zero:
        return 0  # interval 0 may now sit in slot 0: let the next reader look
    return base


def _write_runs(fd: int, a: ArchiveInfo, base: int, ivs: np.ndarray, vals: np.ndarray,
                contiguous: bool = False) -> None:
    """Write ascending unique intervals, one pwrite per run (ring semantics for long runs)."""
    step = a.seconds_per_point
    n = len(ivs)
    if n == 1:
        iv = int(ivs[0])
        slot = ((iv - base) // step) % a.points
        os.pwrite(fd, _POINT.pack(iv, float(vals[0])), a.offset + slot * POINT_SIZE)
        return
    rec = _pack(ivs, vals)
    if contiguous or int(ivs[-1]) - int(ivs[0]) == (n - 1) * step:
        bounds = [0, n]
    else:
        brk = np.flatnonzero((ivs[1:] - ivs[:-1]) != step) + 1
        bounds = [0, *brk.tolist(), n]
    for s, e in zip(bounds[:-1], bounds[1:]):
        s = max(s, e - a.points)  # ring semantics: the newest `points` of a long run
        slot = ((int(ivs[s]) - base) // step) % a.points
        _write_ring(fd, a, slot, rec[s:e], e - s)


def _propagate_chain(fd: int, header: Header, ai: int, aligned: np.ndarray,
                     contiguous: bool, hbase: int) -> None:
    """whisper's update_many propagation from archive `ai` for these aligned intervals
    (ascending, unique; `contiguous` if consecutive; `hbase` = archive ai's base or 0)."""
    archives = header.archives
    hi = ai
    for lo in range(ai + 1, len(archives)):
        fit = _lower_intervals(aligned, archives[lo].seconds_per_point, contiguous)
        if len(fit) == 1:
            hbase = _propagate_one(fd, header, hi, lo, int(fit[0]), hbase)
            if hbase < 0:
                break
        else:
            passes, agg = _propagate_compute(fd, header, hi, lo, fit, hbase or None)
            if passes is None:
                hbase = _write_intervals(fd, archives[lo], fit, agg, fit, contiguous)
            elif passes.any():
                hbase = _write_intervals(fd, archives[lo], fit[passes], agg[passes], fit)
            else:
                break
        hi = lo


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------

def _archive_update(fd: int, header: Header, ai: int, ts: np.ndarray, vals: np.ndarray) -> None:
    """whisper's __archive_update_many: `ts` chronological (ties: winner last)."""
    a = header.archives[ai]
    step = a.seconds_per_point
    n = len(ts)
    if 1 < n <= SMALL_BATCH and _small_archive_update(fd, header, ai, ts, vals):
        return
    aligned, vals = _last_per_interval(ts, vals, step)
    n = len(aligned)
    base = _read_base(fd, a)
    contiguous = int(aligned[-1]) - int(aligned[0]) == (n - 1) * step
    if n == 1:
        iv = int(aligned[0])
        if base == 0:
            base = iv
        slot = ((iv - base) // step) % a.points
        os.pwrite(fd, _POINT.pack(iv, float(vals[0])), a.offset + slot * POINT_SIZE)
    else:
        rec = _pack(aligned, vals)
        if contiguous:
            bounds = [0, n]
        else:
            # runs of contiguous intervals (whisper also glues anything onto interval 0)
            brk = np.flatnonzero(((aligned[1:] - aligned[:-1]) != step) & (aligned[:-1] != 0)) + 1
            bounds = [0, *brk.tolist(), n]
        first_run = True
        for s, e in zip(bounds[:-1], bounds[1:]):
            count = e - s
            start = int(aligned[e - 1]) - step * (count - 1)
            if first_run and base == 0:
                base = start  # (stays 0 if the first run starts at interval 0, like whisper)
            first_run = False
            slot = ((start - base) // step) % a.points
            if count > a.points:  # ring semantics: only the newest `points` survive
                drop = count - a.points
                s += drop
                count = a.points
                slot = (slot + drop) % a.points
            _write_ring(fd, a, slot, rec[s:e], count)
    if ai + 1 < len(header.archives):
        # the base is known unless interval 0 was written (whisper's glued runs can then
        # leave something else in slot 0): 0 makes propagation re-read it
        _propagate_chain(fd, header, ai, aligned, contiguous, base if int(aligned[0]) != 0 else 0)


def _small_archive_update(fd: int, header: Header, ai: int, ts: np.ndarray, vals: np.ndarray) -> bool:
    """_archive_update for a few points forming one contiguous run of intervals
    (the common case), in plain Python; False (nothing written) otherwise."""
    a = header.archives[ai]
    step = a.seconds_per_point
    al, vl = _last_per_interval_small(ts, vals, step)
    n = len(al)
    first = al[0]
    if al[-1] - first != (n - 1) * step or first == 0 or n > a.points:
        return False
    base = _read_base(fd, a)
    if base == 0:
        base = first
    _write_ring(fd, a, ((first - base) // step) % a.points, _pack_run(al, vl), n)
    if ai + 1 < len(header.archives):
        _propagate_chain(fd, header, ai, np.array(al, dtype=np.int64), True, base)
    return True


def check_file_size(fd: int, header: Header, size: int | None = None) -> None:
    """Refuse to write into a file shorter than its (possibly cached) header says
    (`size`: the file's size if the caller just took it)."""
    if size is None:
        size = os.fstat(fd).st_size
    if size < header.file_size:
        raise CorruptWhisperFile("truncated archive: file is %d bytes, archives need %d"
                                 % (size, header.file_size), _fd_name(fd))


def _check_u32(ts: np.ndarray, step: int = 1) -> None:
    """Ascending stamps (the newest aligned to `step`) must fit the format's uint32."""
    if len(ts):
        newest = int(ts[-1])
        if int(ts[0]) < 0 or newest - newest % step > _U32_MAX:
            raise ValueError("timestamp out of range for the whisper format (0 .. 2**32-1)")


def update_many_fd(fd: int, header: Header, timestamps: np.ndarray, values: np.ndarray,
                   now: int | None = None, check_size: bool = True) -> None:
    """whisper's update_many on an open fd with a parsed header.

    Points go to the first archive whose retention covers their age (future
    points to archive 0, points older than the last archive are dropped);
    within an interval the newest timestamp wins, for identical timestamps
    the first given wins; each archive's points are written one pwrite per
    contiguous run and propagated (vectorised) to lower archives. Without
    `check_size` the caller vouches that the file is as long as `header` says.
    """
    ts = np.asarray(timestamps)
    if ts.dtype != np.int64:
        ts = ts.astype(np.int64)
    vals = np.asarray(values)
    if vals.dtype != np.float64:
        vals = vals.astype(np.float64)
    n = ts.shape[0]
    if n == 0:
        return
    if vals.shape[0] != n:
        raise ValueError("timestamps and values differ in length")
    if now is None:
        now = int(time.time())
    now = int(now)
    if check_size:
        check_file_size(fd, header)
    archives = header.archives
    if n == 1:
        t = int(ts[0])
        age = now - t
        for i, a in enumerate(archives):
            if a.retention >= age:
                interval = t - t % a.seconds_per_point
                if not 0 <= interval <= _U32_MAX:
                    raise ValueError("timestamp out of range for the whisper format (0 .. 2**32-1)")
                _write_one(fd, header, i, interval, float(vals[0]))
                return
        return
    if not strictly_ascending(ts):
        # newest first, stable (whisper), then reversed per archive: ascending by time
        # with identical stamps in reverse input order, so the last of a run is the first given
        rts = ts[::-1]
        order = rts.argsort(kind="stable")
        ts = rts[order]
        vals = vals[::-1][order]
    # archive i gets ages in (ret[i-1], ret[i]] i.e. stamps in [now - ret[i], now - ret[i-1])
    lo_t = now - archives[0].retention
    if int(ts[0]) >= lo_t:  # everything in archive 0 (the common case)
        _check_u32(ts, archives[0].seconds_per_point)
        _archive_update(fd, header, 0, ts, vals)
        return
    cuts = [n]
    for a in archives:
        cuts.append(int(ts.searchsorted(now - a.retention, side="left")) if cuts[-1] else 0)
    _check_u32(ts[cuts[-1]:], archives[0].seconds_per_point)
    for i in range(len(archives)):
        hi_idx, lo_idx = cuts[i], cuts[i + 1]
        if lo_idx < hi_idx:
            _archive_update(fd, header, i, ts[lo_idx:hi_idx], vals[lo_idx:hi_idx])


def update_fd(fd: int, header: Header, value: float, timestamp: int | float | None = None,
              now: int | None = None) -> None:
    """whisper's single ``update``: TimestampNotCovered unless 0 <= now - t < maxRetention;
    propagation stops at the first lower archive that does not propagate."""
    value = float(value)
    if now is None:
        now = int(time.time())
    if timestamp is None:
        timestamp = now
    timestamp = int(timestamp)
    age = now - timestamp
    if not (age < header.max_retention and age >= 0):
        raise TimestampNotCovered("Timestamp not covered by any archives in this database.")
    archives = header.archives
    for ai, a in enumerate(archives):
        if a.retention >= age:
            break
    else:
        raise TimestampNotCovered("Timestamp not covered by any archives in this database.")
    step = a.seconds_per_point
    interval = timestamp - timestamp % step
    if not 0 <= interval <= _U32_MAX:
        raise ValueError("timestamp out of range for the whisper format (0 .. 2**32-1)")
    check_file_size(fd, header)
    _write_one(fd, header, ai, interval, value)


def _write_one(fd: int, header: Header, ai: int, interval: int, value: float) -> None:
    """Write one aligned point to archive ai and propagate it down (whisper's update,
    and update_many of a single point)."""
    a = header.archives[ai]
    base = _read_base(fd, a)
    slot = 0 if base == 0 else ((interval - base) // a.seconds_per_point) % a.points
    os.pwrite(fd, _POINT.pack(interval, value), a.offset + slot * POINT_SIZE)
    if slot == 0:
        base = interval
    _propagate_point(fd, header, ai, interval, base)


def _propagate_point(fd: int, header: Header, ai: int, interval: int, base: int) -> None:
    """Propagate one interval written to archive ai (whose base is `base`) down the chain."""
    hi = ai
    for lo in range(ai + 1, len(header.archives)):
        base = _propagate_one(fd, header, hi, lo, interval, base)
        if base < 0:
            break
        hi = lo


_UNPACKERS: dict[int, struct.Struct] = {}


def _propagate_one(fd: int, header: Header, hi: int, lo: int, timestamp: int, hbase: int = 0) -> int:
    """whisper's __propagate for one interval (scalar fast path).

    `hbase` is the higher archive's base if known (0: read it). Returns -1 if
    nothing was propagated, else the lower archive's base afterwards (0 if unknown).
    """
    h = header.archives[hi]
    low = header.archives[lo]
    step = h.seconds_per_point
    interval = timestamp - timestamp % low.seconds_per_point
    k = low.seconds_per_point // step
    base = hbase or _read_base(fd, h)
    slot = 0 if base == 0 else ((interval - base) // step) % h.points
    end = slot + k
    if end <= h.points:
        data = _pread(fd, k * POINT_SIZE, h.offset + slot * POINT_SIZE, "datapoints")
    else:
        data = (_pread(fd, (h.points - slot) * POINT_SIZE, h.offset + slot * POINT_SIZE, "datapoints")
                + _pread(fd, (end - h.points) * POINT_SIZE, h.offset, "datapoints"))
    if k <= 128:
        unpack = _UNPACKERS.get(k)
        if unpack is None:
            unpack = _UNPACKERS[k] = struct.Struct("!" + "Ld" * k)
        raw = unpack.unpack(data)
        stamps = raw[0::2]
        expected = range(interval, interval + k * step, step)
        if stamps == tuple(expected):
            known = list(raw[1::2])
        else:
            known = [v for t, e, v in zip(stamps, expected, raw[1::2]) if t == e]
        if not known or len(known) / float(k) < header.x_files_factor:
            return -1
        value = _aggregate_one(header.aggregation_method, known, k)
    else:
        seg = np.frombuffer(data, dtype=POINT_DTYPE)
        kn = seg["t"] == np.arange(interval, interval + k * step, step, dtype=np.int64)
        cnt = int(kn.sum())
        if cnt == 0 or cnt / float(k) < header.x_files_factor:
            return -1
        v = seg["v"].astype(np.float64)[None, :]
        if cnt == k:
            value = float(_aggregate_full(header.aggregation_method, v, k)[0])
        else:
            value = float(_aggregate(header.aggregation_method, v, kn[None, :],
                                     np.array([cnt]), k)[0])
    lbase = _read_base(fd, low)
    lslot = 0 if lbase == 0 else ((interval - lbase) // low.seconds_per_point) % low.points
    os.pwrite(fd, _POINT.pack(interval, value), low.offset + lslot * POINT_SIZE)
    return interval if lslot == 0 else lbase


# --------------------------------------------------------------------------
# creating
# --------------------------------------------------------------------------

def create_fd(fd: int, archive_list: Iterable[Sequence[int]], x_files_factor: float = 0.5,
              aggregation_method: int | str = 1, sparse: bool = True) -> Header:
    """Write a new whisper file to an empty, writable fd and return its Header.

    Sparse (default): one header pwrite plus one ftruncate to the full size;
    otherwise the archives are zero-filled with one write. Both give the same
    bytes as whisper's ``create``.
    """
    header, data = layout_header(archive_list, x_files_factor, aggregation_method)
    _write_new(fd, header, data, sparse, False)
    return header


def create_with_points_fd(fd: int, archive_list: Iterable[Sequence[int]], x_files_factor: float,
                          aggregation_method: int | str, timestamps: np.ndarray, values: np.ndarray,
                          now: int | None = None) -> tuple[Header, bool]:
    """create_fd, writing the points with the header when they are the usual
    first write of a series: one run of intervals that archive 0 takes from
    slot 0 (header and points in one write, then propagation). Returns
    (header, written); not written (a gap, a point outside archive 0, more
    than a ring, interval 0, unsorted input): the file has its header only and
    the caller writes the points with update_many_fd. Either way the bytes are
    those of create + update_many.
    """
    new = new_file(archive_list, x_files_factor, aggregation_method, timestamps, values, now)
    write_new_file(fd, new)
    propagate_first_run(fd, new)
    return new.header, new.intervals is not None


class NewFile(NamedTuple):  # a tuple: made once per new series, cheaper than a frozen dataclass
    """What a new series file gets: `data` at offset 0 (the header, and the first
    points when `intervals` is not None), then sparse zeros up to the file size."""

    header: Header
    data: bytes
    intervals: list[int] | np.ndarray | None


def new_file(archive_list: Iterable[Sequence[int]], x_files_factor: float, aggregation_method: int | str,
             timestamps: np.ndarray | None = None, values: np.ndarray | None = None,
             now: int | None = None) -> NewFile:
    """The bytes of a new file, computed without touching it (see create_with_points_fd)."""
    header, data = layout_header(archive_list, x_files_factor, aggregation_method)
    return new_file_in_layout(header, data, timestamps, values, now)


def new_file_in_layout(header: Header, data: bytes, timestamps: np.ndarray | None = None,
                       values: np.ndarray | None = None, now: int | None = None,
                       ascending: bool = False) -> NewFile:
    """new_file for a layout from layout_header (`ascending`: the caller has made the
    timestamps strictly ascending)."""
    if timestamps is None or values is None or not len(timestamps):
        return NewFile(header, data, None)
    run = _fresh_run(header.archives[0], timestamps, values, int(time.time()) if now is None else int(now),
                     ascending)
    if run is None:
        return NewFile(header, data, None)
    records, intervals = run
    return NewFile(header, data + records, intervals)  # archive 0 starts right after the header


def write_new_file(fd: int, new: NewFile) -> None:
    """Give an empty file its bytes and its full (sparse) size."""
    os.pwrite(fd, new.data, 0)
    os.ftruncate(fd, new.header.file_size)


def propagate_first_run(fd: int, new: NewFile) -> None:
    """After write_new_file: carry the first points into the lower archives."""
    header, intervals = new.header, new.intervals
    if intervals is None or len(header.archives) == 1:
        return
    first = int(intervals[0])
    if len(intervals) == 1:
        _propagate_point(fd, header, 0, first, first)
    else:
        _propagate_chain(fd, header, 0, np.asarray(intervals, dtype=np.int64), True, first)


def _fresh_run(a: ArchiveInfo, ts: np.ndarray, vals: np.ndarray, now: int,
               ascending: bool = False) -> tuple[bytes, list[int] | np.ndarray] | None:
    """(records, intervals) of points that an empty archive `a` (archive 0) stores
    as one run from slot 0, as update_many would; None if they do not form one."""
    n = len(ts)
    if n == 1:  # the usual first write of a series: no numpy conversions
        t = int(ts[0])
        interval = t - t % a.seconds_per_point
        if t < now - a.retention or interval <= 0 or interval > _U32_MAX:
            return None
        return _POINT.pack(interval, float(vals[0])), [interval]
    ts = np.asarray(ts, dtype=np.int64)
    vals = np.asarray(vals, dtype=np.float64)
    step = a.seconds_per_point
    if n == 0 or int(ts[0]) < now - a.retention or not (ascending or strictly_ascending(ts)):
        return None
    small = n <= SMALL_BATCH
    al, vl = _last_per_interval_small(ts, vals, step) if small else _last_per_interval(ts, vals, step)
    m = len(al)
    first, last = int(al[0]), int(al[-1])
    if last - first != (m - 1) * step or first <= 0 or last > _U32_MAX or m > a.points:
        return None
    return (_pack_run(al, vl) if small else _pack(al, vl).tobytes()), al


def layout_header(archive_list: Iterable[Sequence[int]], x_files_factor: float,
                  aggregation_method: int | str) -> tuple[Header, bytes]:
    """(Header, header bytes) of a new file, shared per layout."""
    try:
        layout = tuple((int(p), int(n)) for p, n in archive_list)
        return _cached_layout(layout, x_files_factor, aggregation_method)
    except TypeError:  # an unhashable argument: no caching
        return build_header(archive_list, x_files_factor, aggregation_method)


@functools.lru_cache(maxsize=256)
def _cached_layout(layout: tuple[tuple[int, int], ...], x_files_factor: float,
                   aggregation_method: int | str) -> tuple[Header, bytes]:
    """build_header for the few layouts a server creates, sharing one Header per layout."""
    header, data = build_header(layout, x_files_factor, aggregation_method)
    if len(_HEADER_CACHE) < _HEADER_CACHE_MAX:
        header = _HEADER_CACHE.setdefault(data, header)
    return header, data


def _write_new(fd: int, header: Header, data: bytes, sparse: bool, use_fallocate: bool) -> None:
    size = header.file_size
    if use_fallocate:
        os.pwrite(fd, data, 0)
        os.posix_fallocate(fd, len(data), size - len(data))
    elif sparse:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, size)
    else:  # zero-filled, in chunks (layouts can be hundreds of MB)
        os.pwrite(fd, data, 0)
        zeros = memoryview(_zeros())
        chunk = len(zeros)
        for off in range(len(data), size, chunk):
            os.pwrite(fd, zeros[: min(chunk, size - off)], off)


_ZEROS: list[bytes] = []


def _zeros() -> bytes:
    if not _ZEROS:
        _ZEROS.append(bytes(1 << 20))
    return _ZEROS[0]


def create(path: str, archiveList: list, xFilesFactor: float | None = None,
           aggregationMethod: str | int | None = None, sparse: bool = False,
           useFallocate: bool = False) -> None:
    """whisper.create: a new file at `path` (InvalidConfiguration if it exists)."""
    if xFilesFactor is None:
        xFilesFactor = 0.5
    if aggregationMethod is None:
        aggregationMethod = "average"
    validateArchiveList(archiveList)
    if os.path.exists(path):
        raise InvalidConfiguration("File %s already exists!" % path)
    header, data = build_header(archiveList, xFilesFactor, aggregationMethod)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise InvalidConfiguration("File %s already exists!" % path)
    try:
        _write_new(fd, header, data, sparse, useFallocate)
    except OSError:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------

def _archive_fetch(fd: int, a: ArchiveInfo, from_time: Any, until_time: Any
                   ) -> tuple[int, int, int, np.ndarray, np.ndarray]:
    """whisper's __archive_fetch: (from_iv, until_iv, step, values, valid)."""
    step = a.seconds_per_point
    from_iv = int(from_time - (from_time % step)) + step
    until_iv = int(until_time - (until_time % step)) + step
    if from_iv == until_iv:
        until_iv += step
    pts = a.points
    dist = (until_iv - from_iv) // step
    count = dist % pts or pts
    if 2 * count >= pts:
        arr = _read_archive(fd, a)  # one pread, base included
        base = int(arr["t"][0])
        if base != 0:
            first = ((from_iv - base) // step) % pts
            end = first + count
            seg = arr[first:end] if end <= pts else np.concatenate((arr[first:], arr[: end - pts]))
    else:
        base = _read_base(fd, a)
        if base != 0:
            seg = _read_ring(fd, a, ((from_iv - base) // step) % pts, count)
    if base == 0:
        n = max(dist, 0)
        return from_iv, until_iv, step, np.full(n, np.nan), np.zeros(n, dtype=bool)
    valid = seg["t"] == np.arange(from_iv, from_iv + count * step, step, dtype=np.int64)
    values = seg["v"].astype(np.float64)
    values[~valid] = np.nan
    return from_iv, until_iv, step, values, valid


def _fetch(fd: int, header: Header, fromTime: Any, untilTime: Any, now: Any,
           archiveToSelect: Any) -> tuple[int, int, int, np.ndarray, np.ndarray] | None:
    if now is None:
        now = int(time.time())
    if untilTime is None:
        untilTime = now
    fromTime = int(fromTime)
    untilTime = int(untilTime)
    if fromTime > untilTime:
        raise InvalidTimeInterval(
            "Invalid time interval: from time '%s' is after until time '%s'" % (fromTime, untilTime))
    oldest = now - header.max_retention
    if fromTime > now:
        return None
    if untilTime < oldest:
        return None
    if fromTime < oldest:
        fromTime = oldest
    if untilTime > now:
        untilTime = now
    age = now - fromTime
    archives = header.archives
    check_file_size(fd, header)
    if archiveToSelect:
        wanted = parseRetentionDef(str(archiveToSelect) + ":1")[0]
        for a in archives:
            if a.seconds_per_point == wanted:
                break
        else:
            raise ValueError("Invalid granularity: %s" % (wanted,))
    else:
        for a in archives:
            if a.retention >= age:
                break
    return _archive_fetch(fd, a, fromTime, untilTime)


def fetch_fd(fd: int, header: Header, from_time: int, until_time: int | None = None,
             now: int | None = None, archive_to_select: Any = None
             ) -> tuple[int, int, int, np.ndarray] | None:
    """whisper's fetch on an open fd: (from_interval, until_interval, step, values)
    with NaN for gaps, or None when the range is in the future or beyond retention."""
    r = _fetch(fd, header, from_time, until_time, now, archive_to_select)
    if r is None:
        return None
    return r[0], r[1], r[2], r[3]


def _to_list(values: np.ndarray, valid: np.ndarray) -> list:
    """Values as a list of Python floats with None where not valid (fast for any mix)."""
    n = len(values)
    bad = np.flatnonzero(~valid)
    nb = len(bad)
    if nb == 0:
        return values.tolist()
    if nb == n:
        return [None] * n
    if nb * 4 <= n:
        out = values.tolist()
        for i in bad.tolist():
            out[i] = None
        return out
    if nb * 4 >= 3 * n:
        good = np.flatnonzero(valid)
        out = [None] * n
        for i, v in zip(good.tolist(), values[good].tolist()):
            out[i] = v
        return out
    obj = np.full(n, None, dtype=object)
    obj[valid] = values[valid]
    return obj.tolist()


def read_archive_fd(fd: int, header: Header, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Every valid point of one archive, sorted by time: (int64 stamps, float64 values).

    A slot is valid when its stamp is non-zero, aligned to the archive's step
    and lands in that very slot given the archive's base (stamp in slot 0);
    points from earlier laps of the ring count too.
    """
    a = header.archives[index]
    arr = _read_archive(fd, a)
    t = arr["t"].astype(np.int64)
    base = int(t[0])
    if base == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    step = a.seconds_per_point
    valid = (t != 0) & (t % step == 0) & \
        (((t - base) // step) % a.points == np.arange(a.points, dtype=np.int64))
    t = t[valid]
    v = arr["v"][valid].astype(np.float64)
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def read_all_fd(fd: int, header: Header) -> tuple[np.ndarray, np.ndarray]:
    """Union of all archives' valid points, sorted by time; for a timestamp held by
    several archives the highest-resolution archive's value wins."""
    parts = [read_archive_fd(fd, header, i) for i in range(len(header.archives))]
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if len(parts) == 1:
        return parts[0]
    t = np.concatenate([p[0] for p in parts])
    v = np.concatenate([p[1] for p in parts])
    # np.unique sorts stably: the first occurrence (highest resolution) is kept
    ut, idx = np.unique(t, return_index=True)
    return ut, v[idx]


# --------------------------------------------------------------------------
# deleting points
# --------------------------------------------------------------------------

def _clear_slots(fd: int, a: ArchiveInfo, base: int, slots: np.ndarray) -> None:
    """Clear slots (ascending, unique) to (0, 0.0).

    Slot 0 holds the archive's base: clearing it would make whisper treat the
    whole archive as empty, so the ring is rotated to put another valid point
    into slot 0 instead (same points, same fetch results); if none is left
    the archive is zeroed.
    """
    if int(slots[0]) != 0:
        zero = np.zeros(len(slots), dtype=POINT_DTYPE)
        _write_slots(fd, a, slots, zero)
        return
    arr = _read_archive(fd, a).copy()
    arr[slots] = 0
    t = arr["t"].astype(np.int64)
    step = a.seconds_per_point
    valid = (t != 0) & (t % step == 0) & \
        (((t - base) // step) % a.points == np.arange(a.points, dtype=np.int64))
    left = np.flatnonzero(valid)
    if len(left):
        arr = np.roll(arr, -int(left[0]))
    else:
        arr[:] = 0
    os.pwrite(fd, arr, a.offset)


def _write_slots(fd: int, a: ArchiveInfo, slots: np.ndarray, rec: np.ndarray) -> None:
    """Write rec[i] at slots[i] (ascending, unique, in range), one pwrite per run."""
    brk = np.flatnonzero(np.diff(slots) != 1) + 1
    bounds = [0, *brk.tolist(), len(slots)]
    for s, e in zip(bounds[:-1], bounds[1:]):
        os.pwrite(fd, rec[s:e], a.offset + int(slots[s]) * POINT_SIZE)


def _slot_entries(fd: int, a: ArchiveInfo, base: int, ivs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slots, matches) for ascending intervals: their slots and whether each holds it."""
    step = a.seconds_per_point
    su = (ivs - base) // step
    first = int(su[0])
    ent = _gather(fd, a, first, su - first)
    # (a stored 0 means "never written", even for interval 0)
    return su % a.points, (ent["t"].astype(np.int64) == ivs) & (ivs != 0)


def delete_points_fd(fd: int, header: Header, timestamps: np.ndarray, now: int | None = None) -> int:
    """Delete points; returns how many were cleared.

    For each timestamp, the archive update_many would choose for it (by age)
    has the slot of its interval cleared (stamp 0, value 0.0) if that slot
    holds that interval. Lower archives' affected intervals are then
    recomputed from what remains: the aggregate is written if the
    xFilesFactor is met, otherwise the lower slot is cleared (if it holds
    that interval). Recomputation continues down while something changed.
    """
    ts = np.unique(np.asarray(timestamps).astype(np.int64))
    if len(ts) == 0:
        return 0
    if now is None:
        now = int(time.time())
    now = int(now)
    check_file_size(fd, header)
    archives = header.archives
    n = len(ts)
    cuts = [n]
    for a in archives:
        cuts.append(int(np.searchsorted(ts, now - a.retention, side="left")) if cuts[-1] else 0)
    cleared = 0
    for ai, a in enumerate(archives):
        seg = ts[cuts[ai + 1]:cuts[ai]]
        if len(seg) == 0:
            continue
        base = _read_base(fd, a)
        if base == 0:
            continue
        step = a.seconds_per_point
        ivs = np.unique(seg - seg % step)
        slots, match = _slot_entries(fd, a, base, ivs)
        if not match.any():
            continue
        gone = ivs[match]
        cleared += len(gone)
        mslots = slots[match]
        order = np.argsort(mslots)
        _clear_slots(fd, a, base, mslots[order])
        hi = ai
        for lo in range(ai + 1, len(archives)):
            low = archives[lo]
            lspp = low.seconds_per_point
            lows = np.unique(gone - gone % lspp)
            passes, agg = _propagate_compute(fd, header, hi, lo, lows)
            if passes is None:
                passes = np.ones(len(lows), dtype=bool)
            changed = False
            if passes.any():
                _write_intervals(fd, low, lows[passes], agg[passes])
                changed = True
            fail = ~passes
            if fail.any():
                lbase = _read_base(fd, low)
                if lbase != 0:
                    fivs = lows[fail]
                    lslots, lmatch = _slot_entries(fd, low, lbase, fivs)
                    if lmatch.any():
                        ls = np.unique(lslots[lmatch])
                        _clear_slots(fd, low, lbase, ls)
                        changed = True
            if not changed:
                break
            hi = lo
    return cleared


# --------------------------------------------------------------------------
# resampling (resize)
# --------------------------------------------------------------------------

def _bucket_aggregate(ts: np.ndarray, vals: np.ndarray, src_step: int, step: int,
                      method: int, xff: float) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate points of resolution src_step into intervals of `step` with
    propagation semantics (k = step / src_step slots, xFilesFactor)."""
    k = step // src_step
    ivs = ts - ts % step
    uiv, inv = np.unique(ivs, return_inverse=True)
    m = len(uiv)
    pos = (ts - ivs) // src_step
    v = np.zeros((m, k), dtype=np.float64)
    known = np.zeros((m, k), dtype=bool)
    v[inv, pos] = vals
    known[inv, pos] = True
    cnt = known.sum(axis=1)
    passes = cnt / float(k) >= xff
    if not passes.any():
        return uiv[:0], vals[:0]
    out = _aggregate(method, v[passes], known[passes], cnt[passes], k)
    return uiv[passes], out


def resample_fd(src_fd: int, src_header: Header, dst_fd: int, dst_header: Header,
                now: int | None = None) -> None:
    """Fill a freshly created file (dst) with the data of src resampled into dst's layout.

    For each destination archive (finest first) and each interval it can hold
    (age <= retention, newest `points` intervals), the value comes from, in order:
    1. the source archive with the same resolution (values kept exactly);
    2. aggregating, with the destination's aggregation method and xFilesFactor,
       the destination's next finer archive as already built (like whisper's
       propagation) or, where that has no data meeting the xFilesFactor, the
       finest source archive whose resolution divides this one;
    3. a coarser source point at exactly that interval (kept as a sparse point),
       for times older than every source archive of this or a finer resolution.
    Source points older than their archive's retention are ignored.
    """
    if now is None:
        now = int(time.time())
    now = int(now)
    sources: list[tuple[int, np.ndarray, np.ndarray]] = []
    for i, a in enumerate(src_header.archives):
        t, v = read_archive_fd(src_fd, src_header, i)
        keep = now - t <= a.retention
        sources.append((a.seconds_per_point, t[keep], v[keep]))
    src_ret = [(a.seconds_per_point, a.retention) for a in src_header.archives]
    method = dst_header.aggregation_method
    xff = dst_header.x_files_factor
    built: list[tuple[int, np.ndarray, np.ndarray]] = []
    for j, a in enumerate(dst_header.archives):
        step = a.seconds_per_point
        got_t: list[np.ndarray] = []
        got_v: list[np.ndarray] = []
        for sspp, t, v in sources:
            if sspp == step and len(t):
                got_t.append(t)
                got_v.append(v)
        # finest first; the destination's own finer archive beats a source of equal resolution
        # the destination's finer archive first (as whisper propagates archive by
        # archive), then finer source archives (finest first) for what it lacks
        finer = sorted(((sspp, t, v) for sspp, t, v in sources if sspp < step and step % sspp == 0),
                       key=lambda s: s[0])
        if built:
            finer.insert(0, built[-1])
        coarser = sorted(((sspp, t, v) for sspp, t, v in sources
                          if sspp > step), key=lambda s: s[0])
        for sspp, t, v in finer:
            if len(t):
                it, iv = _bucket_aggregate(t, v, sspp, step, method, xff)
                got_t.append(it)
                got_v.append(iv)
        # coarser data only where no source of this or a finer resolution reaches back
        covered = max((r for sspp, r in src_ret if sspp <= step), default=None)
        for sspp, t, v in coarser:
            use = t % step == 0
            if covered is not None:
                use &= now - t > covered
            if use.any():
                got_t.append(t[use])
                got_v.append(v[use])
        if got_t:
            t = np.concatenate(got_t)
            v = np.concatenate(got_v)
            t, idx = np.unique(t, return_index=True)  # earlier source (higher priority) wins
            v = v[idx]
            keep = now - t <= a.retention
            t, v = t[keep], v[keep]
            if len(t) and int(t[-1]) - int(t[0]) >= a.retention:
                # more than one lap of the ring: per slot, the newest interval up to now
                # stays; a future one (written with a clock ahead) only in a slot no
                # interval up to now has, so it never pushes out a point a fetch shows
                slots = (t // step) % a.points
                order = np.lexsort((t, t <= now, slots))
                ranked = slots[order]
                last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
                keep = np.sort(order[last])
                t, v = t[keep], v[keep]
        else:
            t = np.empty(0, dtype=np.int64)
            v = np.empty(0, dtype=np.float64)
        _check_u32(t)
        built.append((step, t, v))
        if len(t):
            arr = np.zeros(a.points, dtype=POINT_DTYPE)
            base = int(t[0])
            slots = ((t - base) // step) % a.points
            arr["t"][slots] = t
            arr["v"][slots] = v
            os.pwrite(dst_fd, arr, a.offset)


def resize(path: str, archive_list: Iterable[Sequence[int]], x_files_factor: float | None = None,
           aggregation_method: int | str | None = None, now: int | None = None) -> Header:
    """Resample the file at `path` into a new layout, atomically.

    Writes a temporary file in the same directory, fsyncs it and os.replace()s
    it over `path`; xFilesFactor and aggregation method default to the old
    ones. Returns the new Header. Open fds of the old file keep the old inode.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        old = read_header(fd, path)
        if x_files_factor is None:
            x_files_factor = old.x_files_factor
        if aggregation_method is None:
            aggregation_method = old.aggregation_method
        new, data = build_header(archive_list, x_files_factor, aggregation_method)
        directory, name = os.path.split(os.path.abspath(path))
        tfd, tmp = tempfile.mkstemp(prefix=".%s." % name, suffix=".resize", dir=directory)
        try:
            try:
                mode = os.fstat(fd).st_mode & 0o7777
                os.fchmod(tfd, mode)
            except OSError:
                pass
            _write_new(tfd, new, data, True, False)
            resample_fd(fd, old, tfd, new, now)
            os.fsync(tfd)
        except BaseException:
            os.close(tfd)
            os.unlink(tmp)
            raise
        os.close(tfd)
        os.replace(tmp, path)
    finally:
        os.close(fd)
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return new


# --------------------------------------------------------------------------
# whisper-compatible path API
# --------------------------------------------------------------------------

def info(path: str) -> dict[str, Any] | None:
    """whisper.info: the header as a dict, or None if the file cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return read_header(fd, path).info_dict()
    except OSError:
        return None
    finally:
        os.close(fd)


def update(path: str, value: float, timestamp: int | float | None = None, now: int | None = None) -> None:
    """whisper.update."""
    value = float(value)
    fd = os.open(path, os.O_RDWR)
    try:
        update_fd(fd, read_header(fd, path), value, timestamp, now)
    finally:
        os.close(fd)


def _points_to_arrays(points: Sequence[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """[(t, v), ...] -> (int64 stamps, float64 values) with whisper's int(t), float(v)."""
    try:
        ts_t, vs_t = zip(*points)
    except (TypeError, ValueError):
        ts_t = vs_t = None
    if ts_t is not None:
        ts = np.array(ts_t)
        vs = np.array(vs_t)
        kind = ts.dtype.kind
        if kind == "f" and np.isfinite(ts).all() and np.abs(ts).max() < 2.0 ** 62:
            ts = np.trunc(ts).astype(np.int64)
            kind = "i"
        if kind == "i" and vs.dtype.kind in "fiub":
            return ts.astype(np.int64, copy=False), vs.astype(np.float64, copy=False)
    conv = [(int(t), float(v)) for t, v in points]
    return (np.array([p[0] for p in conv], dtype=np.int64),
            np.array([p[1] for p in conv], dtype=np.float64))


def update_many(path: str, points: Sequence[Sequence[Any]], now: int | None = None) -> None:
    """whisper.update_many: points is a list of (timestamp, value)."""
    if not points:
        return
    if len(points) == 1:
        (t, v), = points
        ts = np.array([int(t)], dtype=np.int64)
        vals = np.array([float(v)], dtype=np.float64)
    else:
        ts, vals = _points_to_arrays(points)
    fd = os.open(path, os.O_RDWR)
    try:
        update_many_fd(fd, read_header(fd, path), ts, vals, now)
    finally:
        os.close(fd)


def fetch(path: str, fromTime: int, untilTime: int | None = None, now: int | None = None,
          archiveToSelect: Any = None) -> tuple[tuple[int, int, int], list] | None:
    """whisper.fetch: ((fromInterval, untilInterval, step), values with None for gaps) or None."""
    fd = os.open(path, os.O_RDONLY)
    try:
        r = _fetch(fd, read_header(fd, path), fromTime, untilTime, now, archiveToSelect)
    finally:
        os.close(fd)
    if r is None:
        return None
    return (r[0], r[1], r[2]), _to_list(r[3], r[4])


def _set_aggregation(path: str, aggregationMethod: Any = None, xFilesFactor: Any = None
                     ) -> tuple[str, float]:
    fd = os.open(path, os.O_RDWR)
    try:
        header = read_header(fd, path)
        agg = header.aggregation_method if aggregationMethod is None else aggregation_id(aggregationMethod)
        xff = header.x_files_factor if xFilesFactor is None else _check_xff(xFilesFactor)
        os.pwrite(fd, _META.pack(agg, header.max_retention, xff, len(header.archives)), 0)
    finally:
        os.close(fd)
    return header.aggregation_name, header.x_files_factor


def setAggregationMethod(path: str, aggregationMethod: str | int, xFilesFactor: float | None = None) -> str:
    """whisper.setAggregationMethod: returns the old method name."""
    return _set_aggregation(path, aggregationMethod, xFilesFactor)[0]


def setXFilesFactor(path: str, xFilesFactor: float) -> float:
    """whisper.setXFilesFactor: returns the old xFilesFactor."""
    return _set_aggregation(path, None, xFilesFactor)[1]


@contextmanager
def _alike_pair(path_from: str, path_to: str, to_flags: int, verb: str
                ) -> Iterator[tuple[int, Header, int, Header]]:
    """(fd, header) of two whisper files with the same archives (whisper's
    merge/diff precondition), closed afterwards."""
    ffd = os.open(path_from, os.O_RDONLY)
    try:
        tfd = os.open(path_to, to_flags)
        try:
            hf = read_header(ffd, path_from)
            ht = read_header(tfd, path_to)
            if hf.archives != ht.archives:
                raise NotImplementedError(
                    "%s and %s archive configurations are unalike. "
                    "Resize the input before %s" % (path_from, path_to, verb))
            yield ffd, hf, tfd, ht
        finally:
            os.close(tfd)
    finally:
        os.close(ffd)


def merge(path_from: str, path_to: str, time_from: int | None = None, time_to: int | None = None,
          now: int | None = None) -> None:
    """whisper.merge: copy each archive's points of path_from into path_to
    (same layout required), propagating like whisper does."""
    with _alike_pair(path_from, path_to, os.O_RDWR, "merging") as (ffd, hf, tfd, ht):
        if now is None:
            now = int(time.time())
        until = time_to if time_to is not None else now
        start = time_from if time_from is not None else 0
        if until < start:
            raise ValueError("time_to must be >= time_from")
        order = sorted(range(len(hf.archives)), key=lambda i: hf.archives[i].retention)
        for i in order:
            a = hf.archives[i]
            a_from = start
            a_to = until
            if a_from < now - a.retention:
                a_from = now - a.retention
            if a_to < now - a.retention:
                continue
            f_iv, u_iv, step, values, valid = _archive_fetch(ffd, a, a_from, a_to)
            n = min(len(values), max(0, -(-(u_iv - f_iv) // step)))
            valid = valid[:n]
            if not valid.any():
                continue
            idx = np.flatnonzero(valid)
            ts = f_iv + idx.astype(np.int64) * step
            _archive_update(tfd, ht, i, ts, values[idx])


def diff(path_from: str, path_to: str, ignore_empty: bool = False, until_time: int | None = None,
         now: int | None = None) -> list[tuple[int, list, int]]:
    """whisper.diff: [(archive number, [(t, from value, to value) differing], points compared)]."""
    with _alike_pair(path_from, path_to, os.O_RDONLY, "diffing") as (ffd, hf, tfd, _ht):
        archives = sorted(hf.archives, key=lambda a: a.retention)
        if now is None:
            now = int(time.time())
        until = until_time if until_time else now
        out = []
        for number, a in enumerate(archives):
            start_t = now - a.retention
            ff, fu, fs, fv, fok = _archive_fetch(ffd, a, start_t, until)
            tf, tu, ts_, tv, tok = _archive_fetch(tfd, a, start_t, until)
            start, end, step = min(ff, tf), max(fu, tu), min(fs, ts_)
            from_values = _to_list(fv, fok)
            to_values = _to_list(tv, tok)
            points = [(s * step + start, from_values[s], to_values[s])
                      for s in range(0, (end - start) // step)]
            if ignore_empty:
                points = [p for p in points if p[1] is not None and p[2] is not None]
            else:
                points = [p for p in points if p[1] is not None or p[2] is not None]
            diffs = [p for p in points if p[1] != p[2]]
            out.append((number, diffs, len(points)))
            until = min(start_t, until)
        return out
