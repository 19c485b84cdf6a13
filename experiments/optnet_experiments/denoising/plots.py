"""The denoising plots: example signals with each model's output, and a run's curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..plotting import integer_ticks, plain_log_ticks, plot_curves, pyplot, save_figure
from .data import DenoisingData

# The kinds whose epoch 0 is the tuned TV denoiser itself: their curves show it as a line.
TV_STARTED = ("optnet-tv", "optnet-qp-tv")
PAPER_TV, PAPER_OPTNET_TV = 16.5, 14.4  # the paper's test MSE (sec. 5.3)


def plot_examples(
    clean: torch.Tensor, noisy: torch.Tensor, outputs: dict[str, torch.Tensor], path: Path
) -> Path:
    """One panel per example signal: noisy, truth and each model's output."""
    count = clean.shape[0]
    fig, axes = pyplot().subplots(count, 1, figsize=(7, 1.9 * count), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(noisy[i], color="0.7", lw=0.8, label="noisy")
        ax.plot(clean[i], color="k", lw=1.5, label="truth")
        for name, out in outputs.items():
            ax.plot(out[i], lw=1.1, label=name)
        ax.set_ylabel("value")
    axes[0, 0].legend(ncol=2 + len(outputs), fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("position")
    return save_figure(fig, path, dpi=80)


def plot_mse_curves(
    records: list[dict[str, Any]],
    path: Path,
    *,
    title: str,
    tv_mse: float | None = None,
    paper: dict[str, float] | None = None,
) -> Path:
    """Train and test MSE per epoch; ``tv_mse`` as a horizontal line (the TV denoiser's test
    MSE on the same data), ``paper`` values as dotted lines (label -> MSE).

    The y axis is linear with plain labels (14.5, 15, 15.5) when the values span less than a
    factor 3 (a log axis over 14..17 would have no labelled tick); log with plain labels
    otherwise (from the noisy input's ~100 down); the epoch axis has integer ticks.
    """
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    fig, ax = pyplot().subplots(figsize=(8, 4))
    values = []
    curves = (("train_mse", "train (mean over the epoch)", "o"), ("test_mse", "test", "s"))
    for key, label, marker in curves:
        points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker=marker, markersize=4, label=label)
            values += [v for _, v in points]
    lines = [] if tv_mse is None else [(tv_mse, f"TV, test ({tv_mse:.2f})", "--", "k")]
    styles = [(":", "tab:gray"), ("-.", "tab:green")]
    for i, (name, value) in enumerate((paper or {}).items()):
        lines.append((value, f"{name} ({value:g})", *styles[i % len(styles)]))
    for value, label, style, color in lines:
        ax.axhline(value, ls=style, color=color, lw=1.2, label=label)
        values.append(value)
    low, high = min(values), max(values)
    log = high / low > 3
    if log:
        ax.set_yscale("log")
        plain_log_ticks(ax)
    else:
        pad = 0.05 * (high - low) + 1e-3
        ax.set_ylim(low - pad, high + pad)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    integer_ticks(ax.xaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE per entry (log scale)" if log else "MSE per entry")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return save_figure(fig, path, dpi=120)


def plot_run(
    out: Path,
    model: nn.Module,
    data: DenoisingData,
    records: list[dict[str, Any]],
    grid_records: list[dict[str, Any]] | None,
    lam: float | None,
    kind: str,
    device: torch.device,
) -> None:
    """A run's plots in ``out``: ``curves.png`` (MSE per epoch, with more than one epoch; for
    the TV-started kinds with epoch 0, the TV line and the paper's values),
    ``lambda_grid.png`` (after a grid search, with the chosen ``lam`` marked) and
    ``examples.png`` (four test signals)."""
    if len(records) > 1:
        started = kind in TV_STARTED and records[0]["epoch"] == 0
        plot_mse_curves(
            records,
            out / "curves.png",
            title=f"denoising: {kind}",
            tv_mse=records[0]["test_mse"] if started else None,
            paper={"paper, TV": PAPER_TV, "paper, OptNet from TV": PAPER_OPTNET_TV}
            if started
            else None,
        )
    if grid_records is not None:
        plot_curves(
            grid_records,
            ["train_mse"],
            out / "lambda_grid.png",
            x="lambda",
            xlabel="lambda (weight of the total variation)",
            title="TV: training MSE vs lambda",
            ylabel="MSE per entry",
            labels={"train_mse": "train"},
            mark=None if lam is None else (lam, f"chosen: lambda = {lam:g}"),
        )
    with torch.no_grad():
        model.eval()
        idx = slice(0, 4)
        outputs = {kind: model(data.test_noisy[idx].to(device)).cpu()}
    plot_examples(data.test_clean[idx], data.test_noisy[idx], outputs, out / "examples.png")
