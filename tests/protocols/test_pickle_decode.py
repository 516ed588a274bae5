"""The safe unpickler and the column-wise decoding of carbon pickle frames."""

from __future__ import annotations

import math
import os
import pickle
import struct

import numpy as np
import pytest

from cyclone.protocols.pickle import BadFrame, RefusedGlobal, decode_items, safe_loads

NOW = 1_700_000_000


class _Reduce:
    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class _Plain:
    pass


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("obj", [
    _Reduce(os.system, ("true",)),
    _Reduce(eval, ("1+1",)),
    _Reduce(getattr, ("abc", "upper")),
    _Plain(),
    {1, 2, frozenset([3])},
    bytearray(b"x"),
], ids=["os.system", "eval", "getattr", "instance", "frozenset", "bytearray"])
def test_globals_are_refused(protocol, obj) -> None:
    data = pickle.dumps([("k", (1, 2.0)), obj], protocol=protocol)
    if isinstance(obj, set) and protocol >= 4 or isinstance(obj, bytearray) and protocol == 5:
        # protocol 4 builds sets and frozensets with opcodes, 5 builds bytearrays: no global needed,
        # and the shape check refuses them as items
        keys, *_rest, bad, _problem = decode_items(safe_loads(data), NOW)
        assert keys == ["k"] and bad == 1
        return
    with pytest.raises(RefusedGlobal):
        safe_loads(data)


def test_handcrafted_global_opcodes_refused() -> None:
    for data in (b"cos\nsystem\n(S'true'\ntR.",           # GLOBAL + REDUCE (protocol 0)
                 b"(ios\nsystem\nS'true'\no.",              # INST
                 b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93."):  # STACK_GLOBAL
        with pytest.raises(RefusedGlobal):
            safe_loads(data)
    with pytest.raises(RefusedGlobal):
        safe_loads(b"\x80\x02P0\n.")  # persistent id


def test_extension_registry_is_refused() -> None:
    import copyreg

    copyreg.add_extension("os", "system", 0xF00D)
    try:
        with pytest.raises(RefusedGlobal):
            safe_loads(b"\x80\x02\x83\x0d\xf0.")  # EXT2 0xF00D
    finally:
        copyreg.remove_extension("os", "system", 0xF00D)


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("wrap", [list, tuple])
def test_decode_lists_and_tuples(protocol, wrap) -> None:
    items = wrap([wrap(["a.b", wrap([NOW - 10, 1.5])]), wrap(["c", wrap([NOW - 5, 7])]),
                  wrap(["a.b", wrap([NOW - 4.9, -2.25])])])
    keys, ts, vals, bad, problem = decode_items(safe_loads(pickle.dumps(items, protocol=protocol)), NOW)
    assert keys == ["a.b", "c", "a.b"]
    assert ts.tolist() == [NOW - 10, NOW - 5, NOW - 5]
    assert vals.tolist() == [1.5, 7.0, -2.25]
    assert bad == 0 and problem == ""
    assert ts.dtype == np.int64 and vals.dtype == np.float64


def test_decode_bad_items_counted_good_ones_kept() -> None:
    obj = [("ok", (1, 2)), ("short",), "str_item", ("k", 5), (5, (1, 2)), ("k", (1, 2, 3)),
           ("strs", ("3", "4.5")), ("boolts", (True, 1.0)), ("inf", (1, float("inf"))),
           ("neg", (-5, 1)), ("now", (-1, 1)), ("nan", (2, float("nan"))), ("big", (2 ** 70, 1)),
           ("none", (1, None)), ("dict", {"a": 1})]
    keys, ts, vals, bad, problem = decode_items(obj, NOW)
    assert keys == ["ok", "strs", "now", "nan"]
    assert ts.tolist() == [1, 3, NOW, 2]
    assert vals[:3].tolist() == [2.0, 4.5, 1.0] and math.isnan(vals[3])
    assert bad == 11
    assert problem


def test_decode_top_level_must_be_a_sequence() -> None:
    for obj in ({"a": 1}, "string", 5, None):
        with pytest.raises(BadFrame):
            decode_items(obj, NOW)
    assert decode_items([], NOW)[0] == []


def test_python2_frames() -> None:
    # carbon-relay on python 2: protocol 2, str keys as SHORT_BINSTRING, BININT timestamps
    frame = (b"\x80\x02]U\x07py2.key" + b"J" + struct.pack("<i", NOW) + b"G" + struct.pack(">d", 1.5)
             + b"\x86\x86a.")
    keys, ts, vals, bad, _ = decode_items(safe_loads(frame), NOW + 5)
    assert keys == ["py2.key"] and ts.tolist() == [NOW] and vals.tolist() == [1.5] and bad == 0
