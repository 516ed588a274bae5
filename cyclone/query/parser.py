"""Parser for Graphite target expressions (graphite-web 1.1 grammar).

``parse(target)`` turns a target string into a small immutable syntax tree:

* `PathExpr` -- a metric path or glob pattern: ``a.b.c``, ``a.*.{b,c}.d[0-9]``,
  ``host-1.cpu:0.x#y@z%w=v``. Characters allowed in a path are graphite's:
  every printable character except whitespace and ``(){},.'"\\|``; dots
  separate non-empty components; ``{a,b}`` is an alternation (its commas do
  not end the argument); a backslash escapes one of ``(){},.'"\\|=``.
* `Literal` -- ``kind`` is one of ``integer`` (``-12``), ``float``
  (``1.5``, ``-0.25``), ``scientific`` (``1e3``, ``-2.5E-2``; a float),
  ``string`` (single or double quotes; the text between the quotes is
  kept as written, backslashes included, as graphite does -- so
  ``aliasSub(x, "(\\d+)", "\\1")`` hands ``\\1`` to the regex engine),
  ``boolean`` (true/false, any case), ``none`` (None, any case) and
  ``infinity`` (inf, any case). Numbers are numbers only where graphite
  takes them as such: followed by ``,`` ``)`` or the end; ``2h`` is a path.
* `Call` -- ``name(arg, ..., kw=arg, ...)``; positional arguments come
  before keyword arguments. ``raw`` keeps the call's source text.
* `Template` -- ``template(expr, "a", 2)`` / ``template(expr, x="a")``:
  ``$1``, ``$x`` in the paths of expr are replaced at evaluation.

The pipe form ``a.b.c|scale(2)|alias("x")`` is rewritten while parsing
into the nested form ``alias(scale(a.b.c, 2), "x")`` (graphite 1.1
semantics: ``x|f(args)`` == ``f(x, args)``).

Whitespace is allowed around tokens. Unlike graphite-web (which silently
ignores anything after the first complete expression), trailing text is an
error. Any problem raises `QueryError` whose message names the column
(1-based) and whose ``position`` is the 0-based offset.

By default ``parse`` also checks every call against the function registry
(unknown function, unknown keyword, missing or extra arguments, literal of
the wrong type), so a bad target fails before any data is fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

from cyclone.query.errors import QueryError

__all__ = ["Expr", "PathExpr", "Literal", "Call", "Template", "parse", "walk", "first_path_expression"]


@dataclass(frozen=True)
class PathExpr:
    path: str
    pos: int = 0


@dataclass(frozen=True)
class Literal:
    value: Any
    kind: str
    pos: int = 0


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple["Expr", ...] = ()
    kwargs: tuple[tuple[str, "Expr"], ...] = ()
    pos: int = 0
    raw: str = field(default="", compare=False)
    #: Offsets of the keyword names, in the order of `kwargs`.
    kwarg_positions: tuple[int, ...] = field(default=(), compare=False)

    def kwarg(self, name: str) -> "Expr | None":
        for key, value in self.kwargs:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Template:
    expr: "Expr"
    args: tuple[Literal, ...] = ()
    kwargs: tuple[tuple[str, Literal], ...] = ()
    pos: int = 0


Expr = Union[PathExpr, Literal, Call, Template]

# Characters that end a path element (graphite's `symbols`).
_SYMBOLS = "(){},.'\"\\|"
_ESCAPABLE = _SYMBOLS + "="
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?")
_STRING_RES = {
    '"': re.compile(r'"(?:[^"\n\r\\]|(?:"")|(?:\\(?:[^x]|x[0-9a-fA-F]+)))*"'),
    "'": re.compile(r"'(?:[^'\n\r\\]|(?:'')|(?:\\(?:[^x]|x[0-9a-fA-F]+)))*'"),
}
_KEYWORDS = {"true": ("boolean", True), "false": ("boolean", False), "none": ("none", None), "inf": ("infinity", float("inf"))}


def _is_path_char(c: str) -> bool:
    return c not in _SYMBOLS and c.isprintable() and not c.isspace()


def _show(c: str) -> str:
    return repr(c) if c else "end of target"


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.n = len(text)
        # Open parentheses (offsets), to report unbalanced ones precisely.
        self.open_parens: list[int] = []

    # -- helpers -----------------------------------------------------------
    def error(self, message: str, pos: int | None = None) -> QueryError:
        pos = self.i if pos is None else pos
        return QueryError(f"{message} at column {pos + 1}", pos, self.text)

    def unbalanced_close(self) -> QueryError:
        return QueryError(
            f"unbalanced parenthesis at column {self.i + 1}: unexpected ')'", self.i, self.text
        )

    def peek(self) -> str:
        return self.text[self.i] if self.i < self.n else ""

    def skip_ws(self) -> None:
        while self.i < self.n and self.text[self.i].isspace():
            self.i += 1

    def unexpected(self, expected: str) -> QueryError:
        c = self.peek()
        if c == ")" and not self.open_parens:
            return self.unbalanced_close()
        if c == "":
            if self.open_parens:
                pos = self.open_parens[-1]
                return QueryError(
                    f"unbalanced parenthesis at column {pos + 1}: '(' is never closed", pos, self.text
                )
            return self.error(f"unexpected end of target, expected {expected}")
        return self.error(f"unexpected {_show(c)}, expected {expected}")

    # -- grammar -----------------------------------------------------------
    def target(self) -> Expr:
        self.skip_ws()
        if self.i >= self.n:
            raise QueryError("empty target", 0, self.text)
        expr = self.expression()
        self.skip_ws()
        if self.i < self.n:
            if self.peek() == ")":
                raise self.unbalanced_close()
            raise self.error(f"unexpected {_show(self.peek())} after a complete expression")
        return expr

    def expression(self) -> Expr:
        expr = self.primary()
        while True:
            save = self.i
            self.skip_ws()
            if self.peek() != "|":
                self.i = save
                return expr
            self.i += 1
            self.skip_ws()
            start = self.i
            m = _IDENT_RE.match(self.text, self.i)
            if not m:
                raise self.unexpected("a function call after '|'")
            self.i = m.end()
            self.skip_ws()
            if self.peek() != "(":
                raise self.error(f"expected '(' after function name {m.group(0)!r} in a pipe")
            call = self.call_rest(m.group(0), start)
            expr = Call(call.name, (expr,) + call.args, call.kwargs, call.pos, call.raw, call.kwarg_positions)

    def primary(self) -> Expr:
        start = self.i
        c = self.peek()
        if c in ("'", '"'):
            raise self.error("a string cannot be used as a target or series list; expected a path or function call")
        m = _IDENT_RE.match(self.text, self.i)
        if m:
            after = m.end()
            j = after
            while j < self.n and self.text[j].isspace():
                j += 1
            if j < self.n and self.text[j] == "(":
                self.i = j
                name = m.group(0)
                if name == "template":
                    return self.template_rest(start)
                return self.call_rest(name, start)
        path = self.path()
        if self.peek() == "(":
            # e.g. "foo-bar(" or "a.b(": not a valid function name.
            raise self.error(f"invalid function name {path.path!r}", start)
        return path

    def call_rest(self, name: str, start: int) -> Call:
        # self.i is at '('
        self.open_parens.append(self.i)
        self.i += 1
        args: list[Expr] = []
        kwargs: list[tuple[str, Expr]] = []
        kw_positions: list[int] = []
        self.skip_ws()
        if self.peek() == ")":
            self.i += 1
            self.open_parens.pop()
            return Call(name, (), (), start, self.text[start : self.i])
        while True:
            self.skip_ws()
            kw = self.kwarg_name()
            value = self._keyword_value(kw) if kw is not None else None
            if value is not None:
                kw_name, kw_pos = kw
                if any(k == kw_name for k, _ in kwargs):
                    raise self.error(f"{name}(): keyword argument {kw_name!r} given twice", kw_pos)
                kwargs.append((kw_name, value))
                kw_positions.append(kw_pos)
            else:
                arg_pos = self.i
                value = self.argument()
                if kwargs:
                    raise self.error(f"{name}(): positional argument follows keyword argument", arg_pos)
                args.append(value)
            self.skip_ws()
            c = self.peek()
            if c == ",":
                self.i += 1
                continue
            if c == ")":
                self.i += 1
                self.open_parens.pop()
                return Call(name, tuple(args), tuple(kwargs), start, self.text[start : self.i], tuple(kw_positions))
            raise self.unexpected("',' or ')'")

    def _keyword_value(self, kw: tuple[str, int]) -> Expr | None:
        """The value after `name=`; None (back at the name) when what follows is no
        argument but the text reads as a path, as graphite's grammar does
        (`f(a=.b)` is the path `a=.b`: '=' is a metric character)."""
        parens = len(self.open_parens)
        try:
            return self.argument()
        except QueryError as e:
            self.i = kw[1]
            del self.open_parens[parens:]
            try:
                self.path()
            except QueryError:
                raise e from None
            self.skip_ws()
            if not (self._followed_by_arg_end(self.i) or self.peek() == "|"):
                raise e from None
            self.i = kw[1]
            return None

    def kwarg_name(self) -> tuple[str, int] | None:
        m = _IDENT_RE.match(self.text, self.i)
        if not m:
            return None
        j = m.end()
        while j < self.n and self.text[j].isspace():
            j += 1
        # like graphite's grammar, `name=` with no value after it is not a keyword
        # argument but a path (tagged-series names contain '=')
        if j < self.n and self.text[j] == "=" and not self._followed_by_arg_end(j + 1):
            pos = self.i
            self.i = j + 1
            self.skip_ws()
            return m.group(0), pos
        return None

    def _followed_by_arg_end(self, j: int) -> bool:
        while j < self.n and self.text[j].isspace():
            j += 1
        return j >= self.n or self.text[j] in ",)"

    def argument(self) -> Expr:
        self.skip_ws()
        start = self.i
        c = self.peek()
        if c == "":
            raise self.unexpected("an argument")
        if c in ("'", '"'):
            return self.string()
        m = _NUMBER_RE.match(self.text, self.i)
        if m and self._followed_by_arg_end(m.end()):
            self.i = m.end()
            text = m.group(0)
            if "e" in text or "E" in text:
                return Literal(float(text), "scientific", start)
            if "." in text:
                return Literal(float(text), "float", start)
            return Literal(int(text), "integer", start)
        m = _IDENT_RE.match(self.text, self.i)
        if m and m.group(0).lower() in _KEYWORDS and self._followed_by_arg_end(m.end()):
            self.i = m.end()
            kind, value = _KEYWORDS[m.group(0).lower()]
            return Literal(value, kind, start)
        if c in ",)":
            raise self.unexpected("an argument")
        return self.expression()

    def string(self) -> Literal:
        start = self.i
        quote = self.peek()
        m = _STRING_RES[quote].match(self.text, self.i)
        if not m:
            raise self.error(f"unterminated string (opening {quote} never closed)", start)
        self.i = m.end()
        return Literal(m.group(0)[1:-1], "string", start)

    def path(self) -> PathExpr:
        start = self.i
        out: list[str] = []
        element_chars = 0
        while True:
            c = self.peek()
            if c == "\\":
                nxt = self.text[self.i + 1] if self.i + 1 < self.n else ""
                if nxt and nxt in _ESCAPABLE:
                    out.append(nxt)
                    self.i += 2
                    element_chars += 1
                    continue
                raise self.error("invalid escape in path (a backslash may only escape one of (){},.'\"\\|=)")
            if c == "{":
                out.append(self.brace_group())
                element_chars += 1
                continue
            if c == ".":
                if element_chars == 0:
                    raise self.error("empty path component" if out else "unexpected '.'", self.i)
                out.append(".")
                self.i += 1
                element_chars = 0
                continue
            if c and _is_path_char(c):
                out.append(c)
                self.i += 1
                element_chars += 1
                continue
            break
        if not out:
            raise self.unexpected("a path or function call")
        if element_chars == 0:
            raise self.error("path ends with '.'", self.i - 1)
        return PathExpr("".join(out), start)

    def brace_group(self) -> str:
        start = self.i
        self.i += 1  # '{'
        out = ["{"]
        while True:
            c = self.peek()
            if c == "}":
                self.i += 1
                out.append("}")
                return "".join(out)
            if c == ",":
                out.append(",")
                self.i += 1
                continue
            if c == "\\":
                nxt = self.text[self.i + 1] if self.i + 1 < self.n else ""
                if nxt and nxt in _ESCAPABLE:
                    out.append(nxt)
                    self.i += 2
                    continue
            if c and _is_path_char(c):
                out.append(c)
                self.i += 1
                continue
            if c == "":
                raise self.error("unclosed '{' in path", start)
            raise self.error(f"unexpected {_show(c)} inside '{{...}}' in path (opened at column {start + 1})")

    def template_rest(self, start: int) -> Template:
        self.open_parens.append(self.i)
        self.i += 1
        self.skip_ws()
        inner_pos = self.i
        inner = self.expression()
        if isinstance(inner, (Literal, Template)):
            raise self.error("template(): the first argument must be a path or function call", inner_pos)
        args: list[Literal] = []
        kwargs: list[tuple[str, Literal]] = []
        while True:
            self.skip_ws()
            c = self.peek()
            if c == ")":
                self.i += 1
                self.open_parens.pop()
                return Template(inner, tuple(args), tuple(kwargs), start)
            if c != ",":
                raise self.unexpected("',' or ')'")
            self.i += 1
            self.skip_ws()
            kw = self.kwarg_name()
            arg_pos = self.i
            value = self.argument()
            if not isinstance(value, Literal) or value.kind not in ("integer", "float", "scientific", "string"):
                raise self.error(
                    "invalid template() syntax, only string/numeric arguments are allowed", arg_pos
                )
            if kw is not None:
                if args:
                    raise self.error("template(): use either positional or keyword arguments, not both", kw[1])
                kwargs.append((kw[0], value))
            else:
                if kwargs:
                    raise self.error("template(): use either positional or keyword arguments, not both", arg_pos)
                args.append(value)


def parse(target: str, validate: bool = True) -> Expr:
    """Parse one Graphite target; with `validate`, check calls against the registry."""
    if not isinstance(target, str):
        raise QueryError(f"target must be a string, got {type(target).__name__}")
    expr = _Parser(target).target()
    if validate:
        from cyclone.query.registry import check_expression

        try:
            check_expression(expr)
        except QueryError as e:
            if e.target is None:
                e.target = target
            raise
    return expr


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of `expr`, depth first, the node itself first."""
    yield expr
    if isinstance(expr, Call):
        for a in expr.args:
            yield from walk(a)
        for _, a in expr.kwargs:
            yield from walk(a)
    elif isinstance(expr, Template):
        yield from walk(expr.expr)


def first_path_expression(name: str) -> str | None:
    """The first metric path in an expression-like series name (graphite's
    ``_getFirstPathExpression``): descend into the first argument of calls
    until a path is found. None if there is none or the name does not parse."""
    try:
        expr: Expr | None = parse(name, validate=False)
    except QueryError:
        return None
    while expr is not None:
        if isinstance(expr, PathExpr):
            return expr.path
        if isinstance(expr, Call):
            expr = expr.args[0] if expr.args else None
        elif isinstance(expr, Template):
            expr = expr.expr
        else:
            return None
    return None
