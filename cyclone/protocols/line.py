"""Plaintext line protocol over TCP and UDP: `<key> <value> [timestamp]\\n`.

This module parses and hands batches to the ingest pipeline; it never
touches files. `parse_lines` takes a whole receive buffer (complete lines
only) and parses it in one pass: `bytes.split()` for the tokens, numpy over
the raw bytes to count tokens per line, slices for the columns, and
`np.fromiter(map(float, ...))` for the numbers. Only a buffer that
contains a bad number falls back to a per-token loop, and only for its
numbers.

Rules (carbon-compatible where carbon has one):
- a line is `key value` or `key value timestamp`, separated by any ASCII
  whitespace; `\\r\\n` line ends are fine; empty lines are ignored;
- a missing timestamp, or `-1` (carbon's "now"), means the current time;
  float timestamps are truncated; a timestamp must be within 0 .. 2^32-1;
- values are any float syntax (`1e3`, `-2.5`); `nan` deletes the point at
  that timestamp (see DESIGN); `inf` / `-inf` are refused;
- a line longer than `max_line_bytes` is refused (a TCP line that has not
  ended by then is discarded up to its newline);
- bad lines are counted and logged (rate-limited); the good lines around
  them still land; the connection stays open. Key validity is the store's
  job (a per-key error, counted by the pipeline).
- a TCP connection closing with an unterminated last line: that line is
  still parsed (nothing the client sent is lost).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from twisted.internet.protocol import DatagramProtocol, Factory

from cyclone.protocols.common import (
    IngestStreamProtocol,
    RateLimitedLog,
    listen_datagram,
    listen_stream,
    shorten,
)

log = logging.getLogger(__name__)

_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True  # exactly what bytes.split() splits on
TS_LIMIT = float(1 << 32)
MAX_EXAMPLES = 3


@dataclass
class ParsedLines:
    """Columns of the good lines of a buffer, and what was wrong with the rest."""

    keys: list[bytes]
    ts: np.ndarray
    vals: np.ndarray
    lines: int = 0  # non-empty lines seen
    bad: int = 0
    examples: list[tuple[bytes, str]] = field(default_factory=list)

    @property
    def points(self) -> int:
        return len(self.keys)


def _empty(lines: int = 0) -> ParsedLines:
    return ParsedLines([], np.empty(0, np.int64), np.empty(0, np.float64), lines)


def _floats(tokens: list[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse tokens as floats; (values, None) if all parse, else (values, ok mask)."""
    n = len(tokens)
    try:
        return np.fromiter(map(float, tokens), dtype=np.float64, count=n), None
    except ValueError:
        pass
    # slow path, only for a buffer that holds a bad number
    out = np.zeros(n, dtype=np.float64)
    ok = np.ones(n, dtype=bool)
    for i, tok in enumerate(tokens):
        try:
            out[i] = float(tok)
        except ValueError:
            ok[i] = False
    return out, ok


def _timestamps(tokens: list[bytes]) -> tuple[np.ndarray, np.ndarray | None]:
    """_floats for timestamp tokens: whole seconds parse as ints (twice as fast),
    anything else (fractions, exponents, nan, too big) as floats."""
    try:
        return np.fromiter(map(int, tokens), dtype=np.int64, count=len(tokens)).astype(np.float64), None
    except (ValueError, OverflowError):
        return _floats(tokens)


