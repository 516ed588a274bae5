"""Evaluate Graphite targets against a store.

``evaluate(targets, start, end, store)`` parses every target, collects every
path expression of all of them, fetches them with ONE batched
``store.read(patterns, start, end)`` call and evaluates the expressions
bottom-up. The result is graphite-web's: a flat list of `TimeSeries`, the
results of each target in order.

Data for a path expression becomes one `TimeSeries` per matching key,
sorted by key, with ``path_expression`` set to the pattern that matched
(graphite's ``pathExpression``), tags parsed from the key, and the
request's xFilesFactor. Keys whose read failed (``ReadResult.error``) are
left out, as graphite-web leaves out a failing backend's series.

Functions that need data for another window -- timeShift, movingAverage and
the other moving window functions (preview data before ``start``),
hitcount with alignToInterval -- call ``ctx.refetch(start, end)``: it
re-evaluates the function's series argument over that window, fetching
that window's paths in one more batched read, exactly as graphite-web's
functions re-run ``evaluateTarget`` with a changed request context (so
the data and windows match graphite-web's).

Template expressions (``template(a.$1.b, "x")``) substitute their
variables into path expressions like graphite-web does; request-level
template values (graphite's ``&template[name]=value``) come in through
``template=``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import tzinfo, timezone
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

import numpy as np

from cyclone.query.errors import QueryError
from cyclone.series import CycloneError
from cyclone.query.parser import Call, Expr, Literal, PathExpr, Template, parse
from cyclone.query.registry import _Positions, functions_metadata, get_function
from cyclone.query.series import TimeSeries, parse_tags

__all__ = ["evaluate", "evaluate_expressions", "Context", "functions_metadata"]

log = logging.getLogger(__name__)

_NUMERIC_RE = re.compile(r"^-?[\d.]+$")


class _Fetcher:
    """Batched, cached reads per window, shared by one whole request."""

    def __init__(self, store: Any, x_files_factor: float | None):
        self.store = store
        self.x_files_factor = x_files_factor
        # (start, end) -> pattern -> [(key, start, end, step, values)]
        self.cache: dict[tuple[int, int], dict[str, list[tuple[str, int, int, int, np.ndarray]]]] = {}
        self.read_calls = 0

    def prefetch(self, patterns: Iterable[str], start: int, end: int) -> None:
        window = self.cache.setdefault((start, end), {})
        missing = sorted({p for p in patterns if p not in window})
        if not missing:
            return
        plain = [p for p in missing if not p.startswith("seriesByTag(")]
        tagged = [p for p in missing if p.startswith("seriesByTag(")]
        results: dict[str, Any] = {}
        if plain:
            self.read_calls += 1
            results.update(self.store.read(plain, start, end))
        if tagged:
            # Passed through verbatim, as graphite-web passes them to its
            # finders; a store without a tag index matches nothing (or
            # refuses the pattern, which counts as no match).
            try:
                self.read_calls += 1
                results.update(self.store.read(tagged, start, end))
            except CycloneError as e:
                log.info("tag query %s not supported by the store: %s", tagged, e)
        for pattern in missing:
            rows = []
            for key, rr in sorted((results.get(pattern) or {}).items()):
                if rr.error is not None:
                    log.warning("read of %s for %r failed: %s", key, pattern, rr.error)
                    continue
                values = np.asarray(rr.values, dtype=np.float64)
                if values.flags.writeable:
                    values = values.view()
                    values.flags.writeable = False
                rows.append((key, int(rr.start_time), int(rr.end_time), int(rr.step), values))
            window[pattern] = rows

    def series(self, pattern: str, start: int, end: int) -> list[TimeSeries]:
        window = self.cache.get((start, end))
        if window is None or pattern not in window:
            self.prefetch([pattern], start, end)
            window = self.cache[(start, end)]
        return [
            TimeSeries(
                key, s, e, step, values,
                path_expression=pattern,
                tags=parse_tags(key),
                x_files_factor=self.x_files_factor,
            )
            for key, s, e, step, values in window[pattern]
        ]


@dataclass
class Context:
    """What a function sees of the request (graphite's requestContext).

    ``start`` / ``end`` are the window being evaluated (epoch seconds; a
    refetch gives its sub-evaluation a shifted window), ``now`` the
    request's notion of now, ``tz`` the timezone for calendar alignment,
    ``x_files_factor`` the request's xFilesFactor (None: graphite's default,
    0), ``state`` a dict shared by the whole request (e.g. the running
    totals of ``stacked``).
    """

    start: int
    end: int
    now: int
    tz: tzinfo
    x_files_factor: float | None
    state: dict[str, Any]
    fetcher: _Fetcher
    template: dict[str, Any] = field(default_factory=dict)
    replacements: dict[str, Any] | None = None
    call: Call | None = None
    series_arg: Expr | None = None

    def with_window(self, start: int, end: int) -> "Context":
        return Context(
            int(start), int(end), self.now, self.tz, self.x_files_factor, self.state, self.fetcher,
            self.template, self.replacements,
        )

    def refetch(self, start: int, end: int) -> list[TimeSeries]:
        """Re-evaluate this call's series argument over [start, end) (graphite's
        ``evaluateTarget(newContext, requestContext['args'][0])``)."""
        if self.series_arg is None:
            return []
        sub = self.with_window(start, end)
        _prefetch(sub, [self.series_arg])
        return _flatten(_eval(sub, self.series_arg))


def _substitute(path: str, replacements: dict[str, Any] | None) -> tuple[bool, Any]:
    """graphite's template substitution in a path expression.

    Returns (True, path) for a path to fetch, or (False, value) when the
    whole path is one variable: its value is the argument itself (a number
    for numeric-looking strings), as in graphite-web.
    """
    if not replacements:
        return True, path
    expression = path
    for name, value in replacements.items():
        if expression == "$" + name:
            if isinstance(value, str) and _NUMERIC_RE.match(value):
                try:
                    return False, float(value)
                except ValueError:
                    pass
            return False, value
        expression = expression.replace("$" + name, str(value))
    return True, expression


def _template_replacements(ctx: Context, node: Template) -> dict[str, Any]:
    replacements: dict[str, Any] = {}
    for name, lit in node.kwargs:
        replacements[name] = lit.value
    for i, lit in enumerate(node.args):
        replacements[str(i + 1)] = lit.value
    replacements.update(ctx.template)
    return replacements


def _collect_patterns(node: Expr, replacements: dict[str, Any] | None, ctx: Context, out: set[str]) -> None:
    if isinstance(node, PathExpr):
        is_path, value = _substitute(node.path, replacements)
        if is_path:
            out.add(value)
    elif isinstance(node, Template):
        _collect_patterns(node.expr, _template_replacements(ctx, node), ctx, out)
    elif isinstance(node, Call):
        if node.name == "seriesByTag":
            out.add(node.raw)
            return
        for a in node.args:
            _collect_patterns(a, replacements, ctx, out)
        for _, a in node.kwargs:
            _collect_patterns(a, replacements, ctx, out)


def _prefetch(ctx: Context, nodes: Sequence[Expr]) -> None:
    patterns: set[str] = set()
    for node in nodes:
        _collect_patterns(node, ctx.replacements, ctx, patterns)
    if patterns:
        ctx.fetcher.prefetch(patterns, ctx.start, ctx.end)


def _flatten(result: Any) -> list[TimeSeries]:
    if isinstance(result, TimeSeries):
        return [result]
    if isinstance(result, list):
        return result
    return []


def _eval(ctx: Context, node: Expr) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, PathExpr):
        is_path, value = _substitute(node.path, ctx.replacements)
        if not is_path:
            return value
        return ctx.fetcher.series(value, ctx.start, ctx.end)
    if isinstance(node, Template):
        sub = ctx.with_window(ctx.start, ctx.end)
        sub.replacements = _template_replacements(ctx, node)
        return _eval(sub, node.expr)
    if isinstance(node, Call):
        if node.name == "seriesByTag":
            return ctx.fetcher.series(node.raw, ctx.start, ctx.end)
        fdef = get_function(node.name, node.pos)
        args = [_eval(ctx, a) for a in node.args]
        kwargs = {k: _eval(ctx, a) for k, a in node.kwargs}
        values = fdef.bind(args, kwargs, _Positions.of(node))
        first = fdef.params[0].name if fdef.params else None
        series_arg = node.args[0] if node.args else (node.kwarg(first) if first else None)
        call_ctx = Context(
            ctx.start, ctx.end, ctx.now, ctx.tz, ctx.x_files_factor, ctx.state, ctx.fetcher,
            ctx.template, ctx.replacements, node, series_arg,
        )
        try:
            return fdef.impl(call_ctx, *values)
        except QueryError as e:
            if e.position is None:
                e.position = node.pos
            raise
    raise QueryError(f"cannot evaluate {node!r}")  # pragma: no cover


def _resolve_tz(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return timezone.utc
    if isinstance(tz, str):
        try:
            return ZoneInfo(tz)
        except Exception:
            raise QueryError(f"unknown timezone {tz!r}") from None
    return tz


def evaluate_expressions(
    exprs: Sequence[Expr],
    start: int,
    end: int,
    store: Any,
    now: int | None = None,
    *,
    tz: str | tzinfo | None = None,
    x_files_factor: float | None = None,
    template: dict[str, Any] | None = None,
) -> list[TimeSeries]:
    """Evaluate already-parsed targets (see `evaluate`)."""
    ctx = Context(
        int(start),
        int(end),
        int(now if now is not None else time.time()),
        _resolve_tz(tz),
        x_files_factor,
        {},
        _Fetcher(store, x_files_factor),
        dict(template or {}),
    )
    _prefetch(ctx, exprs)
    out: list[TimeSeries] = []
    for expr in exprs:
        out.extend(_flatten(_eval(ctx, expr)))
    return out


def evaluate(
    targets: list[str],
    start: int,
    end: int,
    store: Any,
    now: int | None = None,
    *,
    tz: str | tzinfo | None = None,
    x_files_factor: float | None = None,
    template: dict[str, Any] | None = None,
) -> list[TimeSeries]:
    """Evaluate Graphite `targets` over [start, end] (epoch seconds) against `store`.

    `store` needs only ``read(patterns, start, end) -> {pattern: {key:
    ReadResult}}``. `now` defaults to the current time; `tz` (a zone name
    or tzinfo, default UTC) is used where graphite aligns to calendar units
    (hitcount's alignToInterval); `x_files_factor` is the request's
    ``xFilesFactor`` parameter; `template` the request's template values.
    Empty or blank targets are skipped. Raises `QueryError` for bad
    targets.
    """
    exprs = [parse(t) for t in targets if t and t.strip()]
    return evaluate_expressions(
        exprs, start, end, store, now, tz=tz, x_files_factor=x_files_factor, template=template
    )
