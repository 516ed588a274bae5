"""Fixtures for integration tests: real `python -m cyclone` processes on
127.0.0.1 (`tests.server_process.CycloneProcess`); teardown kills them.

The `cyclone_server` fixture is opt-in (no autouse), so other tests in this
directory are unaffected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.server_process import (  # noqa: F401  (re-exported for the tests here)
    PYTHON,
    REPO,
    CycloneProcess,
    ShellClient,
    base_config,
    free_port,
)


@pytest.fixture
def cyclone_factory(tmp_path: Path):
    """Build (not start) CycloneProcess objects; every one is killed at teardown."""
    made: list[CycloneProcess] = []

    def make(subdir: str = "srv", **kwargs: Any) -> CycloneProcess:
        d = tmp_path / subdir
        d.mkdir(parents=True, exist_ok=True)
        proc = CycloneProcess(d, **kwargs)
        made.append(proc)
        return proc

    yield make
    for p in made:
        p.kill()


@pytest.fixture
def cyclone_server(cyclone_factory) -> CycloneProcess:
    """A started server with default test config."""
    return cyclone_factory().start()
