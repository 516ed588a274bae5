"""Graphite target expressions: parser, function library, evaluator.

Public API::

    from cyclone.query import evaluate, parse, functions_metadata, QueryError, TimeSeries

    series = evaluate(["sumSeries(a.b.*)", "alias(c.d, 'x')"], start, end, store)

See `cyclone.query.registry` for how functions are declared and added.
"""

from cyclone.query.errors import QueryError
from cyclone.query.evaluator import evaluate, evaluate_expressions
from cyclone.query.parser import parse
from cyclone.query.registry import functions_metadata
from cyclone.query.series import TimeSeries

__all__ = ["QueryError", "TimeSeries", "evaluate", "evaluate_expressions", "functions_metadata", "parse"]
