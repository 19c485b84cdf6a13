"""Total-variation denoising of 1-D piecewise-constant signals (OptNet paper, section 5.3).

Four models map a noisy signal ``y`` (length n) to an estimate ``x`` of the clean signal:

* ``fc``: one hidden ReLU layer of 1000 units;
* ``tv``: the total-variation baseline ``min_x 1/2 ||x - y||^2 + lam ||D x||_1`` with D the
  first-difference operator and ``lam`` chosen on a grid on the training data;
* ``optnet``: the same QP with a learned D (random start, l1 penalty on D, ``lam = 1``:
  a learned D absorbs the scale of lam);
* ``optnet-tv``: the learned-D QP started at the tuned total-variation solution.

``optnet denoise train|eval|compare`` runs them; see ``register``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._options import SolverOptions
from ..functional import solve_qp
from ._common import (
    DTYPES,
    JsonLines,
    can_plot,
    plot_curves,
    progress,
    resolve_device,
    restore_checkpoint,
    save_checkpoint,
    save_figure,
    seed_everything,
)

MODEL_KINDS = ("fc", "tv", "optnet", "optnet-tv")
_DEFAULT_LR = {"fc": 1e-3, "optnet": 1e-2, "optnet-tv": 1e-4}


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class SignalConfig:
    """How the piecewise-constant signals are drawn (defaults: the paper's setting)."""

    length: int = 100
    max_pieces: int = 9
    low: int = 10  # heights are integers in [low, high)
    high: int = 100
    sigma: float = 10.0


_PAPER_SIGNALS = SignalConfig()
_CPU = torch.device("cpu")


@dataclass(frozen=True)
class DenoisingData:
    """Train/test split of clean signals and their noisy observations, float64 ``(N, length)``."""

    train_clean: torch.Tensor
    train_noisy: torch.Tensor
    test_clean: torch.Tensor
    test_noisy: torch.Tensor


def make_signals(
    count: int, *, seed: int, config: SignalConfig = _PAPER_SIGNALS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``count`` piecewise-constant signals and their noisy versions.

    Each signal has a number of pieces uniform in ``1..max_pieces``, breakpoints at distinct
    positions chosen uniformly, and an integer height per piece uniform in ``[low, high)``,
    redrawn when equal to the previous piece's (so the piece count is exact). Noise is
    Gaussian with standard deviation ``sigma``.

    Returns ``(clean, noisy, pieces)``: float64 ``(count, length)`` twice and int64 ``(count,)``.

    Example:
        >>> clean, noisy, pieces = make_signals(4, seed=0)
    """
    rng = np.random.default_rng(seed)
    clean = np.empty((count, config.length))
    pieces = rng.integers(1, config.max_pieces + 1, size=count)
    for row, k in enumerate(pieces):
        cuts = np.sort(rng.choice(np.arange(1, config.length), size=k - 1, replace=False))
        bounds = np.concatenate([[0], cuts, [config.length]])
        height = None
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            new = int(rng.integers(config.low, config.high))
            while new == height:
                new = int(rng.integers(config.low, config.high))
            height = new
            clean[row, start:stop] = height
    noisy = clean + config.sigma * rng.standard_normal(clean.shape)
    return torch.from_numpy(clean), torch.from_numpy(noisy), torch.from_numpy(pieces)


def make_dataset(
    seed: int = 0, n_train: int = 9000, n_test: int = 1000, config: SignalConfig = _PAPER_SIGNALS
) -> DenoisingData:
    """The paper's data set: ``n_train + n_test`` signals drawn with one seed, split in order."""
    clean, noisy, _ = make_signals(n_train + n_test, seed=seed, config=config)
    return DenoisingData(clean[:n_train], noisy[:n_train], clean[n_train:], noisy[n_train:])


# --------------------------------------------------------------------------------------------
# Models


def difference_matrix(length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """First-difference operator D ``(length - 1, length)``: ``(D x)_i = x_{i+1} - x_i``."""
    return torch.diff(torch.eye(length, dtype=dtype), dim=0)


class FCDenoiser(nn.Module):
    """Fully connected baseline: ``y -> Linear -> ReLU -> Linear``."""

    def __init__(self, length: int = 100, hidden: int = 1000):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(length, hidden), nn.ReLU(), nn.Linear(hidden, length))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y.to(self.net[0].weight.dtype)).to(y.dtype)


class TVDenoiser(nn.Module):
    """``x*(y) = argmin_x 1/2 ||x - y||^2 + lam ||D x||_1`` as a differentiable layer.

    The QP solved is the dual: by ``lam ||v||_1 = max_{|nu| <= lam} nu'v``, the minimizer over
    x of ``1/2 ||x - y||^2 + nu'D x`` is ``x = y - D'nu``, leaving

        min_nu  1/2 nu' (D D') nu - (D y)' nu    s.t.  -lam <= nu <= lam.

    Why the dual rather than the primal with epigraph variables ``(x, t), -t <= D x <= t``:
    it has m = n - 1 variables instead of 2n - 1, so each dense Newton factorization is about
    8x cheaper; its only constraints are bounds, which the solver handles natively as diagonal
    terms (no dense G rows); and it is smooth in D (``Q = D D'``, ``p = -D y``,
    ``x = y - D'nu``), so gradients reach D through both the solution nu and the
    reconstruction. ``D D'`` is positive definite whenever D has full row rank (true for the
    first differences and, almost surely, for a random D with m < n); the primal x stays
    unique even where nu is not.

    Args:
        D: ``(m, length)`` initial operator.
        lam: the bound on the duals (the TV weight).
        learn_D: make D a parameter (OptNet) or a fixed buffer (the TV baseline).
        options: solver options.
    """

    def __init__(
        self,
        D: torch.Tensor,
        lam: float,
        *,
        learn_D: bool,
        options: SolverOptions | None = None,
    ):
        super().__init__()
        if learn_D:
            self.D = nn.Parameter(D.clone())
        else:
            self.register_buffer("D", D.clone())
        self.register_buffer("lam", torch.tensor(float(lam), dtype=D.dtype))
        self.options = SolverOptions() if options is None else options
        self.last_unsolved = 0  # unsolved QPs in the latest forward, for logging

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        D = self.D
        y_qp = y.to(D.dtype)
        bound = self.lam.expand(D.shape[0])
        sol = solve_qp(D @ D.mT, -(y_qp @ D.mT), lb=-bound, ub=bound, options=self.options)
        self.last_unsolved = int((~sol.solved).sum())
        return (y_qp - sol.z @ D).to(y.dtype)

    def extra_repr(self) -> str:
        return f"D={tuple(self.D.shape)}, lam={float(self.lam):g}, options={self.options}"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model from a checkpoint."""

    kind: str
    length: int = 100
    hidden: int = 1000
    lam: float = 1.0
    dtype: str = "float64"  # of the QP models
    max_iter: int = 50


def build_model(config: ModelConfig, *, seed: int = 0) -> nn.Module:
    """A fresh model of ``config.kind`` (``D`` of ``optnet`` drawn as ``0.3 * randn``)."""
    if config.kind == "fc":
        torch.manual_seed(seed)
        return FCDenoiser(config.length, config.hidden)
    dtype = DTYPES[config.dtype]
    options = SolverOptions(max_iter=config.max_iter)
    if config.kind == "optnet":
        g = torch.Generator().manual_seed(seed)
        D = 0.3 * torch.randn(config.length - 1, config.length, generator=g, dtype=dtype)
    elif config.kind in ("tv", "optnet-tv"):
        D = difference_matrix(config.length, dtype)
    else:
        raise ValueError(f"unknown model kind {config.kind!r}; expected one of {MODEL_KINDS}")
    return TVDenoiser(D, config.lam, learn_D=config.kind != "tv", options=options)


# --------------------------------------------------------------------------------------------
# Training and evaluation


def _batches(count: int, batch_size: int, generator: torch.Generator | None = None):
    order = torch.arange(count) if generator is None else torch.randperm(count, generator=generator)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    clean: torch.Tensor,
    noisy: torch.Tensor,
    *,
    batch_size: int = 100,
    device: torch.device = _CPU,
    desc: str = "eval",
) -> tuple[float, int]:
    """Mean squared error per entry of ``model(noisy)`` against ``clean``; and unsolved QPs."""
    model.eval()
    total, unsolved = 0.0, 0
    for idx in progress(_batches(len(clean), batch_size), desc=desc):
        out = model(noisy[idx].to(device))
        total += float((out - clean[idx].to(device)).pow(2).sum())
        unsolved += getattr(model, "last_unsolved", 0)
    return total / clean.numel(), unsolved


def tv_grid_search(
    clean: torch.Tensor,
    noisy: torch.Tensor,
    lambdas: list[float],
    *,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 100,
    device: torch.device = _CPU,
    on_result=None,
) -> tuple[float, list[dict]]:
    """Evaluate the TV denoiser for each lam; return the best lam and one record per lam."""
    records = []
    D = difference_matrix(clean.shape[-1], dtype).to(device)
    for lam in progress(lambdas, desc="lambda grid"):
        start = time.perf_counter()
        model = TVDenoiser(D, lam, learn_D=False).to(device)
        mse, unsolved = evaluate(model, clean, noisy, batch_size=batch_size, device=device)
        record = {"lambda": float(lam), "train_mse": mse, "unsolved": unsolved}
        record["seconds"] = time.perf_counter() - start
        records.append(record)
        if on_result is not None:
            on_result(record)
    best = min(records, key=lambda r: r["train_mse"])
    return best["lambda"], records


def d_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute entries of the learned D (the paper's l1 penalty); 0 for other models."""
    if isinstance(model, TVDenoiser) and isinstance(model.D, nn.Parameter):
        return model.D.abs().sum()
    return torch.zeros(())


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    clean: torch.Tensor,
    noisy: torch.Tensor,
    *,
    l1: float = 0.0,
) -> float:
    """One Adam step on ``mse + l1 * |D|_1``; returns the batch MSE before the step."""
    model.train()
    optimizer.zero_grad()
    mse = (model(noisy) - clean).pow(2).mean()
    loss = mse + l1 * d_penalty(model).to(mse)
    loss.backward()
    optimizer.step()
    return float(mse.detach())


