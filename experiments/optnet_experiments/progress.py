"""Progress bars for people at a terminal, and nothing anywhere else."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator


def progress(iterable: Iterable, *, desc: str, total: int | None = None) -> Iterator:
    """A tqdm progress bar on stderr (silent when stderr is not a terminal, e.g. in CI)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional (the GPU machine may lack it): no bar
        return iter(iterable)
    disable = not sys.stderr.isatty()
    return iter(tqdm(iterable, desc=desc, total=total, leave=False, disable=disable))
