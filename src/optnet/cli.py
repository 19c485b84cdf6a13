"""The ``optnet`` command.

The library itself provides ``optnet info``. Other installed packages add subcommands through
the entry-point group ``optnet.commands``: each entry point names a ``register(subparsers)``
callable that adds its parser and sets ``func``, a callable taking the parsed arguments and
returning an exit code. The repository's experiments and benchmarks register theirs this way
(``optnet sudoku``, ``optnet bench``, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "optnet.commands"


def _info(args) -> int:
    import torch

    import optnet
    from optnet._backends import BACKENDS

    print(f"optnet {optnet.__version__}, torch {torch.__version__}")
    print(f"CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'}")
    print(f"backends: {', '.join(BACKENDS)} (SolverOptions(backend=...), default 'auto')")
    commands = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    print(f"installed commands: {', '.join(commands) if commands else 'none'}")
    if not commands:
        print(_MORE_COMMANDS)
    return 0


# Shown when no package adds subcommands: the library alone has only ``optnet info``.
_MORE_COMMANDS = (
    "The experiments (sudoku, denoise, classify) and benchmarks (bench, maros-meszaros) are "
    "subcommands of the repository's packages: in a clone, `make demo` or `pip install -e "
    "./experiments -e ./benchmarks` adds them."
)


def build_parser() -> argparse.ArgumentParser:
    commands = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    parser = argparse.ArgumentParser(
        prog="optnet",
        description="Differentiable QP layers: experiments and benchmarks.",
        epilog=None if commands else _MORE_COMMANDS,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log solver diagnostics")
    subparsers = parser.add_subparsers(dest="command", required=True)
    info = subparsers.add_parser("info", help="versions, devices, backends, installed commands")
    info.set_defaults(func=_info)
    for ep in commands:
        ep.load()(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
