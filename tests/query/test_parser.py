"""Parser tests: every literal form, paths, pipes, keyword arguments, nesting,
templates, and malformed targets (QueryError with a clear message and position).

Valid targets are also parsed by graphite-web 1.1.10's own grammar and the
two trees compared (`test_same_tree_as_graphite`)."""

from __future__ import annotations

import math

import pytest

from cyclone.query import QueryError, parse
from cyclone.query.parser import Call, Literal, PathExpr, Template, first_path_expression


def lit(value, kind):
    return ("lit", kind, value)


def tree(expr):
    """Our AST as nested tuples (positions dropped)."""
    if isinstance(expr, PathExpr):
        return ("path", expr.path)
    if isinstance(expr, Literal):
        if expr.kind == "scientific":
            return ("lit", "float", expr.value)
        return ("lit", expr.kind, expr.value)
    if isinstance(expr, Call):
        return ("call", expr.name, tuple(tree(a) for a in expr.args), tuple((k, tree(v)) for k, v in expr.kwargs))
    if isinstance(expr, Template):
        return ("template", tree(expr.expr), tuple(tree(a) for a in expr.args), tuple((k, tree(v)) for k, v in expr.kwargs))
    raise TypeError(expr)


# -- literals -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("0", "integer", 0),
        ("42", "integer", 42),
        ("-7", "integer", -7),
        ("1.5", "float", 1.5),
        ("-0.25", "float", -0.25),
        ("1e3", "scientific", 1000.0),
        ("1E3", "scientific", 1000.0),
        ("-2.5e-2", "scientific", -0.025),
        ("6.02e23", "scientific", 6.02e23),
        ("'single'", "string", "single"),
        ('"double"', "string", "double"),
        ('""', "string", ""),
        ("'with \"inner\" quotes'", "string", 'with "inner" quotes'),
        ('"a, b) c("', "string", "a, b) c("),
        (r'"\1 A"', "string", r"\1 A"),
        (r"'(\d+)'", "string", r"(\d+)"),
        (r'"esc \" quote"', "string", r"esc \" quote"),
        ("true", "boolean", True),
        ("false", "boolean", False),
        ("True", "boolean", True),
        ("False", "boolean", False),
        ("TRUE", "boolean", True),
        ("None", "none", None),
        ("none", "none", None),
        ("inf", "infinity", math.inf),
        ("INF", "infinity", math.inf),
    ],
)
def test_literal_forms(text, kind, value):
    expr = parse(f"f(a.b, {text})", validate=False)
    arg = expr.args[1]
    assert isinstance(arg, Literal)
    assert arg.kind == kind
    assert arg.value == value and type(arg.value) is type(value)
    assert arg.pos == 7


@pytest.mark.parametrize(
    "text, path",
    [
        ("2h", "2h"),  # a number only where followed by , ) or the end
        ("1.5.6", "1.5.6"),
        ("trueish", "trueish"),
        ("info", "info"),
        ("none_of_them", "none_of_them"),
        ("+5", "+5"),
    ],
)
def test_words_that_look_like_literals_are_paths(text, path):
    assert parse(f"f({text})", validate=False).args[0] == PathExpr(path, 2)


# -- paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "a",
        "a.b.c",
        "a.*.c",
        "a.*.{b,c}.d[0-9]",
        "servers.host-01.cpu:0.user",
        "a.b#c.d@e.f%g.h=i",
        "a.b;tag=value;dc=east",
        "a.b?.c*",
        "a.b_c.~d.e!f.$g.^h.&i.<j>.+k.`l`/m",
        "a.{b,c,d}{e,f}.g",
        "a.{,b}.c",
        "x[a-z][!0-9]y",
        "*",
        "**",
        "a.**",
        "123.456abc",
    ],
)
def test_path_expressions(target):
    assert parse(target) == PathExpr(target, 0)


def test_escaped_path_characters():
    assert parse(r"a.b\(c\).d\,e\=f") == PathExpr("a.b(c).d,e=f", 0)


def test_unicode_in_paths():
    assert parse("app.café.ß") == PathExpr("app.café.ß", 0)


