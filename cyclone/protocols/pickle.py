"""Carbon's pickle protocol: 4-byte big-endian length + pickle of `[(key, (ts, value)), ...]`.

This module parses frames and hands batches to the ingest pipeline; it
never touches files.

Safety: frames are decoded by `SafeUnpickler`, a `pickle.Unpickler` whose
`find_class` refuses every global, so a pickle can only build the builtin
containers and scalars the opcodes make directly (lists, tuples, str,
bytes, int, float, bool, None; dicts/sets the opcodes can build are then
refused by the shape check). A pickle naming any global (`os.system`,
`builtins.eval`, ...) is refused, counted in `refused_pickles`, logged,
and the connection is closed. A frame longer than `max_pickle_frame_bytes`
is refused as soon as its length prefix arrives (`oversized_frames`) and
the connection is closed. A frame that is not a valid pickle, or whose
top level is not a list/tuple, is counted in `bad_frames` and skipped
(frame boundaries stay intact, so the connection goes on, as carbon does).

Items are `(key, (timestamp, value))` with lists and tuples interchangeable
(protocols 0-5). Keys may be str or UTF-8 bytes (python 2 senders);
timestamps and values ints or floats (numeric strings too, like carbon).
Malformed items are counted in `bad_points`; the good items of the frame
land. The shape check and conversion are column-wise (`zip`, `map`,
`np.array`), not a Python loop per point; the per-item loop runs only for
a frame that contains a bad item.
"""

from __future__ import annotations

import io
import logging
import pickle
import time
from typing import Any

import numpy as np
from twisted.internet.protocol import Factory

from cyclone.protocols.common import IngestStreamProtocol, RateLimitedLog, listen_stream, shorten

log = logging.getLogger(__name__)