def load_checkpoint(path: Path, device: torch.device = _CPU):
    """Return ``(model, config, checkpoint dict)`` of a ``save_checkpoint`` file."""
    return restore_checkpoint(path, ModelConfig, build_model, device)


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


# --------------------------------------------------------------------------------------------
# CLI


def register(subparsers) -> None:
    """Add ``optnet denoise {train,eval,compare}``."""
    parser = subparsers.add_parser("denoise", help="total-variation denoising (paper sec. 5.3)")
    sub = parser.add_subparsers(dest="denoise_command", required=True)

    train = sub.add_parser("train", help="train one model (tv: choose lambda on a grid)")
    train.add_argument("--model", choices=MODEL_KINDS, required=True)
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--seed", type=int, default=0, help="model init and batch order")
    train.add_argument("--data-seed", type=int, default=0, help="the data set (share it!)")
    train.add_argument("--n-train", type=int, default=9000)
    train.add_argument("--n-test", type=int, default=1000)
    train.add_argument("--batch-size", type=int, default=100)
    train.add_argument(
        "--lr", type=float, default=None, help="default: fc 1e-3, optnet 1e-2, optnet-tv 1e-4"
    )
    train.add_argument(
        "--l1",
        type=float,
        default=None,
        help="weight of |D|_1 in the loss (default 0.1 for optnet, else 0)",
    )
    train.add_argument(
        "--lam",
        type=float,
        default=None,
        help="TV weight of tv/optnet-tv (default: grid search on training data); optnet uses 1",
    )
    train.add_argument(
        "--lambda-grid",
        type=float,
        nargs=3,
        default=[0, 100, 1],
        metavar=("START", "STOP", "STEP"),
        help="grid (inclusive) for tv",
    )
    train.add_argument(
        "--grid-signals",
        type=int,
        default=None,
        help="training signals used by the grid search (default: all)",
    )
    train.add_argument(
        "--dtype", choices=tuple(DTYPES), default="float64", help="dtype of the QP models"
    )
    train.add_argument("--max-iter", type=int, default=50, help="solver iteration cap")
    train.add_argument(
        "--time-limit", type=float, default=None, help="stop after the epoch that passes it (s)"
    )
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument("--out", type=Path, required=True, help="output folder")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="test MSE of a checkpoint")
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ev.add_argument("--batch-size", type=int, default=100)
    ev.add_argument("--json", action="store_true", help="print a JSON line last")
    ev.set_defaults(func=_cmd_eval)

    cmp = sub.add_parser("compare", help="table and example plot of several checkpoints")
    cmp.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    cmp.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    cmp.add_argument("--examples", type=int, default=4)
    cmp.add_argument("--out", type=Path, required=True, help="folder for compare.json and png")
    cmp.set_defaults(func=_cmd_compare)