# -- calls, kwargs, nesting, pipes ---------------------------------------------


def test_nested_calls_and_kwargs():
    expr = parse("alias(movingAverage(sumSeries(a.*, b.{c,d}), '5min', xFilesFactor=0.5), newName=\"x y\")")
    assert tree(expr) == (
        "call", "alias",
        (("call", "movingAverage",
          (("call", "sumSeries", (("path", "a.*"), ("path", "b.{c,d}")), ()), ("lit", "string", "5min")),
          (("xFilesFactor", ("lit", "float", 0.5)),)),),
        (("newName", ("lit", "string", "x y")),),
    )


def test_positions_and_raw_text():
    target = "sumSeries(a.b, scale(c.d,2))"
    expr = parse(target)
    assert expr.pos == 0 and expr.raw == target
    inner = expr.args[1]
    assert inner.pos == 15 and inner.raw == "scale(c.d,2)"
    assert inner.args[0] == PathExpr("c.d", 21)
    assert inner.args[1].pos == 25


def test_empty_argument_list():
    assert tree(parse("countSeries()")) == ("call", "countSeries", (), ())
    assert tree(parse("countSeries( )")) == ("call", "countSeries", (), ())


def test_whitespace_is_allowed_around_tokens():
    assert tree(parse("  sumSeries (  a.b ,\tc.d  )  ")) == tree(parse("sumSeries(a.b,c.d)"))
    assert tree(parse("scale( a.b , factor = 2 )")) == tree(parse("scale(a.b,factor=2)"))


def test_pipe_is_nested_call():
    assert tree(parse('a.b.c|scale(2)|alias("x")')) == tree(parse('alias(scale(a.b.c,2),"x")'))
    assert tree(parse("a.b | scale(2) | alias('x')")) == tree(parse("alias(scale(a.b,2),'x')"))
    assert tree(parse("sumSeries(a.*)|scale(factor=3)")) == tree(parse("scale(sumSeries(a.*),factor=3)"))
    assert tree(parse("sumSeries(a.b|scale(2), c.d)")) == tree(parse("sumSeries(scale(a.b,2), c.d)"))
    assert tree(parse("a.*|sumSeries()")) == tree(parse("sumSeries(a.*)"))


def test_pipe_positions_point_at_the_piped_call():
    expr = parse("a.b|scale(2)")
    assert expr.name == "scale" and expr.pos == 4 and expr.args[0] == PathExpr("a.b", 0)


def test_template():
    assert tree(parse("template(a.$1.c, 'b')")) == ("template", ("path", "a.$1.c"), (("lit", "string", "b"),), ())
    assert tree(parse("template(sumSeries(a.$x), x=2)")) == (
        "template", ("call", "sumSeries", (("path", "a.$x"),), ()), (), (("x", ("lit", "integer", 2)),),
    )
    # template variables may stand for non-series arguments: checked at evaluation
    parse("template(scale(a.b, $f), f=2)")


def test_series_by_tag_is_accepted_verbatim():
    expr = parse("seriesByTag('name=cpu', 'dc=east')")
    assert expr.name == "seriesByTag" and expr.raw == "seriesByTag('name=cpu', 'dc=east')"


