"""What every plot of the experiments and benchmarks shares: the optional matplotlib, curves
per epoch, readable ticks, and saving.

Every axis is labelled; a log axis says so in its label (``"error (log scale)"``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("optnet")


def can_plot() -> bool:
    """False (with a warning) where matplotlib is missing: runs still train and log."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.warning("matplotlib is not installed: skipping the plots")
        return False
    return True


def pyplot():
    """``matplotlib.pyplot`` drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(
    records: list[dict[str, Any]],
    keys: list[str],
    path: Path,
    *,
    title: str,
    ylabel: str,
    x: str = "epoch",
    xlabel: str | None = None,
    logy: bool = False,
    labels: dict[str, str] | None = None,
    mark: tuple[float, str] | None = None,
) -> Path:
    """Plot ``record[key]`` against ``record[x]`` for each key; save a PNG.

    ``labels`` maps keys to legend names (default: the key); ``xlabel`` defaults to ``x``;
    ``mark`` ``(value, label)`` draws a labelled vertical line at ``x = value`` (a chosen
    hyperparameter). A log axis is labelled with plain numbers (60, 70, 80, not 6x10^1),
    minor ticks too when it spans less than two decades; an ``epoch`` axis has integer ticks.
    """
    fig, ax = pyplot().subplots(figsize=(6, 4))
    markers = "os^vD"  # one marker per curve, so overlapping curves stay apart
    for i, key in enumerate(keys):
        points = [(r[x], r[key]) for r in records if r.get(key) is not None]
        if points:
            name = (labels or {}).get(key, key)
            ax.plot(*zip(*points), marker=markers[i % len(markers)], markersize=4, label=name)
    if mark is not None:
        ax.axvline(mark[0], color="k", linestyle="--", linewidth=1, label=mark[1])
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(f"{ylabel} (log scale)" if logy else ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
        plain_log_ticks(ax)
    if x == "epoch":
        integer_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, dpi=120)


def integer_ticks(axis) -> None:
    """Ticks of a matplotlib axis at integers only (epochs)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def plain_log_ticks(ax) -> None:
    """Label the log-scale y axis of ``ax`` with plain numbers (``%g``); label the minor ticks
    too (2..9 times a power of ten) when the axis spans less than two decades, where the major
    ticks alone would leave one label or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.yaxis
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    low, high = sorted(ax.get_ylim())
    if low > 0 and high / low < 100:
        axis.set_minor_locator(LogLocator(subs=(2, 3, 4, 5, 6, 7, 8, 9)))
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_formatter(NullFormatter())


def save_figure(fig, path: Path, *, dpi: int) -> Path:
    """Lay out a matplotlib figure, save it as ``path`` (making its folder) and close it."""
    plt = pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
