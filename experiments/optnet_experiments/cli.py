"""The command-line kit of the experiments' and the benchmarks' ``optnet`` subcommands.

- ``shared(...)``: a parent parser with the flags many commands share (``--device``,
  ``--dtype``, ``--seed``, ``--threads``, ``--data``, ``--out``, ``--json``, the training
  flags), each with the command's default (``add_shared`` adds them to a parser);
- ``add_command`` / ``add_group``: a subcommand (or a group of them) whose ``--help`` shows
  the defaults and whose run goes through ``run_command``: ``--threads`` applied, and a
  user's error printed as one line (exit status 2) instead of a traceback;
- ``config_from_args``: a command's config dataclass from its parsed options;
- ``print_result``: a result as a line for people, then a JSON line.

The ``optnet`` command itself (parsing, logging, dispatch to ``args.func``) is the library's
``optnet.cli.main``, which loads these commands through the entry points ``optnet.commands``.

Example::

    train = add_command(commands, "train", run_train, help="train a model",
                        parents=[shared(device="cpu", seed=0, epochs=20, out=REQUIRED)])
    train.add_argument("--model", choices=MODEL_KINDS, required=True, help="model kind")
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .devices import DEVICES, DTYPES
from .errors import ConfigError
from .training import LR_SCHEDULES

Command = Callable[[argparse.Namespace], int]

REQUIRED = object()  # as a default in shared(...): the flag has none and must be given

# The shared flags: argparse's keywords, with a help text a command may replace.
_FLAGS = {
    "device": {"choices": DEVICES, "help": "where to run"},
    "dtype": {"choices": tuple(DTYPES), "help": "floating-point type of the computation"},
    "seed": {"type": int, "help": "random seed"},
    "threads": {"type": int, "help": "CPU threads of torch"},
    "data": {"type": Path, "help": "data folder"},
    "out": {"type": Path, "help": "output folder"},
    "json": {"action": "store_true", "help": "print only JSON, one object per line"},
    "epochs": {"type": int, "help": "training epochs"},
    "batch_size": {"type": int, "help": "examples per batch"},
    "lr": {"type": float, "help": "Adam learning rate"},
    "lr_schedule": {
        "choices": LR_SCHEDULES,
        "help": "cosine: from --lr to 0 over the epochs, or over --time-limit when that ends first",
    },
    "time_limit": {
        "type": float,
        "help": "seconds from the start of the run after which no training batch starts; the "
        "epoch then ends, is evaluated and logged",
    },
    "limit": {"type": int, "help": "use only the first N examples"},
    "max_iter": {"type": int, "help": "the solver's iteration cap"},
}


def add_shared(parser, *, help: dict[str, str] | None = None, **defaults):
    """Add the shared flags named by ``defaults`` to ``parser``, in that order:
    ``device="cpu"`` adds ``--device`` with the default "cpu"; ``REQUIRED`` makes a flag
    required. ``help`` replaces the help text of some of them. Returns ``parser``."""
    for dest, default in defaults.items():
        kwargs = {**_FLAGS[dest], "dest": dest}
        if help and dest in help:
            kwargs["help"] = help[dest]
        if default is None and dest in _NONE_MEANS and "default:" not in kwargs["help"]:
            kwargs["help"] += f" (default: {_NONE_MEANS[dest]})"  # the help shows no None
        if default is REQUIRED:
            kwargs["required"] = True
        elif kwargs.get("action") != "store_true":
            kwargs["default"] = default
        parser.add_argument("--" + dest.replace("_", "-"), **kwargs)
    return parser


# What a default of None means, for the flags where the help does not say it.
_NONE_MEANS = {"threads": "torch's", "time_limit": "none", "limit": "all"}


def shared(*, help: dict[str, str] | None = None, **defaults) -> argparse.ArgumentParser:
    """A parent parser (``parents=[...]``) with the shared flags of ``add_shared``.

    A new parser each call: commands never share (and so never change) each other's flags.
    """
    return add_shared(argparse.ArgumentParser(add_help=False), help=help, **defaults)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except None (the help then says what None means) and
    False (a flag's); a description of several lines (a module docstring, with its example
    command lines) is shown as written, a one-line one is wrapped."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        if "\n" in text.strip():  # a docstring: as written, less its reST markup
            text = text.strip().replace("``", "").replace("::\n", ":\n")
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_command(
    subparsers, name: str, run: Command | None = None, *, parents=(), **kwargs
) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name, ...)`` with the kit's help format; ``run(args)``, when
    given, is what the command does (through ``run_command``)."""
    parser = subparsers.add_parser(
        name, parents=list(parents), formatter_class=HelpFormatter, **kwargs
    )
    if run is not None:
        parser.set_defaults(func=functools.partial(run_command, parser.prog, run))
    return parser


def add_group(subparsers, name: str, **kwargs):
    """A command made of subcommands (``optnet sudoku train``, ...): returns the subparsers
    to ``add_command`` them to."""
    parser = add_command(subparsers, name, **kwargs)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def run_command(prog: str, run: Command, args: argparse.Namespace) -> int:
    """Run a command: first ``--threads`` (where the command has it); a ``ConfigError`` or a
    ``FileNotFoundError`` becomes one line on stderr (``prog: error: ...``) and the exit
    status 2; other errors propagate."""
    try:
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        return run(args)
    except (ConfigError, FileNotFoundError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2


def print_result(result: dict, text: str, *, json_only: bool) -> None:
    """A command's result: for people (``text``, left out with ``--json``), then for programs
    (``result`` as one JSON line)."""
    if not json_only:
        print(text)
    print(json.dumps(result), flush=True)


def config_from_args(config_type: type, args: argparse.Namespace, **overrides):
    """The dataclass ``config_type`` made of the parsed arguments named like its fields (the
    fields no option names keep their defaults); ``overrides`` win."""
    names = (field.name for field in dataclasses.fields(config_type))
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return config_type(**{**values, **overrides})


def comma_list(kind: Callable[[str], object]) -> Callable[[str], list]:
    """An argparse ``type``: ``"a,b,c"`` -> ``[kind("a"), kind("b"), kind("c")]``.

    Give the default as such a string too: argparse converts it, and the help shows it as typed.
    """

    def parse(text: str) -> list:
        return [kind(x) for x in text.split(",") if x]

    return parse