def test_first_path_expression():
    assert first_path_expression("scale(a.b.c,2)") == "a.b.c"
    assert first_path_expression('movingAverage(sumSeries(x.y,z),"5min")') == "x.y"
    assert first_path_expression("constantLine(100.0)") is None
    assert first_path_expression("a.b") == "a.b"
    assert first_path_expression("not valid ((") is None


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target, message, position",
    [
        ("sumSeries(a.b.c", "unbalanced parenthesis at column 10: '(' is never closed", 9),
        ("sumSeries(scale(a.b.c, 2)", "unbalanced parenthesis at column 10: '(' is never closed", 9),
        ("sumSeries(a.b.c))", "unbalanced parenthesis at column 17: unexpected ')'", 16),
        ("a.b)", "unbalanced parenthesis at column 4: unexpected ')'", 3),
        ("fooBar(a.b)", "unknown function 'fooBar' at column 1", 0),
        ("sumSeries(a.b, fooBar(c))", "unknown function 'fooBar' at column 16", 15),
        ("a.b|fooBar()", "unknown function 'fooBar' at column 5", 4),
        ('scale(a.b.c, "2")', "scale(): argument 'factor' must be a number, got string '2' at column 14", 13),
        ("scale(a.b.c, true)", "scale(): argument 'factor' must be a number, got boolean True at column 14", 13),
        ("scale(a.b.c, x.y)", "scale(): argument 'factor' must be a number, got series list at column 14", 13),
        ("scale(2)", "scale(): argument 'seriesList' must be a series list (a path or function call), got integer 2 at column 7", 6),
        ("alias(a.b, 5)", "alias(): argument 'newName' must be a string, got integer 5 at column 12", 11),
        ("alias(a.b, x.y)", "alias(): argument 'newName' must be a string, got series list (did you forget the quotes?) at column 12", 11),
        ("summarize(a.b, 1h)", "summarize(): argument 'intervalString' must be a time interval such as '5min' or '-1h', got series list (did you forget the quotes?) at column 16", 15),
        ("summarize(a.b, '1x')", "summarize(): argument 'intervalString' must be a time interval such as '5min' or '-1h', got string '1x' at column 16", 15),
        ("limit(a.b, 2.5)", "limit(): argument 'n' must be an integer, got number 2.5 at column 12", 11),
        ("keepLastValue(a, 1.5)", "keepLastValue(): argument 'limit' must be an integer or inf, got number 1.5 at column 18", 17),
        ("consolidateBy(a, 'foo')", "consolidateBy(): argument 'consolidationFunc' must be one of 'sum', 'average', 'avg', 'avg_zero', 'min', 'max', 'first', 'last', got 'foo' at column 18", 17),
        ("scale(a.b.c)", "scale(): missing required argument 'factor' at column 1", 0),
        ("scale(a.b.c, None)", "scale(): missing required argument 'factor' at column 1", 0),
        ("scale(a.b.c, 2, 3)", "scale(): too many arguments: takes at most 2, got 3 at column 17", 16),
        ("scale(a.b.c, fctor=2)", "scale(): unexpected keyword argument 'fctor' (parameters: seriesList, factor) at column 14", 13),
        ("scale(a.b.c, 2, factor=3)", "scale(): got multiple values for argument 'factor' at column 17", 16),
        ("alias(a.b, newName='x', newName='y')", "alias(): keyword argument 'newName' given twice at column 25", 24),
        ("movingAverage(a, xFilesFactor=0.5, 5)", "movingAverage(): positional argument follows keyword argument at column 36", 35),
        ('alias(a.b, "x)', 'unterminated string (opening " never closed) at column 12', 11),
        ("alias(a.b, 'x)", "unterminated string (opening ' never closed) at column 12", 11),
        ("", "empty target", 0),
        ("   ", "empty target", 0),
        ("a..b", "empty path component at column 3", 2),
        ("a.b.", "path ends with '.' at column 4", 3),
        (".a", "unexpected '.' at column 1", 0),
        ("a.{b,c", "unclosed '{' in path at column 3", 2),
        ("a.{b.c}", "unexpected '.' inside '{...}' in path (opened at column 3) at column 5", 4),
        ("sumSeries(a.b,)", "unexpected ')', expected an argument at column 15", 14),
        ("sumSeries(,a.b)", "unexpected ',', expected an argument at column 11", 10),
        ("sumSeries(a.b c.d)", "unexpected 'c', expected ',' or ')' at column 15", 14),
        ("a b", "unexpected 'b' after a complete expression at column 3", 2),
        ("scale(a,2)x", "unexpected 'x' after a complete expression at column 11", 10),
        ("(a.b)", "unexpected '(', expected a path or function call at column 1", 0),
        ("'a.b'", "a string cannot be used as a target or series list; expected a path or function call at column 1", 0),
        ("foo-bar(a)", "invalid function name 'foo-bar' at column 1", 0),
        ("a.b|", "unexpected end of target, expected a function call after '|' at column 5", 4),
        ("a.b|c.d", "expected '(' after function name 'c' in a pipe at column 6", 5),
        ("a.b\\x", "invalid escape in path (a backslash may only escape one of (){},.'\"\\|=) at column 4", 3),
        ("template(a.$1, b.c)", "invalid template() syntax, only string/numeric arguments are allowed at column 16", 15),
    ],
)
def test_malformed(target, message, position):
    with pytest.raises(QueryError) as info:
        parse(target)
    assert str(info.value) == message
    assert info.value.position == position


