"""Python clients for a Cyclone server.

- `LineClient`: carbon plaintext protocol (TCP or UDP), batching, reconnects.
- `PickleClient`: carbon pickle protocol, batching, reconnects.
- `HTTPClient`: /render and /metrics/find (graphite-web/Grafana API), urllib only.
- `ThriftClient`: the full `Cyclone` Thrift service with cyclone.series types.
"""

from cyclone.client.http import HTTPClient, HTTPClientError
from cyclone.client.line import LineClient
from cyclone.client.pickle import PickleClient
from cyclone.client.stream import StreamClientError
from cyclone.client.thrift import (
    ThriftClient,
    ThriftClientError,
    ThriftConnectionError,
    ThriftRequestError,
)

__all__ = [
    "HTTPClient",
    "HTTPClientError",
    "LineClient",
    "PickleClient",
    "StreamClientError",
    "ThriftClient",
    "ThriftClientError",
    "ThriftConnectionError",
    "ThriftRequestError",
]
