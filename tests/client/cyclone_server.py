"""The server configuration of the Thrift, client, store and cluster tests.

`CycloneServer(tmp_path)` is `tests.server_process.CycloneProcess` started
with `default_config` (autocreate rules for test.**, bench.** and
cyclone.**); process handling lives there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.server_process import CycloneProcess, base_config, free_port  # noqa: F401 (free_port re-exported)


def default_config(data_dir: Path, write_buffer: bool = True) -> dict[str, Any]:
    disk = {"type": "cached_disk", "directory": str(data_dir)}
    store = {"type": "write_buffer", "num_write_threads": 2, "substore": disk} if write_buffer else disk
    return base_config(data_dir, rules=[
        ["test.**", "10:1d,60:30d", 0, "average"],
        ["bench.**", "10:1d", 0, "average"],
        ["cyclone.**", "60:1d", 0, "average"],
    ], store_config={"type": "query", "substore": store})


class CycloneServer(CycloneProcess):
    """A server process with `default_config` unless given a config."""

    def __init__(self, tmp_path: Path, config: dict[str, Any] | None = None,
                 startup_timeout: float = 20.0) -> None:
        tmp_path = Path(tmp_path)
        super().__init__(tmp_path, config=config if config is not None else default_config(tmp_path / "data"))
        self.startup_timeout = startup_timeout

    def start(self, timeout: float | None = None, wait: bool = True) -> "CycloneServer":
        super().start(self.startup_timeout if timeout is None else timeout, wait)
        return self
