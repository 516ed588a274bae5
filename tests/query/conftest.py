"""Fixtures for the query layer tests: the generated data source and the
graphite-web oracle (configured in-process, see `tests.query.oracle`)."""

from __future__ import annotations

import pytest

from tests.query.datasource import SPECS, MemorySource


@pytest.fixture(scope="session")
def source() -> MemorySource:
    return MemorySource(SPECS)


@pytest.fixture(scope="session")
def oracle(source: MemorySource):
    from tests.query.oracle import GraphiteOracle

    return GraphiteOracle(source)


def pytest_collection_modifyitems(config, items) -> None:
    # graphite-web 1.1.10 / Django 3.0 / pyparsing 3 are noisy about deprecations.
    for item in items:
        if "tests/query/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"))
            # the random-target strategy of test_parser has a long repr
            item.add_marker(pytest.mark.filterwarnings("ignore:Generating overly large repr"))
