"""The Graphite function registry: declare a function once, get checking and /functions.

Every render function is a plain Python function decorated with
`function`. The declaration (graphite name, parameters, group) drives:

* argument binding and checking -- positional and keyword arguments are
  matched to the declared parameters, defaults filled in, literals
  type-checked and converted (a ``float`` parameter receives a float even
  when written ``2``), and any problem raises `QueryError` naming the
  function, the parameter and the column: ``scale(): argument 'factor'
  must be a number, got string at column 14``. The parser runs the same
  check statically (series arguments are placeholders) so bad targets
  fail before any fetch;
* `functions_metadata` -- graphite-web's ``/functions`` JSON (what
  Grafana's function editor reads).

How to add a function
=====================

1. Pick the module under ``cyclone/query/functions/`` for its graphite
   group (combine.py = "Combine", transform.py = "Transform",
   calculate.py = "Calculate", alias.py = "Alias", filtering.py = "Filter
   Series" and "Filter Data", ordering.py = "Sorting", grouping.py =
   "Combine" by node (groupByNode, *WithWildcards), graph.py = "Graph", special.py = "Special");
   create one if needed and import it in
   ``functions/__init__.py``.
2. Read graphite-web 1.1.10's implementation (``graphite/render/functions.py``)
   for the exact semantics: series name format (``%g`` vs ``%s``, quotes,
   spaces), which tags it sets, whether it keeps ``pathExpression``, how it
   treats None, xFilesFactor, and different steps.
3. Declare it, with the parameter names and types graphite uses
   (they are the keyword argument names users type), and write it with
   numpy on ``series.values`` (NaN = None); no per-point Python loops::

       from cyclone.query.registry import Param, ParamType as T, function
       from cyclone.query.series import SeriesList

       @function(
           "scale",
           group="Transform",
           params=[
               Param("seriesList", T.seriesList, required=True),
               Param("factor", T.float, required=True),
           ],
       )
       def scale(ctx, series_list: SeriesList, factor: float) -> SeriesList:
           \"\"\"Multiplies every value by `factor`. (This docstring is the
           description shown by /functions.)\"\"\"
           return [
               s.evolve(name=f"scale({s.name},{factor:g})",
                        path_expression=f"scale({s.name},{factor:g})",
                        values=s.values * factor).with_tag("scale", factor)
               for s in series_list
           ]

   The implementation is called as ``impl(ctx, *values)`` with one value
   per declared parameter, in declaration order (a ``multiple=True``
   parameter -- always the last -- arrives as a list). ``ctx`` is the
   evaluator's `cyclone.query.evaluator.Context`: the request window
   (``ctx.start``, ``ctx.end``, ``ctx.now``, ``ctx.tz``), the request's
   xFilesFactor (``ctx.x_files_factor``), shared request state
   (``ctx.state``), and ``ctx.refetch(start, end)`` for functions that
   must re-evaluate their series argument over another window (timeShift,
   movingAverage, ...), as graphite-web does.
   Rules: never modify an input series or its ``values`` array (fetched
   arrays are read-only); build results with ``TimeSeries.copy`` (graphite's
   ``copy``: path_expression becomes the new name, display options reset)
   or ``TimeSeries.evolve`` (graphite's in-place edits: everything kept);
   store tags with ``with_tag`` (tag values are strings, like graphite's).
   Raise `QueryError` for bad input that the declaration cannot express.
   Helpers: `cyclone.query.series` (``normalize`` -- graphite's step
   normalisation --, ``consolidate_values``, ``stack_rows``, ``xff_ok``),
   `cyclone.query.aggfuncs` (``reduce_rows`` / ``reduce_windows``: graphite's
   aggregation functions over matrix rows / sliding windows),
   `cyclone.query.timeparse` (``parse_time_offset``) and
   ``cyclone/query/functions/_util.py`` (``fmt_g`` for graphite's ``%g``,
   ``format_path_expressions``, ``py_round``).
   ``aliases=("sum",)`` registers short names; ``aggregator=True`` marks
   functions usable as an aggregation by name (graphite's
   ``aggOrSeriesFunc`` options).
4. Add rows to the differential table in ``tests/query/test_differential.py``
   (one line each: the target string; graphite-web is the oracle).

Parameter types are graphite's ``ParamTypes`` names (`ParamType`).
"""

from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Sequence

from cyclone.query.aggfuncs import valid_agg_func_names
from cyclone.query.errors import QueryError
from cyclone.query.timeparse import is_valid_offset

__all__ = [
    "ParamType",
    "Param",
    "FunctionDef",
    "function",
    "get_function",
    "all_functions",
    "functions_metadata",
    "check_expression",
    "SERIES_PLACEHOLDER",
    "UNKNOWN_PLACEHOLDER",
]


