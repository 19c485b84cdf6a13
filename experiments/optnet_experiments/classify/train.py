"""Training and evaluation of the digit classifiers, one run per seed.

``train_one_seed`` writes into its ``out`` folder: ``history.jsonl`` (one record per epoch),
``model.pt`` (the last epoch's), ``best.pt`` (the epoch with the lowest test error) and
``curves.png``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..json_lines import JsonLines
from ..plotting import can_plot, plot_curves
from ..training import fit, seed_everything
from .data import load_digits_split
from .models import ClassifierConfig, DigitClassifier, model_spec

_CPU = torch.device("cpu")
# The metric that picks best.pt. There is no validation split: this is the test split's, so
# best.pt's test error is an optimistic estimate; model.pt (the last epoch) is the reported one.
MONITOR = "test_error"


@torch.no_grad()
def test_error(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256, device=_CPU
) -> float:
    """Fraction of misclassified examples."""
    model.eval()
    wrong = 0
    for start in range(0, len(y), batch_size):
        pred = model(x[start : start + batch_size].to(device)).argmax(-1).cpu()
        wrong += int((pred != y[start : start + batch_size]).sum())
    return wrong / len(y)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    device=_CPU,
    wrap: Callable[[Iterable], Iterator] | None = None,
) -> float:
    """One pass of Adam over shuffled minibatches; returns the mean training NLL.

    ``wrap`` puts the batch loop under a progress bar (``fit`` passes one).
    """
    model.train()
    order = torch.randperm(len(y), generator=generator)
    total = 0.0
    starts = range(0, len(y), batch_size)
    for start in starts if wrap is None else wrap(starts):
        idx = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = F.nll_loss(model(x[idx].to(device)), y[idx].to(device))
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return total / len(y)


def train_one_seed(
    kind: str,
    seed: int,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    out: Path,
    device=_CPU,
    n_ineq: int = 50,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> dict:
    """Train one model on the split of ``seed``; returns the last epoch's record."""
    generator = seed_everything(seed)
    split = load_digits_split(seed)
    config = ClassifierConfig(kind, n_features=split.train_x.shape[1], n_ineq=n_ineq)
    model = DigitClassifier(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def run_epoch(epoch: int, wrap) -> dict[str, Any]:
        loss = train_epoch(
            model, optimizer, split.train_x, split.train_y,
            batch_size=batch_size, generator=generator, device=device, wrap=wrap,
        )  # fmt: skip
        return {
            "seed": seed,
            "train_loss": loss,
            # the training error costs a full pass: measure it only at the end
            "train_error": (
                test_error(model, split.train_x, split.train_y, device=device)
                if epoch == epochs
                else None
            ),
            "test_error": test_error(model, split.test_x, split.test_y, device=device),
        }

    result = fit(
        run_epoch,
        epochs=epochs,
        log=JsonLines(out / "history.jsonl"),
        model=model,
        spec=model_spec(config),
        checkpoint=out / "model.pt",
        best_checkpoint=out / "best.pt",
        monitor=MONITOR,
        metadata={"seed": seed},
        on_record=on_record,
        desc=f"{kind} seed {seed} epoch",
    )
    if can_plot():
        plot_curves(
            result.records,
            ["test_error"],
            out / "curves.png",
            title=f"digits: {kind}, seed {seed}",
            ylabel="images misclassified (fraction)",
            logy=True,
            labels={"test_error": "test"},
        )
    return result.records[-1]


def summarize(results: list[dict]) -> dict:
    """Mean and sample standard deviation of the final test errors over seeds."""
    errors = [r["test_error"] for r in results]
    std = statistics.stdev(errors) if len(errors) > 1 else 0.0
    return {
        "test_error_mean": statistics.fmean(errors),
        "test_error_std": std,
        "seeds": [r["seed"] for r in results],
        "test_errors": errors,
    }