def test_keyword_only_calls():
    # graphite-web 1.1.10's grammar needs a positional argument before keyword
    # arguments (it silently parses "scale(seriesList=a.b, factor=2)" as the
    # path "scale"); Cyclone accepts keyword-only calls.
    assert tree(parse("scale(seriesList=a.b, factor=2)")) == (
        "call", "scale", (), (("seriesList", ("path", "a.b")), ("factor", ("lit", "integer", 2))),
    )
    assert tree(parse("a.b|scale(factor=2)")) == ("call", "scale", (("path", "a.b"),), (("factor", ("lit", "integer", 2)),))


def test_validation_can_be_skipped():
    assert parse("fooBar(a, 'x')", validate=False).name == "fooBar"


# -- same tree as graphite-web's grammar -------------------------------------------


def graphite_tree(tokens, piped=None):
    """graphite-web's parse result as our tuples, walked the way its evaluator does."""
    from graphite.render.evaluator import evaluateScalarTokens

    if tokens.template:
        t = tokens.template
        args = tuple(graphite_tree(a) for a in t.args) if t.args else ()
        kwargs = tuple((k.argname, graphite_tree(k.args[0])) for k in t.kwargs) if t.kwargs else ()
        inner = t.call if t.call else None
        body = ("path", t.pathExpression) if t.pathExpression else graphite_call(inner)
        return ("template", body, args, kwargs)
    if tokens.expression:
        exp = tokens.expression
        calls = list(exp.pipedCalls)
        if exp.template:
            result = graphite_tree(exp)
        elif exp.call:
            result = graphite_call(exp.call)
        else:
            result = ("path", exp.pathExpression)
        for piped_call in calls:
            name, args, kwargs = graphite_call(piped_call.call)[1:]
            result = ("call", name, (result,) + args, kwargs)
        return result
    if tokens.pathExpression:
        return ("path", tokens.pathExpression)
    if tokens.call:
        return graphite_call(tokens.call)
    value = evaluateScalarTokens(tokens)
    if tokens.number:
        kind = "integer" if isinstance(value, int) else "float"
    elif tokens.string:
        kind = "string"
    elif tokens.boolean:
        kind = "boolean"
    elif tokens.none:
        kind = "none"
    else:
        kind = "infinity"
    return ("lit", kind, value)


def graphite_call(call):
    args = tuple(graphite_tree(a) for a in call.args) if call.args else ()
    kwargs = tuple((k.argname, graphite_tree(k.args[0])) for k in call.kwargs) if call.kwargs else ()
    return ("call", call.funcname, args, kwargs)


SAME_AS_GRAPHITE = [
    "a.b.c",
    "a.*.{b,c}.d[0-9]",
    "servers.host-01.cpu:0.user#x@y%z=w",
    "sumSeries(a.b, c.d)",
    "sumSeries( a.b ,c.d )",
    "scale(a.b, 2)",
    "scale(a.b, -2)",
    "scale(a.b, 2.5)",
    "scale(a.b, -0.25)",
    "scale(a.b, 1e3)",
    "scale(a.b, 1.5e-3)",
    "alias(a.b, 'x')",
    'alias(a.b, "x y")',
    r'aliasSub(a.b, "^(\w+)\.b$", "\1")',
    "keepLastValue(a.b, inf)",
    "sortByName(a.*, true, False)",
    "transformNull(a.b, None)",
    "movingAverage(a.b, windowSize='5min', xFilesFactor=0.5)",
    "aliasByNode(a.b.c, 1, 'tag')",
    "a.b.c|scale(2)|alias('x')",
    "sumSeries(a.*)|movingAverage(5, xFilesFactor=0.5)",
    "sumSeries(a.b|scale(2), c.d)",
    "a.b | scale(2) | alias('x')",
    "divideSeries(sumSeries(a.*), group(b.c, d.e))",
    "template(a.$1.c, 'b')",
    "template(sumSeries(a.$x), x=2)",
    "countSeries()",
    r"a.b\(c\).d",
    "sumSeries(a=)",  # no value after "=": a path, not a keyword argument
    "sumSeries(x, a= )",
]


