"""Classification with an OptNet layer (OptNet paper, appendix), on scikit-learn's digits.

The paper compares ``FC600-FC10-FC10-softmax`` with ``FC600-FC10-OptNet10-softmax`` on MNIST.
MNIST cannot be downloaded here, so the inputs are scikit-learn's 8x8 digits (1797 images,
shipped with the library), split 80/20, stratified, with the run's seed.

``optnet classify train|eval`` runs them; see ``register``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .._options import SolverOptions
from ..nn import OptNetLayer
from ._common import (
    JsonLines,
    can_plot,
    plot_curves,
    progress,
    resolve_device,
    restore_checkpoint,
    save_checkpoint,
    seed_everything,
)

MODEL_KINDS = ("fc", "optnet")
_CPU = torch.device("cpu")


@dataclass(frozen=True)
class DigitsSplit:
    """Pixels scaled to [0, 1], float32 ``(N, 64)``; labels int64 ``(N,)``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_digits_split(seed: int, test_fraction: float = 0.2) -> DigitsSplit:
    """scikit-learn's digits, split train/test stratified by class with ``seed``.

    Example:
        >>> split = load_digits_split(0)   # 1437 train, 360 test
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        torch.arange(len(y)).numpy(), test_size=test_fraction, stratify=y.numpy(), random_state=seed
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return DigitsSplit(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything needed to rebuild a classifier from a checkpoint."""

    kind: str
    n_features: int = 64
    hidden: int = 600
    n_classes: int = 10
    n_ineq: int = 50  # inequalities of the OptNet layer
    max_iter: int = 50


class DigitClassifier(nn.Module):
    """``FC(hidden)-ReLU-FC(10)-ReLU-head-log_softmax`` with head FC(10) or OptNet(10).

    The OptNet head solves ``min 1/2 z'Qz + p'z s.t. Gz <= h`` with learned Q, G, h
    (``optnet.nn.OptNetLayer``, float64) and ``p`` the previous layer's output; its solution
    z is the logits.
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        c = config
        self.features = nn.Sequential(
            nn.Linear(c.n_features, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, c.n_classes),
            nn.ReLU(),
        )
        if c.kind == "fc":
            self.head = nn.Linear(c.n_classes, c.n_classes)
        elif c.kind == "optnet":
            self.head = OptNetLayer(
                c.n_classes, c.n_ineq, options=SolverOptions(max_iter=c.max_iter)
            )
        else:
            raise ValueError(f"unknown model kind {c.kind!r}; expected one of {MODEL_KINDS}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, n_features)`` -> log-probabilities ``(B, n_classes)``."""
        logits = self.head(self.features(x))
        return F.log_softmax(logits, dim=-1).to(x.dtype)


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
    desc: str = "train",
) -> float:
    """One pass of Adam over shuffled minibatches; returns the mean training NLL."""
    model.train()
    order = torch.randperm(len(y), generator=generator)
    total = 0.0
    for start in progress(range(0, len(y), batch_size), desc=desc):
        idx = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = F.nll_loss(model(x[idx].to(device)), y[idx].to(device))
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(idx)
    return total / len(y)


def load_checkpoint(path: Path, device=_CPU):
    """Return ``(model, config, checkpoint dict)`` of a ``save_checkpoint`` file."""
    return restore_checkpoint(path, ClassifierConfig, DigitClassifier, device)


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
) -> dict:
    """Train one model on the split of ``seed``; write history, curves and checkpoint to ``out``."""
    generator = seed_everything(seed)
    split = load_digits_split(seed)
    config = ClassifierConfig(kind, n_features=split.train_x.shape[1], n_ineq=n_ineq)
    model = DigitClassifier(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    out.mkdir(parents=True, exist_ok=True)
    log = JsonLines(out / "history.jsonl")
    records, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss = train_epoch(
            model,
            optimizer,
            split.train_x,
            split.train_y,
            batch_size=batch_size,
            generator=generator,
            device=device,
            desc=f"{kind} seed {seed} epoch {epoch}",
        )
        record = {
            "seed": seed,
            "epoch": epoch,
            "train_loss": loss,
            # the training error costs a full pass: measure it only at the end
            "train_error": (
                test_error(model, split.train_x, split.train_y, device=device)
                if epoch == epochs
                else None
            ),
            "test_error": test_error(model, split.test_x, split.test_y, device=device),
            "seconds": time.perf_counter() - start,
        }
        records.append(record)
        log.write(record)
        print(json.dumps(record), flush=True)
    save_checkpoint(out / "model.pt", model, config, {"seed": seed, "history": records})
    if can_plot():
        plot_curves(
            records,
            ["test_error"],
            out / "curves.png",
            title=f"digits: {kind}, seed {seed}",
            ylabel="error",
            logy=True,
        )
    return records[-1]


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


# --------------------------------------------------------------------------------------------
# CLI


def register(subparsers) -> None:
    """Add ``optnet classify {train,eval}``."""
    parser = subparsers.add_parser("classify", help="digits classification (paper appendix)")
    sub = parser.add_subparsers(dest="classify_command", required=True)

    train = sub.add_parser("train", help="train one model kind for one or more seeds")
    train.add_argument("--model", choices=MODEL_KINDS, required=True)
    train.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="one run per seed (split and init); writes summary.json",
    )
    train.add_argument("--epochs", type=int, default=25)
    train.add_argument("--lr", type=float, default=3e-3)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--n-ineq", type=int, default=50, help="inequalities of the OptNet layer")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument("--out", type=Path, required=True, help="output folder")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="test error of a checkpoint")
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ev.add_argument("--json", action="store_true", help="print a JSON line last")
    ev.set_defaults(func=_cmd_eval)


def _cmd_train(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    start = time.perf_counter()
    results = []
    for seed in args.seeds:
        final = train_one_seed(
            args.model,
            seed,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            out=Path(args.out) / f"seed{seed}",
            device=device,
            n_ineq=args.n_ineq,
        )
        results.append(final)
    summary = {
        "model": args.model,
        **summarize(results),
        "epochs": args.epochs,
        "seconds": time.perf_counter() - start,
        "device": str(device),
    }
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{args.model}: test error {100 * summary['test_error_mean']:.2f}% "
        f"+- {100 * summary['test_error_std']:.2f}% over {len(results)} seeds"
    )
    print(json.dumps(summary))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, config, ckpt = load_checkpoint(args.checkpoint, device)
    split = load_digits_split(ckpt["seed"])
    error = test_error(model, split.test_x, split.test_y, device=device)
    result = {
        "test_error": error,
        "n": len(split.test_y),
        "model": config.kind,
        "seed": ckpt["seed"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{config.kind} (seed {ckpt['seed']}): test error {100 * error:.2f}% "
            f"on {len(split.test_y)} images"
        )
    return 0