class ParamType(Enum):
    """graphite-web's ParamTypes, by the names /functions reports."""

    aggFunc = "aggFunc"
    aggOrSeriesFunc = "aggOrSeriesFunc"
    any = "any"
    boolean = "boolean"
    date = "date"
    float = "float"
    intOrInf = "intOrInf"
    intOrInterval = "intOrInterval"
    integer = "integer"
    interval = "interval"
    node = "node"
    nodeOrTag = "nodeOrTag"
    series = "series"
    seriesList = "seriesList"
    seriesLists = "seriesLists"
    string = "string"
    tag = "tag"


_SERIES_TYPES = (ParamType.seriesList, ParamType.seriesLists, ParamType.series)


class _Placeholder:
    """Stands for an argument value while checking statically (before fetch)."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


#: A path or function call: evaluates to a series list.
SERIES_PLACEHOLDER = _Placeholder("series list")
#: A template variable (``$1``): its type is known only at evaluation.
UNKNOWN_PLACEHOLDER = _Placeholder("template variable")


@dataclass(frozen=True)
class Param:
    """One declared parameter (graphite's ``Param``)."""

    name: str
    type: ParamType
    required: bool = False
    default: Any = None
    multiple: bool = False
    options: tuple[Any, ...] = ()
    suggestions: tuple[Any, ...] = ()

    def all_options(self) -> list[Any]:
        opts = set(self.options)
        if self.type is ParamType.aggFunc:
            opts.update(valid_agg_func_names())
        elif self.type is ParamType.aggOrSeriesFunc:
            opts.update(valid_agg_func_names())
            opts.update(f.name for f in _REGISTRY.values() if f.aggregator)
        return sorted(opts, key=str)

    def to_json(self) -> dict[str, Any]:
        """graphite's ``Param.toJSON``: unset attributes are left out."""
        out: dict[str, Any] = {"name": self.name, "type": self.type.value}
        if self.required:
            out["required"] = True
        if self.default is not None:
            out["default"] = _json_safe(self.default)
        if self.multiple:
            out["multiple"] = True
        opts = self.all_options()
        if opts:
            out["options"] = [_json_safe(o) for o in opts]
        if self.suggestions:
            out["suggestions"] = [_json_safe(s) for s in self.suggestions]
        return out


def _json_safe(value: Any) -> Any:
    # graphite prints an infinite default as 1e9999, which json.loads can
    # only read back as inf; we say "inf", which our parser reads as infinity.
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else None)
    return value


@dataclass
class FunctionDef:
    """A registered function: its declaration and implementation."""

    name: str
    impl: Callable[..., Any]
    params: tuple[Param, ...]
    group: str
    description: str
    module: str
    aliases: tuple[str, ...] = ()
    aggregator: bool = False
    signature: str = field(default="")

    def bind(self, args: Sequence[Any], kwargs: dict[str, Any], positions: "_Positions | None" = None) -> list[Any]:
        """Match, check and convert argument values; one value per parameter.

        `args` / `kwargs` hold evaluated values (or placeholders when
        checking statically); `positions` locates them for error messages.
        """
        return _bind(self, list(args), dict(kwargs), positions or _Positions(None, [], {}), self.name)

    def metadata(self, name: str | None = None) -> dict[str, Any]:
        name = name or self.name
        return {
            "name": name,
            "function": name + self.signature,
            "description": self.description,
            "module": self.module,
            "group": self.group,
            "params": [p.to_json() for p in self.params],
        }


_REGISTRY: dict[str, FunctionDef] = {}
_loaded = False


def _signature(params: Sequence[Param]) -> str:
    parts = []
    for p in params:
        if p.multiple:
            parts.append(f"*{p.name}")
        elif p.required and p.default is None:
            parts.append(p.name)
        else:
            parts.append(f"{p.name}={p.default!r}")
    return "(" + ", ".join(parts) + ")"


