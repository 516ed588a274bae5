"""functions_metadata(): graphite-web's /functions JSON, for Grafana's function editor."""

from __future__ import annotations

import json
import math

import pytest

from cyclone.query import functions_metadata
from cyclone.query.registry import all_functions

BATCH = [
    "absolute", "aggregate", "alias", "aliasByMetric", "aliasByNode", "aliasSub",
    "color", "lineWidth", "dashed", "stacked", "secondYAxis", "alpha",
    "averageSeries", "avg", "sumSeries", "sum", "maxSeries", "minSeries", "rangeOfSeries", "range",
    "countSeries", "diffSeries", "multiplySeries", "divideSeries", "stddevSeries",
    "constantLine", "consolidateBy", "scale", "offset", "derivative", "nonNegativeDerivative",
    "perSecond", "integral", "movingAverage", "movingSum", "movingMin", "movingMax", "movingMedian",
    "movingWindow", "summarize", "hitcount", "timeShift", "transformNull", "keepLastValue", "group",
    "removeEmptySeries", "sortByName", "limit",
]


def test_is_valid_json_without_nan_or_infinity():
    text = json.dumps(functions_metadata(), allow_nan=False)
    assert json.loads(text) == functions_metadata()


@pytest.mark.parametrize("name", BATCH)
def test_function_is_described(name):
    info = functions_metadata()[name]
    assert set(info) == {"name", "function", "description", "module", "group", "params"}
    assert info["name"] == name
    assert info["function"].startswith(name + "(")
    assert info["description"].strip()
    assert info["module"].startswith("cyclone.query.functions.")
    assert info["params"], name
    for p in info["params"]:
        assert isinstance(p["name"], str) and isinstance(p["type"], str)
        assert set(p) <= {"name", "type", "required", "default", "options", "multiple", "suggestions"}


def _normalize(params):
    def fix(v):
        if isinstance(v, float) and math.isinf(v):
            return "inf"
        return v

    return [{k: ([fix(x) for x in v] if isinstance(v, list) else fix(v)) for k, v in p.items()} for p in params]


@pytest.mark.parametrize("name", [n for n in BATCH if n != "range"])
def test_same_declaration_as_graphite(name, oracle):
    from graphite.functions import SeriesFunction

    theirs = SeriesFunction(name)
    ours = functions_metadata()[name]
    assert ours["group"] == theirs.group
    assert _normalize(ours["params"]) == _normalize([p.toJSON() for p in theirs.params])


def test_grouped_and_filtered():
    grouped = functions_metadata(grouped=True)
    assert grouped["Combine"]["sumSeries"]["group"] == "Combine"
    assert set(functions_metadata(group="Alias")) == {"alias", "aliasByMetric", "aliasByNode", "aliasSub"}


def test_aliases_share_the_definition():
    funcs = all_functions()
    assert funcs["sum"] is funcs["sumSeries"]
    assert funcs["avg"] is funcs["averageSeries"]
    meta = functions_metadata()
    assert meta["sum"]["function"] == "sum(*seriesLists)"
    assert meta["sumSeries"]["function"] == "sumSeries(*seriesLists)"
