"""The ``optnet`` command: thin argument parsing over library code.

Each subcommand lives in its own module, which provides ``register(subparsers)``; it adds its
parser and sets ``func`` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> module that registers it
_SUBCOMMANDS = {
    "sudoku": "optnet.experiments.sudoku",
    "denoise": "optnet.experiments.denoising",
    "classify": "optnet.experiments.classify",
    "bench": "optnet.bench",
    "maros-meszaros": "optnet.maros_meszaros",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optnet", description="Differentiable QP layers: experiments and benchmarks."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log solver diagnostics")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in _SUBCOMMANDS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
