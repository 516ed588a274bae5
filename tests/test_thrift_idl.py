"""The Thrift IDL, the committed generated package `cyclone_if`, and packaging.

Checks that thrift/gen-py/cyclone_if was generated from the current
thrift/cyclone_if.thrift (methods, argument ids/names/types/defaults, struct
fields), that the wire encoding is what the original Cyclone expects, that a
call survives a client -> processor -> handler -> client round trip, and that
setup.cfg ships every package.
"""

from __future__ import annotations

import configparser
import inspect
import math
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from setuptools import find_packages
from thrift.protocol import TBinaryProtocol
from thrift.Thrift import TType
from thrift.transport import TTransport

import cyclone_if
from cyclone_if import Cyclone, ttypes

REPO = Path(__file__).resolve().parent.parent
IDL_PATH = REPO / "thrift" / "cyclone_if.thrift"
GEN_DIR = REPO / "thrift" / "gen-py" / "cyclone_if"

# ------------------------------------------------------------ a small IDL reader

_TYPE = r"\w+(?:\s*<.*?>)?"
_FIELD = re.compile(rf"(\d+)\s*:\s*({_TYPE})\s+(\w+)(?:\s*=\s*(\w+))?\s*[;,)]?")
_STRUCT = re.compile(r"^struct\s+(\w+)\s*\{(.*?)^\}", re.S | re.M)
_SERVICE = re.compile(r"^service\s+(\w+)\s*\{(.*)^\}", re.S | re.M)
_METHOD = re.compile(rf"^\s*({_TYPE})\s+(\w+)\s*\((.*?)\)\s*;", re.S | re.M)


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def _fields(body: str) -> list[tuple[int, str, str, str | None]]:
    return [
        (int(fid), " ".join(t.split()), name, default or None) for fid, t, name, default in _FIELD.findall(body)
    ]


def _parse_idl() -> tuple[dict, dict]:
    text = _strip_comments(IDL_PATH.read_text())
    structs = {name: _fields(body) for name, body in _STRUCT.findall(text)}
    services = _SERVICE.findall(text)
    assert [name for name, _ in services] == ["Cyclone"]
    methods = {
        name: (" ".join(ret.split()), _fields(args)) for ret, name, args in _METHOD.findall(services[0][1])
    }
    return structs, methods


STRUCTS, METHODS = _parse_idl()

_BASE = {
    "bool": (TType.BOOL, None),
    "byte": (TType.BYTE, None),
    "i16": (TType.I16, None),
    "i32": (TType.I32, None),
    "i64": (TType.I64, None),
    "double": (TType.DOUBLE, None),
    "string": (TType.STRING, "UTF8"),
}


def _split_type_args(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i].strip())
            start = i + 1
    parts.append(inner[start:].strip())
    return parts


def expected_type(idl_type: str) -> tuple:
    """(TType, type_args) exactly as they appear in the generated thrift_spec."""
    idl_type = idl_type.strip()
    if idl_type in _BASE:
        return _BASE[idl_type]
    m = re.fullmatch(r"(list|set|map)\s*<(.*)>", idl_type)
    if m:
        args = [expected_type(a) for a in _split_type_args(m.group(2))]
        if m.group(1) == "map":
            (kt, ka), (vt, va) = args
            return TType.MAP, (kt, ka, vt, va, False)
        ((et, ea),) = args
        return (TType.LIST if m.group(1) == "list" else TType.SET), (et, ea, False)
    # the generator writes [Cls, None]; fix_spec() fills in Cls.thrift_spec at import
    cls = getattr(ttypes, idl_type)
    return TType.STRUCT, [cls, cls.thrift_spec]


def expected_default(idl_type: str, default: str | None) -> object:
    if default is None:
        return None
    if idl_type == "bool":
        return {"true": True, "false": False}[default]
    return int(default)


def spec_entries(cls: type) -> dict[int, tuple]:
    return {entry[0]: entry for entry in cls.thrift_spec if entry is not None}


# ------------------------------------------------------------ IDL <-> DESIGN.md


def test_idl_has_the_designed_structs() -> None:
    assert {name: [(fid, t, n) for fid, t, n, _ in fields] for name, fields in STRUCTS.items()} == {
        "Error": [(1, "string", "description"), (2, "bool", "recoverable"), (3, "bool", "ignored")],
        "Datapoint": [(1, "i64", "timestamp"), (2, "double", "value")],
        "ArchiveArg": [(1, "i32", "precision"), (2, "i32", "points")],
        "SeriesMetadata": [
            (1, "list<ArchiveArg>", "archive_args"),
            (2, "double", "x_files_factor"),
            (3, "i32", "agg_method"),
        ],
        "ReadResult": [
            (1, "Error", "error"),
            (2, "list<Datapoint>", "data"),
            (4, "i64", "start_time"),
            (5, "i64", "end_time"),
            (6, "i64", "step"),
        ],
        "ReadAllResult": [(1, "Error", "error"), (2, "SeriesMetadata", "metadata"), (3, "list<Datapoint>", "data")],
        "FindResult": [(1, "Error", "error"), (2, "list<string>", "results")],
        "DeleteResult": [
            (1, "Error", "error"),
            (2, "i64", "disk_series_deleted"),
            (3, "i64", "buffer_series_deleted"),
        ],
    }


