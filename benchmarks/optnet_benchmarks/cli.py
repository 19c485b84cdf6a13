"""``optnet bench [BENCHMARK] ...``: every benchmark is a subcommand of ``optnet bench``.

``optnet bench`` without a benchmark's name is ``optnet bench speed``. Each benchmark module
gives its help (its docstring's first line), its description (the docstring),
``add_arguments(parser)`` and ``run(args)``.
"""

from __future__ import annotations

import argparse
import functools
import textwrap
from types import ModuleType

from optnet_experiments.cli import HelpFormatter, run_command

from . import (
    accuracy,
    closest_accuracy,
    markdown,
    maros_meszaros,
    roofline,
    speed,
    sudoku_precision,
    sudoku_step,
    warm_start,
)

BENCHMARKS: dict[str, ModuleType] = {
    "speed": speed,
    "accuracy": accuracy,
    "closest-accuracy": closest_accuracy,
    "sudoku-step": sudoku_step,
    "sudoku-precision": sudoku_precision,
    "warm-start": warm_start,
    "roofline": roofline,
    "maros-meszaros": maros_meszaros,
    "markdown": markdown,
}


def _summary(name: str, module: ModuleType) -> str:
    """``name`` and the first line of the module's docstring, wrapped to 100 columns."""
    first = module.__doc__.strip().splitlines()[0].replace("``", "")
    return textwrap.fill(first, 98, initial_indent=f"  {name:<18}", subsequent_indent=" " * 20)


def register(subparsers) -> None:
    """Add ``bench`` to the ``optnet`` command's subparsers (entry point ``optnet.commands``)."""
    # argparse cannot give one parser both options and an optional subcommand (the
    # subcommand's defaults would silently replace options given before its name), so
    # `optnet bench` takes its arguments as they are ("+" is no option prefix here) and
    # `parse` reads them: a benchmark's name first, else the speed benchmark's options.
    parser = subparsers.add_parser(
        "bench", help="benchmarks: speed against peer QP layers, accuracy, Maros-Meszaros, ...",
        prefix_chars="+", add_help=False,
    )  # fmt: skip
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parser.set_defaults(func=functools.partial(_run, parser.prog))


def _run(prog: str, args: argparse.Namespace) -> int:
    parsed = parse(args.argv, prog=prog)
    return parsed.func(parsed)


def parse(argv: list[str], *, prog: str = "optnet bench") -> argparse.Namespace:
    """The arguments of ``optnet bench ARGV``; ``args.func(args)`` runs the benchmark."""
    name = argv[0] if argv and argv[0] in BENCHMARKS else None
    if name is None:  # `optnet bench [options]`: the speed benchmark
        names = "\n".join(_summary(key, module) for key, module in BENCHMARKS.items())
        parser = argparse.ArgumentParser(
            prog=prog, usage="%(prog)s [BENCHMARK] [options]", description=speed.__doc__,
            epilog=f"benchmarks (`{prog} BENCHMARK --help` for their options):\n{names}",
            formatter_class=HelpFormatter,
        )  # fmt: skip
        module = speed
    else:
        module, argv = BENCHMARKS[name], argv[1:]
        parser = argparse.ArgumentParser(
            prog=f"{prog} {name}", description=module.__doc__, formatter_class=HelpFormatter
        )
    module.add_arguments(parser)
    parser.set_defaults(func=functools.partial(run_command, parser.prog, module.run))
    return parser.parse_args(argv)
