"""The denoising plots: example signals with each model's output, and a run's curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..common import plot_curves, save_figure
from .data import DenoisingData


def plot_examples(
    clean: torch.Tensor, noisy: torch.Tensor, outputs: dict[str, torch.Tensor], path: Path
) -> Path:
    """One panel per example signal: noisy, truth and each model's output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = clean.shape[0]
    fig, axes = plt.subplots(count, 1, figsize=(7, 1.9 * count), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(noisy[i], color="0.7", lw=0.8, label="noisy")
        ax.plot(clean[i], color="k", lw=1.5, label="truth")
        for name, out in outputs.items():
            ax.plot(out[i], lw=1.1, label=name)
    axes[0, 0].legend(ncol=2 + len(outputs), fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("position")
    return save_figure(fig, path, dpi=80)


def plot_run(
    out: Path,
    model: nn.Module,
    data: DenoisingData,
    records: list[dict[str, Any]],
    grid_records: list[dict[str, Any]] | None,
    kind: str,
    device: torch.device,
) -> None:
    """A run's plots in ``out``: ``curves.png`` (MSE per epoch, with more than one epoch),
    ``lambda_grid.png`` (after a grid search) and ``examples.png`` (four test signals)."""
    if len(records) > 1:
        plot_curves(
            records,
            ["train_mse", "test_mse"],
            out / "curves.png",
            title=f"denoising: {kind}",
            ylabel="MSE per entry (log scale)",
            logy=True,
            labels={"train_mse": "train", "test_mse": "test"},
        )
    if grid_records is not None:
        plot_curves(
            grid_records,
            ["train_mse"],
            out / "lambda_grid.png",
            x="lambda",
            title="TV: training MSE vs lambda",
            ylabel="MSE per entry",
            labels={"train_mse": "train"},
        )
    with torch.no_grad():
        model.eval()
        idx = slice(0, 4)
        outputs = {kind: model(data.test_noisy[idx].to(device)).cpu()}
    plot_examples(data.test_clean[idx], data.test_noisy[idx], outputs, out / "examples.png")
