"""``python -m optnet_benchmarks bench|maros-meszaros ...``: the commands without installing.

The same parsers as ``optnet bench`` and ``optnet maros-meszaros``, for machines where the
package is on ``PYTHONPATH`` but not installed (no entry points), e.g. the GPU scripts.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import bench, maros_meszaros


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optnet_benchmarks")
    parser.add_argument("-v", "--verbose", action="store_true", help="log solver diagnostics")
    subparsers = parser.add_subparsers(dest="command", required=True)
    bench.register(subparsers)
    maros_meszaros.register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
