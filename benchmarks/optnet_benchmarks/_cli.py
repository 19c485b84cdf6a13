"""What the two command lines add to the experiments' command helpers: the module docstring
kept as written in ``--help``, and comma-list arguments.

Errors are reported as in every ``optnet`` command (``optnet_experiments.cli.reports_errors``):
a ``ConfigError`` is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from optnet_experiments.cli import HelpFormatter as _DefaultsShown


class HelpFormatter(argparse.RawDescriptionHelpFormatter, _DefaultsShown):
    """Defaults shown (except None and False), and the description (the module docstring,
    with its example command lines) as written."""


def comma_list(kind: Callable[[str], object]) -> Callable[[str], list]:
    """An argparse ``type``: ``"a,b,c"`` -> ``[kind("a"), kind("b"), kind("c")]``.

    Give the default as such a string too: argparse converts it, and the help shows it as typed.
    """

    def parse(text: str) -> list:
        return [kind(x) for x in text.split(",") if x]

    return parse