def test_idl_has_the_designed_methods() -> None:
    assert METHODS == {
        "update_metadata": (
            "map<string, Error>",
            [
                (1, "map<string, SeriesMetadata>", "metadata", None),
                (2, "bool", "create_new", "true"),
                (3, "bool", "skip_existing_series", "false"),
                (4, "bool", "truncate_existing_series", "false"),
                (5, "bool", "skip_buffering", "false"),
                (6, "bool", "local_only", "false"),
            ],
        ),
        "delete_series": (
            "map<string, DeleteResult>",
            [(1, "list<string>", "patterns", None), (3, "bool", "deferred", "false"), (2, "bool", "local_only", "false")],
        ),
        "rename_series": (
            "map<string, Error>",
            [(1, "map<string, string>", "renames", None), (3, "bool", "merge", "false"), (2, "bool", "local_only", "false")],
        ),
        "write": (
            "map<string, Error>",
            [
                (1, "map<string, list<Datapoint>>", "data", None),
                (2, "bool", "skip_buffering", "false"),
                (3, "bool", "local_only", "false"),
            ],
        ),
        "read": (
            "map<string, map<string, ReadResult>>",
            [
                (1, "list<string>", "targets", None),
                (2, "i64", "start_time", None),
                (3, "i64", "end_time", None),
                (4, "bool", "local_only", "false"),
            ],
        ),
        "read_all": ("ReadAllResult", [(1, "string", "series", None), (2, "bool", "local_only", "false")]),
        "find": ("map<string, FindResult>", [(1, "list<string>", "patterns", None), (2, "bool", "local_only", "false")]),
        "stats": ("map<string, i64>", []),
        "get_verify_status": ("map<string, i64>", []),
        "start_verify": ("bool", [(1, "bool", "repair", None)]),
        "cancel_verify": ("bool", []),
        "get_read_from_all": ("bool", []),
        "set_read_from_all": ("bool", [(1, "bool", "read_from_all", None)]),
    }


# ------------------------------------------------------------ generated code <-> IDL


def test_generated_package_is_the_committed_one() -> None:
    assert Path(cyclone_if.__file__).resolve().parent == GEN_DIR
    assert Path(Cyclone.__file__).resolve() == GEN_DIR / "Cyclone.py"


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_generated_struct_matches_idl(name: str) -> None:
    cls = getattr(ttypes, name)
    fields = STRUCTS[name]
    expected = {
        fid: (fid, *expected_type(t)[:1], n, expected_type(t)[1], expected_default(t, d)) for fid, t, n, d in fields
    }
    assert spec_entries(cls) == expected
    # constructor argument order follows the field ids
    assert list(inspect.signature(cls.__init__).parameters)[1:] == [n for _, _, n, _ in sorted(fields)]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_generated_method_matches_idl(name: str) -> None:
    ret, args = METHODS[name]
    # Iface: same argument names, in declaration order
    assert list(inspect.signature(getattr(Cyclone.Iface, name)).parameters) == ["self"] + [a[2] for a in args]
    assert name in Cyclone.Processor(None)._processMap
    # <name>_args: same field ids, names, types and defaults
    args_cls = getattr(Cyclone, f"{name}_args")
    assert spec_entries(args_cls) == {
        fid: (fid, expected_type(t)[0], n, expected_type(t)[1], expected_default(t, d)) for fid, t, n, d in args
    }
    # <name>_result: field 0 'success' of the return type
    result_cls = getattr(Cyclone, f"{name}_result")
    assert result_cls.thrift_spec[0] == (0, expected_type(ret)[0], "success", expected_type(ret)[1], None)


def test_iface_has_no_methods_beyond_the_idl() -> None:
    public = {n for n, v in vars(Cyclone.Iface).items() if callable(v) and not n.startswith("_")}
    assert public == set(METHODS)


@pytest.mark.skipif(shutil.which("thrift") is None, reason="thrift compiler not installed (make thrift installs it)")
def test_committed_code_is_what_the_compiler_generates(tmp_path: Path) -> None:
    subprocess.run(["thrift", "--gen", "py", "-out", str(tmp_path), str(IDL_PATH)], check=True)
    fresh = tmp_path / "cyclone_if"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in GEN_DIR.iterdir() if p.name != "__pycache__")
    for n in names:
        assert (fresh / n).read_text() == (GEN_DIR / n).read_text(), f"{n} is stale: run `make thrift`"


# ------------------------------------------------------------ wire format


def _encode(obj: object, protocol_factory: object = TBinaryProtocol.TBinaryProtocolFactory()) -> bytes:
    buf = TTransport.TMemoryBuffer()
    obj.write(protocol_factory.getProtocol(buf))
    return buf.getvalue()