def parse_lines(data: bytes, now: int, max_line_bytes: int = 0) -> ParsedLines:
    """Parse complete lines (the last one may lack its newline) into columns."""
    tokens = data.split()
    if not tokens:
        return _empty()
    arr = np.frombuffer(data, dtype=np.uint8)
    ws = _WS[arr]
    is_start = ~ws
    is_start[1:] &= ws[:-1]
    starts = np.flatnonzero(is_start)
    nl = np.flatnonzero(arr == 10)
    if len(starts) != len(tokens):  # cannot happen: same whitespace set
        raise AssertionError("token count mismatch")
    line_of_tok = np.searchsorted(nl, starts)
    counts = np.bincount(line_of_tok)  # tokens per line, up to the last line with tokens
    n_lines_span = len(counts)
    nonempty = counts != 0
    lines = int(nonempty.sum())
    too_long = None
    if max_line_bytes > 0 and len(data) > max_line_bytes:
        bounds = np.empty(n_lines_span + 1, dtype=np.int64)
        bounds[0] = -1
        k = min(len(nl), n_lines_span)
        bounds[1:k + 1] = nl[:k]
        bounds[k + 1:] = len(data)
        lengths = np.diff(bounds) - 1
        too_long = lengths > max_line_bytes
        if not too_long.any():
            too_long = None

    bad_lines: list[tuple[int, str]] = []  # (line index, reason): examples only
    n_bad = 0
    if too_long is None and bool((counts[nonempty] == 3).all()):
        # fast path: every line is "key value timestamp"
        keys = tokens[0::3]
        vtok = tokens[1::3]
        ttok = tokens[2::3]
        line_idx = None  # line i of the good lines == i-th non-empty line
        has_ts = None
    else:
        good = ((counts == 2) | (counts == 3))
        if too_long is not None:
            for i in np.flatnonzero(too_long & nonempty)[:MAX_EXAMPLES].tolist():
                bad_lines.append((i, f"line longer than {max_line_bytes} bytes"))
            n_bad += int((too_long & nonempty).sum())
            good &= ~too_long
        wrong = nonempty & ~good
        if too_long is not None:
            wrong &= ~too_long
        n_wrong = int(wrong.sum())
        if n_wrong:
            n_bad += n_wrong
            for i in np.flatnonzero(wrong)[:MAX_EXAMPLES].tolist():
                bad_lines.append((i, f"expected '<key> <value> [timestamp]', got {int(counts[i])} fields"))
        line_idx = np.flatnonzero(good)
        if not len(line_idx):
            return ParsedLines([], np.empty(0, np.int64), np.empty(0, np.float64), lines, n_bad,
                               _examples(data, nl, bad_lines))
        firsts = (np.cumsum(counts) - counts)[line_idx]
        tok = np.empty(len(tokens), dtype=object)
        tok[:] = tokens
        keys = tok[firsts].tolist()
        vtok = tok[firsts + 1].tolist()
        has_ts = counts[line_idx] == 3
        ttok = tok[firsts[has_ts] + 2].tolist()
        if has_ts.all():
            has_ts = None

    n = len(keys)
    vals, vok = _floats(vtok)
    tsf_given, tok_ok = _timestamps(ttok)
    if has_ts is None:
        tsf = tsf_given
        ts_parsed_ok = tok_ok
    else:
        tsf = np.full(n, -1.0)
        tsf[has_ts] = tsf_given
        ts_parsed_ok = None
        if tok_ok is not None:
            ts_parsed_ok = np.ones(n, dtype=bool)
            ts_parsed_ok[has_ts] = tok_ok
    tsf[tsf == -1.0] = now
    ok = ~np.isinf(vals)
    ok &= (tsf >= 0) & (tsf < TS_LIMIT)  # also false for NaN timestamps
    if vok is not None:
        ok &= vok
    if ts_parsed_ok is not None:
        ok &= ts_parsed_ok
    if not ok.all():
        bad_rows = np.flatnonzero(~ok)
        n_bad += len(bad_rows)
        for r in bad_rows[:MAX_EXAMPLES].tolist():
            li = _nth_nonempty_line(nonempty, r) if line_idx is None else int(line_idx[r])
            reason = "bad value" if (vok is not None and not vok[r]) else \
                "value is infinite" if np.isinf(vals[r]) else "bad timestamp"
            bad_lines.append((li, reason))
        keys = [k for k, good_row in zip(keys, ok.tolist()) if good_row]
        vals = vals[ok]
        tsf = tsf[ok]
    return ParsedLines(keys, tsf.astype(np.int64), vals, lines, n_bad, _examples(data, nl, bad_lines))


def _nth_nonempty_line(nonempty: np.ndarray, r: int) -> int:
    return int(np.flatnonzero(nonempty)[r])


def _examples(data: bytes, nl: np.ndarray, bad_lines: list[tuple[int, str]]) -> list[tuple[bytes, str]]:
    out = []
    for li, reason in bad_lines[:MAX_EXAMPLES]:
        start = int(nl[li - 1]) + 1 if li > 0 else 0
        end = int(nl[li]) if li < len(nl) else len(data)
        out.append((data[start:end], reason))
    return out


