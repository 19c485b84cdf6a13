"""Where the data sets live: a command's ``--data`` option, else ``$OPTNET_DATA/<name>``, else
``../shared/data/<name>`` (relative to the current directory)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "OPTNET_DATA"
DEFAULT_DATA_ROOT = Path("../shared/data")


def data_dir(name: str, override: str | Path | None = None) -> Path:
    """The folder of the data set ``name``.

    ``override`` (a command's ``--data`` option: the data set's own folder) wins; else
    ``$OPTNET_DATA/name`` when the environment variable ``OPTNET_DATA`` (a root folder) is set
    and not empty; else ``../shared/data/name``, relative to the current directory.

    Example:
        >>> data_dir("sudoku4")            # ../shared/data/sudoku4 without OPTNET_DATA
    """
    if override is not None:
        return Path(override)
    root = os.environ.get(DATA_ENV)
    return (Path(root) if root else DEFAULT_DATA_ROOT) / name


def default_help(name: str) -> str:
    """The ``(default: ...)`` part of a ``--data`` option's help, for the data set ``name``."""
    return f"(default: ${DATA_ENV}/{name} if {DATA_ENV} is set, else {DEFAULT_DATA_ROOT}/{name})"