def _decode(cls: type, data: bytes, protocol_factory: object = TBinaryProtocol.TBinaryProtocolFactory()) -> object:
    obj = cls()
    obj.read(protocol_factory.getProtocol(TTransport.TMemoryBuffer(data)))
    return obj


def test_datapoint_wire_bytes() -> None:
    data = _encode(ttypes.Datapoint(timestamp=1527014460, value=700.0))
    assert data == (
        b"\x0a\x00\x01" + struct.pack(">q", 1527014460)  # field 1, i64
        + b"\x04\x00\x02" + struct.pack(">d", 700.0)  # field 2, double
        + b"\x00"  # stop
    )


def test_error_wire_bytes() -> None:
    data = _encode(ttypes.Error(description="x", recoverable=True, ignored=False))
    assert data == b"\x0b\x00\x01\x00\x00\x00\x01x" + b"\x02\x00\x02\x01" + b"\x02\x00\x03\x00" + b"\x00"


WRITE_DATA = {
    "servers.web-01.cpu": [ttypes.Datapoint(1700000000, 1.5), ttypes.Datapoint(1700000060, -2.25)],
    "ünï.数据": [ttypes.Datapoint(-5, 1e300)],
    "empty.series": [],
}


@pytest.mark.parametrize(
    "factory",
    [TBinaryProtocol.TBinaryProtocolFactory(), TBinaryProtocol.TBinaryProtocolAcceleratedFactory()],
    ids=["pure", "accelerated"],
)
def test_write_args_round_trip(factory: object) -> None:
    args = Cyclone.write_args(data=WRITE_DATA, skip_buffering=True, local_only=False)
    data = _encode(args, factory)
    decoded = _decode(Cyclone.write_args, data, factory)
    assert decoded == args
    assert decoded.data == WRITE_DATA
    assert [(p.timestamp, p.value) for p in decoded.data["servers.web-01.cpu"]] == [
        (1700000000, 1.5),
        (1700000060, -2.25),
    ]
    assert decoded.data["ünï.数据"][0].value == 1e300
    assert decoded.data["empty.series"] == []
    assert decoded.skip_buffering is True
    assert decoded.local_only is False
    # both encoders produce the same bytes
    assert data == _encode(args, TBinaryProtocol.TBinaryProtocolFactory())


def test_nan_value_survives_the_wire() -> None:
    decoded = _decode(ttypes.Datapoint, _encode(ttypes.Datapoint(10, math.nan)))
    assert decoded.timestamp == 10
    assert math.isnan(decoded.value)


def test_args_defaults() -> None:
    assert Cyclone.update_metadata_args().create_new is True
    assert Cyclone.update_metadata_args().skip_existing_series is False
    assert Cyclone.delete_series_args().deferred is False
    assert Cyclone.write_args().local_only is False


class _Handler(Cyclone.Iface):
    """A real (tiny) Iface implementation for the processor round trip."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def write(self, data, skip_buffering, local_only):  # type: ignore[override]
        self.calls.append(("write", data, skip_buffering, local_only))
        return {key: ttypes.Error(description="", recoverable=False, ignored=False) for key in sorted(data)}

    def delete_series(self, patterns, deferred, local_only):  # type: ignore[override]
        self.calls.append(("delete_series", patterns, deferred, local_only))
        return {p: ttypes.DeleteResult(error=None, disk_series_deleted=3, buffer_series_deleted=1) for p in patterns}


def _call(handler: _Handler, method: str, *args: object) -> object:
    factory = TBinaryProtocol.TBinaryProtocolAcceleratedFactory()
    request = TTransport.TMemoryBuffer()
    client = Cyclone.Client(factory.getProtocol(request))
    getattr(client, f"send_{method}")(*args)
    response = TTransport.TMemoryBuffer()
    Cyclone.Processor(handler).process(
        factory.getProtocol(TTransport.TMemoryBuffer(request.getvalue())), factory.getProtocol(response)
    )
    client._iprot = factory.getProtocol(TTransport.TMemoryBuffer(response.getvalue()))
    return getattr(client, f"recv_{method}")()


def test_client_processor_round_trip() -> None:
    handler = _Handler()
    result = _call(handler, "write", WRITE_DATA, False, True)
    assert result == {key: ttypes.Error("", False, False) for key in WRITE_DATA}
    result = _call(handler, "delete_series", ["a.**", "b.*"], True, False)
    assert result == {
        "a.**": ttypes.DeleteResult(None, 3, 1),
        "b.*": ttypes.DeleteResult(None, 3, 1),
    }
    assert handler.calls == [
        ("write", WRITE_DATA, False, True),
        ("delete_series", ["a.**", "b.*"], True, False),
    ]


# ------------------------------------------------------------ packaging


def test_installed_package_ships_the_generated_code() -> None:
    """The generated package imports from where setup.py maps it (not from a stray copy)."""
    import cyclone_if

    assert Path(cyclone_if.__file__).resolve().parent == (REPO / "thrift" / "gen-py" / "cyclone_if").resolve()
    setup_py = (REPO / "setup.py").read_text()
    assert '"cyclone_if": "thrift/gen-py/cyclone_if"' in setup_py
