"""Cyclone: a Graphite-compatible time-series storage server.

The package owns ingest (carbon line/pickle protocols), storage in
whisper-format files, the Graphite render/find HTTP API, a Thrift API and
the consistent-hash cluster. See DESIGN.md for the map.
"""

__version__ = "0.1.0"
