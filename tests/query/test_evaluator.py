"""Evaluator behaviour that the differential table does not cover: batching,
errors at evaluation time, store errors, templates, request state, timezones."""

from __future__ import annotations

import numpy as np
import pytest

from cyclone.query import QueryError, evaluate
from cyclone.series import CycloneError, Error, ReadResult
from tests.query.datasource import SPECS, T0, MemorySource

WINDOW = (T0 + 7, T0 + 3600 + 13)


def test_blank_targets_are_skipped(source):
    assert evaluate(["", "   "], *WINDOW, source) == []
    assert [s.name for s in evaluate(["", "test.gauge.a"], *WINDOW, source)] == ["test.gauge.a"]


def test_results_keep_target_order_and_key_order(source):
    got = evaluate(["test.gauge.{c,a}", "test.coarse.x", "test.gauge.b"], *WINDOW, source)
    assert [s.name for s in got] == ["test.gauge.a", "test.gauge.c", "test.coarse.x", "test.gauge.b"]
    assert got[0].path_expression == "test.gauge.{c,a}"
    assert got[0].tags == {"name": "test.gauge.a"}


def test_parse_errors_happen_before_any_fetch(source):
    before = len(source.reads)
    with pytest.raises(QueryError):
        evaluate(["test.gauge.a", "scale(test.gauge.b, 'x')"], *WINDOW, source)
    assert len(source.reads) == before


def test_evaluation_errors_carry_the_call_position(source):
    with pytest.raises(QueryError) as info:
        evaluate(["alias(divideSeries(test.gauge.a, test.gauge.*), 'x')"], *WINDOW, source)
    assert str(info.value) == "divideSeries second argument must reference exactly 1 series (got 3)"
    assert info.value.position == 6


def test_bad_regex_is_a_query_error(source):
    with pytest.raises(QueryError, match="aliasSub"):
        evaluate(["aliasSub(test.gauge.a, '(', 'x')"], *WINDOW, source)
    with pytest.raises(QueryError, match="aliasSub"):
        evaluate([r"aliasSub(test.gauge.a, '(a)', '\2')"], *WINDOW, source)


def test_unsupported_moving_window_function(source):
    with pytest.raises(QueryError, match="unsupported aggregation function 'sumSeries'"):
        evaluate(["movingWindow(test.gauge.a, 5, 'sumSeries')"], *WINDOW, source)


def test_template_variable_of_the_wrong_type_fails_at_evaluation(source):
    with pytest.raises(QueryError, match="scale\\(\\): argument 'factor' must be a number, got string 'x'"):
        evaluate(["template(scale(test.gauge.a, $f), f='x')"], *WINDOW, source)


def test_request_template_values_override(source):
    got = evaluate(["template(test.gauge.$n, n='a')"], *WINDOW, source, template={"n": "b"})
    assert [s.name for s in got] == ["test.gauge.b"]


def test_unknown_timezone(source):
    with pytest.raises(QueryError, match="unknown timezone"):
        evaluate(["test.gauge.a"], *WINDOW, source, tz="Mars/Olympus")


class FailingKeys:
    """A data source where some keys fail, like a store with a corrupt file."""

    def __init__(self, source: MemorySource):
        self.source = source

    def read(self, patterns, start, end):
        out = self.source.read(patterns, start, end)
        for results in out.values():
            if "test.gauge.b" in results:
                results["test.gauge.b"] = ReadResult(Error("corrupt file"))
        return out


def test_keys_with_read_errors_are_left_out(source):
    got = evaluate(["sumSeries(test.gauge.*)", "test.gauge.*"], *WINDOW, FailingKeys(source))
    assert got[0].name == "sumSeries(test.gauge.*)"
    assert [s.name for s in got[1:]] == ["test.gauge.a", "test.gauge.c"]


class NoTags:
    def __init__(self, source):
        self.source = source
        self.calls = []

    def read(self, patterns, start, end):
        self.calls.append(list(patterns))
        if any(p.startswith("seriesByTag(") for p in patterns):
            raise CycloneError("invalid pattern")
        return self.source.read(patterns, start, end)


def test_series_by_tag_goes_to_the_store_verbatim_and_may_match_nothing(source):
    store = NoTags(source)
    got = evaluate(["sumSeries(seriesByTag('name=cpu', 'dc=east'))", "test.gauge.a"], *WINDOW, store)
    assert [s.name for s in got] == ["test.gauge.a"]
    assert ["seriesByTag('name=cpu', 'dc=east')"] in store.calls


def test_stacked_totals_are_shared_by_the_targets_of_a_request(source):
    a, b = evaluate(["stacked(test.const.k)", "stacked(test.const.k)"], *WINDOW, source)
    assert np.all(a.values == 5.0) and np.all(b.values == 10.0)
    (c,) = evaluate(["stacked(test.const.k)"], *WINDOW, source)
    assert np.all(c.values == 5.0)


def test_refetch_works_for_keyword_only_calls(source):
    (s,) = evaluate(["movingAverage(seriesList=test.gauge.a, windowSize=5)"], *WINDOW, source)
    (t,) = evaluate(["movingAverage(test.gauge.a, 5)"], *WINDOW, source)
    assert s.name == t.name and s.values.tobytes() == t.values.tobytes()


def test_time_shift_align_dst():
    # 2023-07-03 12:00 UTC is summer time in Berlin; 26 weeks earlier is winter.
    summer = 1688385600
    src = MemorySource(SPECS)
    evaluate(["timeShift(test.gauge.a, '26w', alignDst=true)"], summer, summer + 3600, src, tz="Europe/Berlin")
    shifted = src.reads[-1]
    assert shifted[1:] == (summer - 26 * 7 * 86400 + 3600, summer + 3600 - 26 * 7 * 86400 + 3600)
    evaluate(["timeShift(test.gauge.a, '26w', alignDst=true)"], summer, summer + 3600, src, tz="UTC")
    assert src.reads[-1][1:] == (summer - 26 * 7 * 86400, summer + 3600 - 26 * 7 * 86400)


def test_constant_line_for_grafana_health_check(source):
    (s,) = evaluate(["constantLine(100)"], T0 - 3600, T0, source)
    assert s.name == "100.0" and s.path_expression == "constantLine(100.0)"
    assert s.datapoints() == [(100.0, T0 - 3600), (100.0, T0 - 1800), (100.0, T0)]


def test_grafana_refid_alias_sub(source):
    got = evaluate([r'aliasSub(sumSeries(test.gauge.*), "(^.*$)", "\1 A")'], *WINDOW, source)
    assert [s.name.split(" ")[-1] for s in got] == ["A"]
    assert got[0].name == "sumSeries(test.gauge.*) A"