@pytest.mark.parametrize("target", SAME_AS_GRAPHITE)
def test_same_tree_as_graphite(target, oracle):
    from graphite.render.grammar import grammar

    assert tree(parse(target)) == graphite_tree(grammar.parseString(target))


# -- random targets: wherever graphite's grammar parses the whole text, we agree ------

from hypothesis import HealthCheck, example, given, settings, strategies as st  # noqa: E402

_path_chars = st.sampled_from(list("abcxyz019_-:#@%=*?[]~!$^&+;<>`/") + ["\\(", "\\,", "\\="])
_element = st.lists(_path_chars, min_size=1, max_size=4).map("".join)
_brace = st.lists(st.lists(st.sampled_from(list("abc01*-")), min_size=1, max_size=3).map("".join), min_size=1, max_size=3).map(
    lambda alts: "{" + ",".join(alts) + "}"
)
_component = st.lists(st.one_of(_element, _brace), min_size=1, max_size=2).map("".join)
_path = st.lists(_component, min_size=1, max_size=4).map(".".join).filter(lambda p: p[0] not in "~!$^&+;<>`/*?[]:#@%=-" or True)
_number = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.tuples(st.integers(-9, 9), st.integers(-5, 5)).map(lambda t: f"{t[0]}e{t[1]}"),
    st.tuples(st.integers(-9, 9), st.integers(0, 99), st.integers(-5, 5)).map(lambda t: f"{t[0]}.{t[1]}E{t[2]}"),
)
_string = st.one_of(
    st.text(alphabet=st.sampled_from(list("ab ,()|=.\\1'*")), max_size=6).filter(lambda s: not s.endswith("\\")).map(lambda s: '"' + s.replace('"', "") + '"'),
    st.text(alphabet=st.sampled_from(list('ab ,()|=.\\1"*')), max_size=6).filter(lambda s: not s.endswith("\\")).map(lambda s: "'" + s.replace("'", "") + "'"),
)
_keyword = st.sampled_from(["true", "false", "True", "FALSE", "None", "none", "inf"])
_name = st.sampled_from(["f", "sumSeries", "scale", "alias_2", "_x"])
_ws = st.sampled_from(["", "", " ", "  "])


def _call(children):
    positional = st.lists(st.one_of(children, _number, _string, _keyword), min_size=1, max_size=3)
    keywords = st.lists(st.tuples(st.sampled_from(["k", "factor", "x_1"]), st.one_of(children, _number, _string, _keyword)), max_size=2, unique_by=lambda kv: kv[0])
    return st.tuples(_name, positional, keywords, _ws, _ws).map(
        lambda t: t[0] + "(" + t[3] + (", " + t[4]).join(list(t[1]) + [f"{k}={v}" for k, v in t[2]]) + ")"
    )


_expression = st.recursive(_path, lambda children: st.one_of(
    _call(children),
    st.tuples(children, _ws, _call(children)).map(lambda t: f"{t[0]}{t[1]}|{t[1]}{t[2]}"),
), max_leaves=8)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=_expression)
# `name=` followed by no argument: graphite reads the whole as a path ('=' is a metric character)
@example(target="f(a=.a)")
@example(target="f(x, a=.a.b, b=1)")
@example(target="f(a=.5|g())")
def test_random_targets_parse_like_graphite(target, oracle):
    from graphite.render.grammar_unsafe import grammar as graphite_grammar
    from pyparsing import ParseException

    try:
        tokens = graphite_grammar.parseString(target, parseAll=True)
    except ParseException:
        return
    assert tree(parse(target, validate=False)) == graphite_tree(tokens)
