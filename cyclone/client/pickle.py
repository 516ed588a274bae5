"""PickleClient: carbon's pickle protocol (4-byte big-endian length + pickle).

    from cyclone.client import PickleClient

    with PickleClient("127.0.0.1", 2004) as c:
        c.write("test.requests", 42)                          # timestamp: now (client clock)
        c.write_points({"test.latency": Points([t0, t0 + 60], [1.5, 2.5])})
        c.flush()                                             # also done by close()

Each batch of up to `batch_size` points is one frame holding the list
`[(key, (timestamp, value)), ...]`, pickled with `protocol` (2 by default,
which every carbon-compatible receiver reads). Connection handling is the
one of every stream client (`cyclone.client.stream`). NaN deletes a point.
"""

from __future__ import annotations

import pickle
import struct
import time
from typing import Any

from cyclone.client.stream import StreamClient

_LEN = struct.Struct("!L")


class PickleClient(StreamClient):
    """Pickle protocol client."""

    default_port = 2004

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, protocol: int = 2,
                 **kwargs: Any) -> None:
        super().__init__(host, port, **kwargs)
        self.protocol = protocol

    def _encode(self, batch: list[tuple[str, int | None, float]]) -> bytes:
        now = int(time.time())
        data = [(key, (now if ts is None else ts, value)) for key, ts, value in batch]
        payload = pickle.dumps(data, protocol=self.protocol)
        return _LEN.pack(len(payload)) + payload