def _grid(start: float, stop: float, step: float) -> list[float]:
    count = int(round((stop - start) / step)) + 1
    return [start + i * step for i in range(count)]


def _cmd_train(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    generator = seed_everything(args.seed)
    data = make_dataset(args.data_seed, args.n_train, args.n_test)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = JsonLines(out / "history.jsonl")
    start = time.perf_counter()

    lam = 1.0 if args.model == "optnet" else args.lam
    grid_records = None
    if args.model in ("tv", "optnet-tv") and lam is None:
        n_grid = args.grid_signals or len(data.train_clean)
        lam, grid_records = tv_grid_search(
            data.train_clean[:n_grid],
            data.train_noisy[:n_grid],
            _grid(*args.lambda_grid),
            dtype=DTYPES[args.dtype],
            batch_size=args.batch_size,
            device=device,
            on_result=lambda r: (log.write(r), print(json.dumps(r), flush=True)),
        )
        print(f"best lambda {lam:g} on {n_grid} training signals", flush=True)
    config = ModelConfig(
        args.model,
        length=data.train_clean.shape[-1],
        lam=lam or 1.0,
        dtype=args.dtype,
        max_iter=args.max_iter,
    )
    model = build_model(config, seed=args.seed).to(device)
    test = (data.test_clean, data.test_noisy)
    records = []

    def log_epoch(epoch: int, train_mse: float | None, seconds: float, unsolved: int) -> None:
        test_mse, test_unsolved = evaluate(model, *test, batch_size=args.batch_size, device=device)
        record = {
            "epoch": epoch,
            "train_mse": train_mse,
            "test_mse": test_mse,
            "unsolved": unsolved + test_unsolved,
            "seconds": seconds,
        }
        if isinstance(model, TVDenoiser):
            record["D_l1"] = float(model.D.detach().abs().sum())
        records.append(record)
        log.write(record)
        print(json.dumps(record), flush=True)

    if args.model == "tv":
        log_epoch(
            0,
            None if grid_records is None else min(r["train_mse"] for r in grid_records),
            time.perf_counter() - start,
            0,
        )
    else:
        lr = args.lr if args.lr is not None else _DEFAULT_LR[args.model]
        l1 = args.l1 if args.l1 is not None else (0.1 if args.model == "optnet" else 0.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        log_epoch(0, None, time.perf_counter() - start, 0)
        _save(out, model, config, args, records)
        for epoch in range(1, args.epochs + 1):
            batches = _batches(len(data.train_clean), args.batch_size, generator)
            total, unsolved = 0.0, 0
            for idx in progress(batches, desc=f"epoch {epoch}/{args.epochs}"):
                clean, noisy = data.train_clean[idx].to(device), data.train_noisy[idx].to(device)
                total += train_step(model, optimizer, clean, noisy, l1=l1) * len(idx)
                unsolved += getattr(model, "last_unsolved", 0)
            log_epoch(epoch, total / len(data.train_clean), time.perf_counter() - start, unsolved)
            _save(out, model, config, args, records)
            if args.time_limit is not None and time.perf_counter() - start > args.time_limit:
                print(
                    f"time limit of {args.time_limit:g} s reached after epoch {epoch}", flush=True
                )
                break
    _save(out, model, config, args, records)
    if can_plot():
        _plot_run(out, model, data, records, grid_records, args.model, device)
    print(
        json.dumps(
            {
                "model": args.model,
                "test_mse": records[-1]["test_mse"],
                "lambda": lam,
                "seconds": time.perf_counter() - start,
            }
        )
    )
    return 0


def _save(out: Path, model: nn.Module, config: ModelConfig, args, records: list[dict]) -> None:
    data_info = {"data_seed": args.data_seed, "n_train": args.n_train, "n_test": args.n_test}
    save_checkpoint(out / "model.pt", model, config, {"data": data_info, "history": records})


def _plot_run(out, model, data, records, grid_records, kind, device) -> None:
    if len(records) > 1:
        plot_curves(
            records,
            ["train_mse", "test_mse"],
            out / "curves.png",
            title=f"denoising: {kind}",
            ylabel="MSE",
            logy=True,
        )
    if grid_records is not None:
        plot_curves(
            grid_records,
            ["train_mse"],
            out / "lambda_grid.png",
            x="lambda",
            title="TV: training MSE vs lambda",
            ylabel="MSE",
        )
    with torch.no_grad():
        model.eval()
        idx = slice(0, 4)
        outputs = {kind: model(data.test_noisy[idx].to(device)).cpu()}
    plot_examples(data.test_clean[idx], data.test_noisy[idx], outputs, out / "examples.png")


def _test_data(ckpt: dict) -> tuple[torch.Tensor, torch.Tensor]:
    info = ckpt["data"]
    data = make_dataset(info["data_seed"], info["n_train"], info["n_test"])
    return data.test_clean, data.test_noisy


def _cmd_eval(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, config, ckpt = load_checkpoint(args.checkpoint, device)
    clean, noisy = _test_data(ckpt)
    mse, unsolved = evaluate(model, clean, noisy, batch_size=args.batch_size, device=device)
    result = {"test_mse": mse, "n": len(clean), "model": config.kind, "unsolved": unsolved}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{config.kind}: test MSE {mse:.3f} on {len(clean)} signals ({unsolved} unsolved)")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    rows, outputs, clean, noisy = [], {}, None, None
    for path in args.checkpoint:
        model, config, ckpt = load_checkpoint(path, device)
        clean, noisy = _test_data(ckpt)
        mse, unsolved = evaluate(model, clean, noisy, device=device)
        rows.append(
            {"model": config.kind, "checkpoint": str(path), "test_mse": mse, "unsolved": unsolved}
        )
        with torch.no_grad():
            outputs[config.kind] = model(noisy[: args.examples].to(device)).cpu()
    print(f"{'model':<12}{'test MSE':>10}")
    for row in rows:
        print(f"{row['model']:<12}{row['test_mse']:>10.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    if can_plot():
        plot_examples(clean[: args.examples], noisy[: args.examples], outputs, out / "examples.png")
    print(json.dumps({"results": rows}))
    return 0
