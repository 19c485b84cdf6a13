"""What the experiments' commands share: help that shows the defaults, and one way to report
a user's error (a line on stderr and exit status 2, not a traceback)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from .common import ConfigError

Command = Callable[[argparse.Namespace], int]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except None (the help then says what None means) and
    False (a flag's)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_command(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name, ...)`` whose ``--help`` shows the defaults."""
    return subparsers.add_parser(name, formatter_class=HelpFormatter, **kwargs)


def reports_errors(prog: str) -> Callable[[Command], Command]:
    """Decorate a command: a ``ConfigError`` or ``FileNotFoundError`` becomes one line on
    stderr (``prog: error: ...``) and the exit status 2; other errors propagate."""

    def decorate(func: Command) -> Command:
        @functools.wraps(func)
        def run(args: argparse.Namespace) -> int:
            try:
                return func(args)
            except (ConfigError, FileNotFoundError) as error:
                print(f"{prog}: error: {error}", file=sys.stderr)
                return 2

        return run

    return decorate
