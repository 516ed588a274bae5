"""The server configuration of the Thrift, client, store and cluster tests.

`CycloneServer(tmp_path)` is `tests.server_process.CycloneProcess` started
with `default_config` (autocreate rules for test.**, bench.** and
cyclone.**); process handling lives there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.server_process import CycloneProcess, base_config, free_port  # noqa: F401 (free_port re-exported)


# autocreate rules of these tests' series
DEFAULT_RULES = [
    ["test.**", "10:1d,60:30d", 0, "average"],
    ["bench.**", "10:1d", 0, "average"],
    ["cyclone.**", "60:1d", 0, "average"],
]


def default_config(data_dir: Path) -> dict[str, Any]:
    return base_config(data_dir, rules=DEFAULT_RULES)


class CycloneServer(CycloneProcess):
    """A server process with `default_config` unless given a config."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None,
                 startup_timeout: float = 20.0) -> None:
        super().__init__(tmp_path, config, rules=DEFAULT_RULES, startup_timeout=startup_timeout)
