"""Command-line entry point: `cyclone CONFIG` == `python -m cyclone CONFIG`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from cyclone.server import run_from_argv

    return run_from_argv(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