def function(
    name: str,
    *,
    params: Sequence[Param],
    group: str,
    aliases: Sequence[str] = (),
    aggregator: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated implementation as Graphite function `name` (and `aliases`)."""
    params = tuple(params)
    for i, p in enumerate(params):
        if not isinstance(p, Param):
            raise TypeError(f"{name}: params must be Param objects")
        if p.multiple and i != len(params) - 1:
            raise TypeError(f"{name}: only the last parameter may be multiple")

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        fdef = FunctionDef(
            name=name,
            impl=impl,
            params=params,
            group=group,
            description=inspect.getdoc(impl) or "",
            module=impl.__module__,
            aliases=tuple(aliases),
            aggregator=aggregator,
            signature=_signature(params),
        )
        for key in (name, *aliases):
            if key in _REGISTRY and _REGISTRY[key].impl is not impl:
                raise ValueError(f"Graphite function {key!r} registered twice")
            _REGISTRY[key] = fdef
        impl.graphite = fdef  # type: ignore[attr-defined]
        return impl

    return register


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("cyclone.query.functions")


def get_function(name: str, position: int | None = None) -> FunctionDef:
    """The registered function `name`; QueryError "unknown function" otherwise."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        where = f" at column {position + 1}" if position is not None else ""
        raise QueryError(f"unknown function {name!r}{where}", position) from None


def all_functions() -> dict[str, FunctionDef]:
    """Every registered name (aliases included) -> its definition."""
    _ensure_loaded()
    return dict(_REGISTRY)


def functions_metadata(group: str | None = None, grouped: bool = False) -> dict[str, Any]:
    """graphite-web's ``/functions`` answer: {name: {name, function, description,
    module, group, params}} (optionally only one `group`, or nested by group).
    Plain JSON: json.dumps(..., allow_nan=False) accepts it."""
    _ensure_loaded()
    out: dict[str, Any] = {}
    for name in sorted(_REGISTRY):
        fdef = _REGISTRY[name]
        if group is not None and fdef.group != group:
            continue
        info = fdef.metadata(name)
        if grouped:
            out.setdefault(fdef.group, {})[name] = info
        else:
            out[name] = info
    return out


# -- argument binding --------------------------------------------------------


@dataclass
class _Positions:
    """Where a call's arguments are in the target (for error messages)."""

    call: int | None
    args: list[int]
    kwargs: dict[str, int]  # keyword -> offset of its value
    kwarg_names: dict[str, int] = field(default_factory=dict)  # keyword -> offset of the keyword

    @classmethod
    def of(cls, call: Any) -> "_Positions":
        return cls(
            call.pos,
            [a.pos for a in call.args],
            {k: a.pos for k, a in call.kwargs},
            dict(zip((k for k, _ in call.kwargs), call.kwarg_positions)),
        )


def _describe(value: Any) -> str:
    if isinstance(value, _Placeholder):
        return value.what
    if isinstance(value, list):
        return "series list"
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _BadValue(Exception):
    def __init__(self, expected: str, hint: str = ""):
        self.expected = expected
        self.hint = hint


def _check_value(p: Param, v: Any) -> Any:
    """Check and convert one value for parameter `p` (raises _BadValue)."""
    t = p.type
    if v is UNKNOWN_PLACEHOLDER or t is ParamType.any:
        return v
    if t in _SERIES_TYPES:
        if v is SERIES_PLACEHOLDER or isinstance(v, list):
            return v
        raise _BadValue("a series list (a path or function call)")
    series_hint = ""
    if v is SERIES_PLACEHOLDER:
        series_hint = " (did you forget the quotes?)" if t in (
            ParamType.string, ParamType.interval, ParamType.intOrInterval, ParamType.aggFunc,
            ParamType.aggOrSeriesFunc, ParamType.tag, ParamType.nodeOrTag, ParamType.date,
        ) else ""
    if t is ParamType.float:
        if _is_number(v):
            return float(v)
        raise _BadValue("a number", series_hint)
    if t in (ParamType.integer, ParamType.node):
        if _is_int(v):
            return v
        raise _BadValue("an integer", series_hint)
    if t is ParamType.intOrInf:
        if _is_int(v) or (isinstance(v, float) and v == math.inf):
            return v
        raise _BadValue("an integer or inf", series_hint)
    if t is ParamType.boolean:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        if _is_number(v) and v in (0, 1):
            return bool(v)
        raise _BadValue("a boolean (true or false)", series_hint)
    if t in (ParamType.string, ParamType.tag):
        if isinstance(v, str):
            return v
        raise _BadValue("a string", series_hint)
    if t is ParamType.interval:
        if isinstance(v, str) and is_valid_offset(v):
            return v
        raise _BadValue("a time interval such as '5min' or '-1h'", series_hint)
    if t is ParamType.intOrInterval:
        if _is_number(v):
            return v
        if isinstance(v, str) and is_valid_offset(v):
            return v
        raise _BadValue("a number of points or a time interval such as '5min'", series_hint)
    if t is ParamType.nodeOrTag:
        if _is_int(v) or isinstance(v, str):
            return v
        raise _BadValue("a node index or a tag name", series_hint)
    if t is ParamType.date:
        if _is_int(v) or isinstance(v, str):
            return v
        raise _BadValue("a date", series_hint)
    if t is ParamType.aggFunc:
        if isinstance(v, str):
            names = valid_agg_func_names()
            if v in names or (v.endswith("Series") and v[:-6] in names):
                return v
            raise _BadValue(f"an aggregation function ({', '.join(names)})")
        raise _BadValue("an aggregation function name (a string)", series_hint)
    if t is ParamType.aggOrSeriesFunc:
        if isinstance(v, str):
            names = valid_agg_func_names()
            if v in names or (v.endswith("Series") and v[:-6] in names):
                return v
            fdef = _REGISTRY.get(v)
            if fdef is not None and fdef.aggregator:
                return v
            raise _BadValue("an aggregation function or aggregating series function name")
        raise _BadValue("an aggregation function name (a string)", series_hint)
    return v  # pragma: no cover


def _convert(fname: str, p: Param, v: Any, pos: int | None) -> Any:
    try:
        out = _check_value(p, v)
    except _BadValue as e:
        where = f" at column {pos + 1}" if pos is not None else ""
        shown = "" if isinstance(v, (list, _Placeholder)) else f" {v!r}"
        raise QueryError(
            f"{fname}(): argument {p.name!r} must be {e.expected}, got {_describe(v)}{shown}{e.hint}{where}", pos
        ) from None
    if p.options and not isinstance(out, _Placeholder) and out not in p.options:
        where = f" at column {pos + 1}" if pos is not None else ""
        allowed = ", ".join(repr(o) for o in p.options)
        raise QueryError(f"{fname}(): argument {p.name!r} must be one of {allowed}, got {out!r}{where}", pos)
    return out


def _bind(fdef: FunctionDef, args: list[Any], kwargs: dict[str, Any], pos: _Positions, fname: str) -> list[Any]:
    params = fdef.params
    call_where = f" at column {pos.call + 1}" if pos.call is not None else ""
    values: list[Any] = [None] * len(params)
    given = [False] * len(params)
    multiple = params[-1].multiple if params else False

    def arg_pos(i: int) -> int | None:
        return pos.args[i] if i < len(pos.args) else pos.call

    n_fixed = len(params) - 1 if multiple else len(params)
    if len(args) > n_fixed and not multiple:
        raise QueryError(
            f"{fname}(): too many arguments: takes at most {len(params)}, got {len(args) + len(kwargs)}"
            f"{' at column ' + str(arg_pos(n_fixed) + 1) if arg_pos(n_fixed) is not None else ''}",
            arg_pos(n_fixed),
        )
    for i, v in enumerate(args[:n_fixed]):
        p = params[i]
        if v is None:
            continue
        values[i] = _convert(fname, p, v, arg_pos(i))
        given[i] = True
    if multiple:
        extra = args[n_fixed:]
        p = params[-1]
        converted = [_convert(fname, p, v, arg_pos(n_fixed + j)) for j, v in enumerate(extra) if v is not None]
        values[-1] = converted
        given[-1] = bool(converted)

    by_name = {p.name: i for i, p in enumerate(params)}
    for key, v in kwargs.items():
        kpos = pos.kwarg_names.get(key, pos.kwargs.get(key, pos.call))
        where = f" at column {kpos + 1}" if kpos is not None else ""
        if key not in by_name:
            known = ", ".join(p.name for p in params) or "none"
            raise QueryError(f"{fname}(): unexpected keyword argument {key!r} (parameters: {known}){where}", kpos)
        i = by_name[key]
        if given[i] or (params[i].multiple and args[n_fixed:]):
            raise QueryError(f"{fname}(): got multiple values for argument {key!r}{where}", kpos)
        if v is None:
            continue
        vpos = pos.kwargs.get(key, kpos)
        if params[i].multiple:
            values[i] = [_convert(fname, params[i], v, vpos)]
        else:
            values[i] = _convert(fname, params[i], v, vpos)
        given[i] = True

    for i, p in enumerate(params):
        if given[i]:
            continue
        if p.required:
            raise QueryError(f"{fname}(): missing required argument {p.name!r}{call_where}", pos.call)
        values[i] = [] if p.multiple else p.default
    return values


# -- static checking (used by the parser) -----------------------------------


def check_expression(expr: Any) -> None:
    """Check every call in a parsed expression against the registry."""
    from cyclone.query.parser import Call, Literal, PathExpr, Template

    def static_value(node: Any, in_template: bool) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, PathExpr):
            if in_template and "$" in node.path:
                return UNKNOWN_PLACEHOLDER
            return SERIES_PLACEHOLDER
        return SERIES_PLACEHOLDER

    def visit(node: Any, in_template: bool) -> None:
        if isinstance(node, Template):
            visit(node.expr, True)
            return
        if not isinstance(node, Call):
            return
        for a in node.args:
            visit(a, in_template)
        for _, a in node.kwargs:
            visit(a, in_template)
        if node.name == "seriesByTag":
            return
        fdef = get_function(node.name, node.pos)
        positions = _Positions.of(node)
        _bind(
            fdef,
            [static_value(a, in_template) for a in node.args],
            {k: static_value(a, in_template) for k, a in node.kwargs},
            positions,
            node.name,
        )

    visit(expr, False)
