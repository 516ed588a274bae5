"""Builds the store tree and listeners from config and runs the reactor."""

from __future__ import annotations

import argparse
import json
import sys


def run_from_argv(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cyclone", description="Cyclone time-series server")
    parser.add_argument("config", help="path to the JSON config file")
    args = parser.parse_args(argv)
    try:
        with open(args.config) as f:
            f.read()
    except OSError as e:
        print(f"cyclone: cannot read config {args.config}: {e}", file=sys.stderr)
        return 2
    from twisted.internet import reactor

    print("cyclone: no listeners configured yet; reactor running (Ctrl-C to stop)", file=sys.stderr)
    reactor.run()
    return 0
