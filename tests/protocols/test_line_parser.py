"""parse_lines: the vectorised line-protocol parser, against a plain per-line reference."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cyclone.protocols.line import parse_lines

NOW = 1_700_000_000


def reference(data: bytes, now: int, max_line: int = 0) -> tuple[list, list, list, int, int]:
    """The obvious per-line parser with the same rules."""
    keys, ts, vals = [], [], []
    lines = bad = 0
    for line in data.split(b"\n"):
        fields = line.split()
        if not fields:
            continue
        lines += 1
        if max_line and len(line) > max_line:
            bad += 1
            continue
        if len(fields) not in (2, 3):
            bad += 1
            continue
        try:
            v = float(fields[1])
            t = float(fields[2]) if len(fields) == 3 else -1.0
        except ValueError:
            bad += 1
            continue
        if t == -1.0:
            t = now
        if math.isinf(v) or not (0 <= t < 2 ** 32):
            bad += 1
            continue
        keys.append(fields[0])
        ts.append(int(t))
        vals.append(v)
    return keys, ts, vals, lines, bad


def check(data: bytes, max_line: int = 0) -> None:
    p = parse_lines(data, NOW, max_line)
    keys, ts, vals, lines, bad = reference(data, NOW, max_line)
    assert p.keys == keys
    assert p.ts.tolist() == ts
    np.testing.assert_array_equal(p.vals, np.array(vals, dtype=np.float64))
    assert (p.lines, p.bad) == (lines, bad)
    assert p.ts.dtype == np.int64 and p.vals.dtype == np.float64


def test_fast_path_all_three_fields() -> None:
    data = b"".join(b"a.b.c%d %d.5 %d\n" % (i, i, NOW - i) for i in range(1000))
    p = parse_lines(data, NOW)
    assert len(p.keys) == 1000 and p.bad == 0
    assert p.keys[7] == b"a.b.c7" and p.vals[7] == 7.5 and p.ts[7] == NOW - 7


def test_value_forms_and_timestamps() -> None:
    data = (b"a 1e3 100\nb -2.5 200.99\nc nan 300\nd 5\ne inf 5\nf -inf 5\ng 1 -1\n"
            b"h 1 -5\ni 1 4294967296\nj 1 4294967295\nk 1 nan\n")
    p = parse_lines(data, NOW)
    assert p.keys == [b"a", b"b", b"c", b"d", b"g", b"j"]
    assert p.ts.tolist() == [100, 200, 300, NOW, NOW, 4294967295]
    assert p.vals[0] == 1000.0 and p.vals[1] == -2.5 and math.isnan(p.vals[2])
    assert p.bad == 5 and p.lines == 11
    check(data)


def test_bad_lines_between_good_ones() -> None:
    data = b"good 1 10\nonly\nx y z w\nbad v 10\nbad 1 t\n\n\r\ngood 2 11\r\n  spaced\t3\t12  \nlast 4 13"
    p = parse_lines(data, NOW)
    assert p.keys == [b"good", b"good", b"spaced", b"last"]
    assert p.vals.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert p.bad == 4
    assert [reason for _line, reason in p.examples][:2] == [
        "expected '<key> <value> [timestamp]', got 1 fields",
        "expected '<key> <value> [timestamp]', got 4 fields"]
    check(data)


def test_long_lines_refused() -> None:
    data = b"a 1 10\n" + b"k" * 50 + b" 1 10\nb 2 11\n"
    p = parse_lines(data, NOW, max_line_bytes=20)
    assert p.keys == [b"a", b"b"] and p.bad == 1
    assert p.examples[0][1] == "line longer than 20 bytes"
    check(data, 20)


def test_empty_and_whitespace_only() -> None:
    for data in (b"", b"\n\n", b"   \r\n\t\n"):
        p = parse_lines(data, NOW)
        assert p.keys == [] and p.lines == 0 and p.bad == 0


_token = st.sampled_from([b"a.b", b"k", b"1", b"2.5", b"-3", b"1e3", b"nan", b"inf", b"x", b"-1",
                          b"1700000000", b"1700000000.7", b"99999999999", b"\xff\xfe"])
_line = st.lists(_token, min_size=0, max_size=5).map(b" ".join)
_sep = st.sampled_from([b"\n", b"\r\n", b" \n", b"\n\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_line, _sep), max_size=30), st.sampled_from([0, 12, 4096]))
def test_matches_reference(parts, max_line) -> None:
    data = b"".join(line + sep for line, sep in parts)
    check(data, max_line)