class _LineSink:
    """What line TCP and UDP share: parse a buffer, count, log, submit."""

    def __init__(self, ctx: Any, counters: Any, bad_log: RateLimitedLog, what: str) -> None:
        self.ctx = ctx
        self.counters = counters
        self.bad_log = bad_log
        self.what = what

    def process(self, data: bytes, peer: str) -> None:
        parsed = parse_lines(data, int(time.time()), self.ctx.config.max_line_bytes)
        self.counters.add_many({"lines": parsed.lines, "points": parsed.points, "bad_lines": parsed.bad})
        if parsed.bad:
            line, reason = parsed.examples[0] if parsed.examples else (b"", "bad line")
            self.bad_log("%s from %s: %d bad lines, e.g. %s: %s", self.what, peer, parsed.bad,
                         reason, shorten(line))
        if parsed.keys:
            self.ctx.ingest.submit(parsed.keys, parsed.ts, parsed.vals, self.counters)


class LineStreamProtocol(IngestStreamProtocol):
    """One line-protocol TCP (or unix stream) connection."""

    def __init__(self, ctx: Any, sink: _LineSink) -> None:
        super().__init__()
        self.ctx = ctx
        self.sink = sink
        self.counters = sink.counters
        self._tail = b""
        self._discarding = False

    def dataReceived(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        self.counters.add("bytes", len(data))
        if self._discarding:
            idx = data.find(b"\n")
            if idx < 0:
                return
            data = data[idx + 1:]
            self._discarding = False
        if self._tail:
            data = self._tail + data
            self._tail = b""
        cut = data.rfind(b"\n")
        if cut < 0:
            self._keep_tail(data)
            return
        if cut + 1 < len(data):
            self._keep_tail(data[cut + 1:])
            data = data[:cut + 1]
        self.sink.process(data, self.peer)

    def _keep_tail(self, tail: bytes) -> None:
        limit = self.ctx.config.max_line_bytes
        if limit > 0 and len(tail) > limit:
            self.counters.add_many({"lines": 1, "bad_lines": 1})
            self.sink.bad_log("%s from %s: line longer than %d bytes discarded: %s", self.sink.what,
                              self.peer, limit, shorten(tail, 80))
            self._discarding = True
            self._tail = b""
        else:
            self._tail = tail

    def connectionLost(self, reason: Any = None) -> None:
        if self._tail:
            tail, self._tail = self._tail, b""
            self.sink.process(tail, self.peer)
        super().connectionLost(reason)


class LineStreamFactory(Factory):
    noisy = False

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.sink = _LineSink(ctx, ctx.stats.group("line_tcp"),
                              RateLimitedLog(log, logging.WARNING), "line")

    def buildProtocol(self, addr: Any) -> LineStreamProtocol:
        proto = LineStreamProtocol(self.ctx, self.sink)
        proto.factory = self
        return proto


class LineDatagramProtocol(DatagramProtocol):
    """Line protocol over UDP (or a unix datagram socket): each datagram is whole lines."""

    noisy = False

    def __init__(self, ctx: Any, sink: _LineSink) -> None:
        self.ctx = ctx
        self.sink = sink

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        self.sink.counters.add_many({"datagrams": 1, "bytes": len(data)})
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)
        self.sink.process(data, peer)


def start_listeners(ctx: Any) -> list[Any]:
    """Line TCP listeners for `line_stream_listen`, UDP for `line_datagram_listen`."""
    ports = []
    factory = LineStreamFactory(ctx)
    for spec in ctx.config.line_stream_listen:
        ports.append(listen_stream(ctx.reactor, spec, factory, "line protocol (TCP)"))
    udp_sink = _LineSink(ctx, ctx.stats.group("line_udp"), RateLimitedLog(log, logging.WARNING),
                         "line datagram")
    for spec in ctx.config.line_datagram_listen:
        ports.append(listen_datagram(ctx.reactor, spec, LineDatagramProtocol(ctx, udp_sink),
                                     "line protocol (UDP)"))
    return ports