TS_LIMIT = float(1 << 32)
_SEQ = (list, tuple)
_NUM = (int, float)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle tried to load a global (a class or function): never allowed."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can only build what pickle opcodes build without globals."""

    def find_class(self, module: str, name: str) -> Any:
        raise RefusedGlobal(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedGlobal("persistent ids are not allowed")


def safe_loads(data: bytes) -> Any:
    """Unpickle with `SafeUnpickler` (str from python 2 decoded as UTF-8).

    The BufferedReader is for speed: the C unpickler prefetches through its
    peek(); from a bare BytesIO it calls read() for every opcode (2.5x slower)."""
    return SafeUnpickler(io.BufferedReader(io.BytesIO(data)), encoding="utf-8", errors="strict").load()


class BadFrame(ValueError):
    """A frame that is not `[(key, (ts, value)), ...]` at the top level."""


def decode_items(obj: Any, now: int) -> tuple[list[Any], np.ndarray, np.ndarray, int, str]:
    """Columns (keys, ts, values) of an unpickled frame, bad item count, first problem."""
    if not isinstance(obj, _SEQ):
        raise BadFrame(f"expected a list of (key, (timestamp, value)), got {type(obj).__name__}")
    n = len(obj)
    if n == 0:
        return [], np.empty(0, np.int64), np.empty(0, np.float64), 0, ""
    # column-wise fast path: every item is a 2-sequence whose second element is a 2-sequence
    if (set(map(type, obj)) <= {list, tuple} and set(map(len, obj)) == {2}):
        keys, pts = zip(*obj)
        if (set(map(type, keys)) <= {str, bytes} and set(map(type, pts)) <= {list, tuple}
                and set(map(len, pts)) == {2}):
            tss, vals = zip(*pts)
            if set(map(type, tss)) <= {int, float} and set(map(type, vals)) <= {int, float}:
                try:
                    tsf = np.array(tss, dtype=np.float64)
                    valf = np.array(vals, dtype=np.float64)
                except OverflowError:  # an int too big for a double
                    pass
                else:
                    return _finish(list(keys), tsf, valf, now)
    return _slow(obj, now)


def _finish(keys: list[Any], tsf: np.ndarray, valf: np.ndarray, now: int,
            bad: int = 0, problem: str = "") -> tuple[list[Any], np.ndarray, np.ndarray, int, str]:
    tsf[tsf == -1.0] = now  # carbon: -1 means now
    ok = (tsf >= 0) & (tsf < TS_LIMIT) & ~np.isinf(valf)
    if not ok.all():
        nbad = int((~ok).sum())
        if not problem:
            i = int(np.flatnonzero(~ok)[0])
            problem = (f"value {valf[i]!r} is infinite" if np.isinf(valf[i])
                       else f"timestamp {tsf[i]!r} out of range")
        keys = [k for k, g in zip(keys, ok.tolist()) if g]
        tsf = tsf[ok]
        valf = valf[ok]
        bad += nbad
    return keys, tsf.astype(np.int64), valf, bad, problem


def _number(x: Any) -> float:
    if type(x) in (int, float) or isinstance(x, (str, bytes)):  # bool is not a number here
        return float(x)
    raise TypeError(f"expected a number, got {type(x).__name__}")


def _slow(obj: Any, now: int) -> tuple[list[Any], np.ndarray, np.ndarray, int, str]:
    """Per-item decoding for a frame with at least one unusual item."""
    keys: list[Any] = []
    tss: list[float] = []
    vals: list[float] = []
    bad = 0
    problem = ""
    for item in obj:
        try:
            if not isinstance(item, _SEQ) or len(item) != 2:
                raise ValueError("item is not (key, (timestamp, value))")
            key, pt = item
            if not isinstance(key, (str, bytes)):
                raise ValueError(f"key is a {type(key).__name__}, not a string")
            if not isinstance(pt, _SEQ) or len(pt) != 2:
                raise ValueError("datapoint is not (timestamp, value)")
            t = _number(pt[0])
            v = _number(pt[1])
        except (ValueError, TypeError, OverflowError) as e:
            bad += 1
            if not problem:
                problem = f"{e} in {shorten(repr(item), 120)}"
            continue
        keys.append(key)
        tss.append(t)
        vals.append(v)
    return _finish(keys, np.array(tss, dtype=np.float64), np.array(vals, dtype=np.float64), now,
                   bad, problem)


class PickleProtocol(IngestStreamProtocol):
    """One pickle-protocol connection: frames in, batches to the ingest pipeline."""

    def __init__(self, ctx: Any, factory: "PickleFactory") -> None:
        super().__init__()
        self.ctx = ctx
        self.counters = factory.counters
        self.bad_log = factory.bad_log
        self._buf = bytearray()
        self._refused = False

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        self.last_data = time.monotonic()
        self.counters.add("bytes", len(data))
        buf = self._buf
        buf += data
        limit = self.ctx.config.max_pickle_frame_bytes
        now = int(time.time())
        pos = 0
        end = len(buf)
        key_parts: list[list[Any]] = []
        ts_parts: list[np.ndarray] = []
        val_parts: list[np.ndarray] = []
        frames = points = bad_points = bad_frames = 0
        refuse: str | None = None
        counter = ""
        while end - pos >= 4:
            size = int.from_bytes(buf[pos:pos + 4], "big")
            if limit > 0 and size > limit:
                refuse = f"frame of {size} bytes is over max_pickle_frame_bytes ({limit})"
                counter = "oversized_frames"
                break
            if end - pos - 4 < size:
                break
            with memoryview(buf) as view:
                frame = bytes(view[pos + 4:pos + 4 + size])
            pos += 4 + size
            frames += 1
            try:
                obj = safe_loads(frame)
            except RefusedGlobal as e:
                refuse = f"refused pickle: {e}"
                counter = "refused_pickles"
                break
            except Exception as e:  # any malformed pickle: skip the frame
                bad_frames += 1
                self.bad_log("pickle from %s: bad frame (%s: %s)", self.peer, type(e).__name__, e)
                continue
            try:
                keys, ts, vals, nbad, problem = decode_items(obj, now)
            except BadFrame as e:
                bad_frames += 1
                self.bad_log("pickle from %s: bad frame: %s", self.peer, e)
                continue
            if nbad:
                bad_points += nbad
                self.bad_log("pickle from %s: %d bad datapoints in a frame, e.g. %s", self.peer, nbad,
                             problem)
            if keys:
                key_parts.append(keys)
                ts_parts.append(ts)
                val_parts.append(vals)
                points += len(keys)
        if pos:
            del buf[:pos]
        self.counters.add_many({"frames": frames, "points": points, "bad_points": bad_points,
                                "bad_frames": bad_frames})
        if key_parts:  # everything before a refused frame still lands
            if len(key_parts) == 1:
                self.ctx.ingest.submit(key_parts[0], ts_parts[0], val_parts[0], self.counters)
            else:
                keys_all: list[Any] = []
                for part in key_parts:
                    keys_all.extend(part)
                self.ctx.ingest.submit(keys_all, np.concatenate(ts_parts), np.concatenate(val_parts),
                                       self.counters)
        if refuse is not None:
            self._refused = True
            self._buf = bytearray()
            self.counters.add(counter)
            log.warning("pickle from %s: %s; closing the connection", self.peer, refuse)
            self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        if self._buf and not self._refused:
            self.bad_log("pickle from %s: connection closed in the middle of a frame (%d bytes dropped)",
                         self.peer, len(self._buf))
            self.counters.add("bad_frames")
        self._buf = bytearray()
        super().connectionLost(reason)


class PickleFactory(Factory):
    noisy = False

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.counters = ctx.stats.group("pickle")
        self.bad_log = RateLimitedLog(log, logging.WARNING)

    def buildProtocol(self, addr: Any) -> PickleProtocol:
        proto = PickleProtocol(self.ctx, self)
        proto.factory = self
        return proto


def start_listeners(ctx: Any) -> list[Any]:
    """Pickle listeners for `pickle_listen`."""
    factory = PickleFactory(ctx)
    return [listen_stream(ctx.reactor, spec, factory, "pickle protocol") for spec in ctx.config.pickle_listen]
