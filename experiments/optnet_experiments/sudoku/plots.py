"""The Sudoku error plot: per epoch, the strict error of each split and the paper's error of
the test split, in percent on a log scale (an error of 0.1 % is invisible on a linear axis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plotting import integer_ticks, pyplot, save_figure

# Errors of 0 cannot sit on a log axis: they are drawn at this floor (in percent), which the
# axis label states. 0.01 % is below one board in 1000 test puzzles (0.1 %).
ERROR_FLOOR_PERCENT = 0.01

# (record key, legend name, colour, line style, marker): one colour per split, and the metric
# shown by the line (strict: solid with dots; the paper's check: dashed with crosses).
CURVES = (
    ("train_strict_error", "train, strict", "tab:blue", "-", "o"),
    ("val_strict_error", "validation, strict", "tab:green", "-", "s"),
    ("test_strict_error", "test, strict", "tab:orange", "-", "o"),
    ("test_paper_error", "test, paper's check", "tab:red", "--", "x"),
)


# For plot_runs: the metric of each line style (one colour per run).
RUN_CURVES = (
    ("val_strict_error", "validation, strict", ":", "s"),
    ("test_strict_error", "test, strict", "-", "o"),
    ("test_paper_error", "test, paper's check", "--", "x"),
)
RUN_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def plot_errors(records: list[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Save the error curves of a run's ``records`` (one per epoch) as the PNG ``path``."""
    curves = [
        (_points(records, key), name, colour, style, marker)
        for key, name, colour, style, marker in CURVES
    ]
    return _plot(curves, path, title=title)


def plot_runs(runs: dict[str, list[dict[str, Any]]], path: Path, *, title: str) -> Path:
    """Save the validation and test errors of several runs (``{name: records}``) in one PNG:
    one colour per run and one line style per metric, with a legend for each."""
    from matplotlib.lines import Line2D

    colours = {run: RUN_COLOURS[i % len(RUN_COLOURS)] for i, run in enumerate(runs)}
    curves = [
        (_points(records, key), None, colours[run], style, marker)
        for run, records in runs.items()
        for key, _, style, marker in RUN_CURVES
    ]
    legends = [
        [Line2D([], [], color=colour, linewidth=3, label=run) for run, colour in colours.items()],
        [
            Line2D([], [], color="0.3", linestyle=style, marker=marker, label=name)
            for _, name, style, marker in RUN_CURVES
        ],
    ]
    return _plot(curves, path, title=title, legends=legends)


def _points(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    return [(r["epoch"], r[key]) for r in records if r.get(key) is not None]


def _plot(curves, path: Path, *, title: str, legends=None) -> Path:
    from matplotlib.ticker import FuncFormatter

    fig, ax = pyplot().subplots(figsize=(6.4, 4.2))
    for points, name, colour, style, marker in curves:
        if not points:
            continue
        epochs = [epoch for epoch, _ in points]
        percent = [max(100.0 * value, ERROR_FLOOR_PERCENT) for _, value in points]
        ax.plot(
            epochs, percent, color=colour, linestyle=style, marker=marker, markersize=5,
            linewidth=1.6, label=name, alpha=0.9,
        )  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(ERROR_FLOOR_PERCENT / 1.5, 150)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g} %"))
    integer_ticks(ax.xaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"boards wrong (%, log scale; 0 drawn at {ERROR_FLOOR_PERCENT:g} %)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="major")
    ax.grid(alpha=0.1, which="minor")
    if legends is not None:  # [run handles, metric handles]: two legends, side by side
        first = ax.legend(handles=legends[0], loc="lower left", fontsize=8, title="run")
        ax.add_artist(first)
        ax.legend(handles=legends[1], loc="lower right", fontsize=8, title="metric")
    elif ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    return save_figure(fig, path, dpi=120)
