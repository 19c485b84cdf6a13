"""Training and evaluation of the Sudoku models, single-process or data-parallel (DDP).

The loss is the paper's: mean squared error between the model's board and the one-hot
solution. The train error of an epoch is measured on the training batches as they are seen
(the model changes during the epoch), the test error after the epoch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..common import (
    DTYPES,
    ConfigError,
    JsonLines,
    can_plot,
    fit,
    plot_curves,
    resolve_device,
    seed_everything,
)
from ..distributed import (
    DistributedContext,
    init_distributed,
    launched_by_torchrun,
    shutdown_distributed,
)
from .boards import paper_correct, strict_correct
from .data import SudokuData, load_sudoku, split
from .models import build_model, default_hparams, model_dtype, model_spec

logger = logging.getLogger("optnet")

# The metric that picks the best epoch's checkpoint (RunPaths.best_checkpoint). The paper's
# split has no validation part: it is the test split's, so the best checkpoint's test error is
# an optimistic estimate; the reported numbers are the last epoch's (RunPaths.checkpoint).
MONITOR = "test_strict_error"


@dataclass
class TrainConfig:
    """Everything one training run needs (picklable, so spawned processes receive it)."""

    model: str = "optnet"
    hparams: dict[str, Any] = field(default_factory=dict)  # over default_hparams(model, board)
    epochs: int = 20
    batch_size: int = 150  # the global batch, split across processes when distributed
    lr: float = 1e-3
    optimizer: str = "adam"
    seed: int = 0
    device: str = "cpu"
    data: str | None = None  # the data set's folder; None: data_dir("sudoku4")
    limit: int | None = None
    out: str = "runs/sudoku"
    distributed: bool = False
    threads: int | None = None  # CPU threads per process; None keeps torch's setting
    show_progress: bool = True

    def full_hparams(self, board: int) -> dict[str, Any]:
        hparams = default_hparams(self.model, board)
        unknown = set(self.hparams) - set(hparams)
        if unknown:
            raise ConfigError(f"unknown hyperparameters for {self.model}: {sorted(unknown)}")
        return {**hparams, **self.hparams}


@dataclass(frozen=True)
class RunPaths:
    """The files a run writes into ``--out``: the JSON lines log, the last epoch's and the best
    epoch's checkpoints, and the error plot."""

    log: Path
    checkpoint: Path
    best_checkpoint: Path
    plot: Path

    @classmethod
    def for_run(cls, out: str | Path, model: str) -> RunPaths:
        out = Path(out)
        return cls(
            out / f"{model}.jsonl", out / f"{model}.pt", out / f"{model}.best.pt",
            out / f"{model}_error.png",
        )  # fmt: skip


def _metric_sums(
    boards: torch.Tensor, puzzles: torch.Tensor, solutions: torch.Tensor
) -> torch.Tensor:
    """float64 ``[squared error sum, strict wrong, paper wrong, count]`` of one batch."""
    boards = boards.detach()
    squared = (boards - solutions).pow(2).flatten(1).mean(1).sum()
    strict_wrong = (~strict_correct(boards, puzzles)).sum()
    paper_wrong = (~paper_correct(boards)).sum()
    count = torch.tensor(boards.shape[0], dtype=torch.float64, device=boards.device)
    return torch.stack([squared.double(), strict_wrong.double(), paper_wrong.double(), count])


def _metrics_from_sums(sums: torch.Tensor, prefix: str) -> dict[str, float]:
    loss, strict_wrong, paper_wrong, count = sums.tolist()
    count = max(count, 1.0)
    return {
        f"{prefix}_loss": loss / count,
        f"{prefix}_strict_error": strict_wrong / count,
        f"{prefix}_paper_error": paper_wrong / count,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: SudokuData,
    *,
    batch_size: int = 150,
    ctx: DistributedContext | None = None,
) -> dict[str, float]:
    """Mean MSE loss, strict and paper error of ``model`` on ``data`` (already on its device).

    Distributed: each rank evaluates its shard of the puzzles and the counts are summed.
    Returns ``{"loss", "strict_error", "paper_error", "n"}``.
    """
    was_training = model.training
    model.eval()
    index = torch.arange(len(data))
    if ctx is not None:
        index = ctx.shard(index)
    sums = torch.zeros(4, dtype=torch.float64, device=data.features.device)
    for chunk in index.split(batch_size):
        puzzles, solutions = data.features[chunk], data.labels[chunk]
        sums += _metric_sums(model(puzzles), puzzles, solutions)
    if ctx is not None:
        sums = ctx.all_reduce_sum(sums)
    model.train(was_training)
    metrics = _metrics_from_sums(sums, "eval")
    return {
        "loss": metrics["eval_loss"],
        "strict_error": metrics["eval_strict_error"],
        "paper_error": metrics["eval_paper_error"],
        "n": int(sums[3].item()),
    }


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    puzzles: torch.Tensor,
    solutions: torch.Tensor,
    *,
    global_count: int,
    world_size: int = 1,
) -> torch.Tensor:
    """One optimizer step on this process's shard of a global batch; returns the boards.

    The local loss is scaled so that DDP's gradient average over ``world_size`` processes
    equals the gradient of the mean loss over the ``global_count`` puzzles of the global
    batch, even when the shards differ in size.
    """
    boards = model(puzzles)
    per_puzzle = (boards - solutions).pow(2).flatten(1).mean(1)
    loss = per_puzzle.sum() * (world_size / global_count)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return boards


def _make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ConfigError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _context(config: TrainConfig) -> DistributedContext:
    if config.distributed:
        if not launched_by_torchrun():
            raise ConfigError(
                "distributed training needs a process group: run under torchrun, or through "
                "`optnet sudoku train --distributed --nproc N`, which starts the processes"
            )
        return init_distributed(config.device)
    return DistributedContext(0, 1, resolve_device(config.device))


def train(config: TrainConfig) -> list[dict[str, Any]]:
    """Train one Sudoku model; rank 0 writes the JSON lines log, the checkpoints (last and best
    epoch, ``RunPaths``) and the error plot.

    Returns the per-epoch records (on every rank; the metrics are global).
    """
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    ctx = _context(config)
    try:
        return _train(config, ctx)
    finally:
        shutdown_distributed(ctx)


def _train(config: TrainConfig, ctx: DistributedContext) -> list[dict[str, Any]]:
    data = load_sudoku(config.data, limit=config.limit)
    hparams = config.full_hparams(data.board)
    dtype_name = model_dtype(config.model, hparams)
    dtype = DTYPES[dtype_name]
    data = SudokuData(data.features.to(dtype), data.labels.to(dtype)).to(ctx.device)
    train_set, test_set = split(data)

    seed_everything(config.seed)
    model = build_model(config.model, hparams).to(ctx.device)
    trained = model
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=device_ids)
    optimizer = _make_optimizer(config.optimizer, trained.parameters(), config.lr)

    paths = RunPaths.for_run(config.out, config.model)
    n_batches = -(-len(train_set) // config.batch_size)
    order_rng = torch.Generator().manual_seed(config.seed)
    side = data.features.shape[-1]
    where = f"{ctx.device.type} x{ctx.world_size}"
    title = f"Sudoku {side}x{side}: {config.model} ({dtype_name}, {where})"
    plot = ctx.is_main and can_plot()
    if ctx.is_main:
        logger.info(
            "sudoku: training %s (%s) on %d puzzles, testing on %d, %s x%d, batch %d",
            config.model, dtype_name, len(train_set), len(test_set),
            ctx.device.type, ctx.world_size, config.batch_size,
        )  # fmt: skip

    def run_epoch(epoch: int, wrap) -> dict[str, Any]:
        # Same permutation on every rank: each takes its shard of the same global batches.
        order = torch.randperm(len(train_set), generator=order_rng)
        trained.train()
        sums = torch.zeros(4, dtype=torch.float64, device=ctx.device)
        _sync(ctx.device)
        start = time.perf_counter()
        for batch in wrap(order.split(config.batch_size), total=n_batches):
            if len(batch) < ctx.world_size:
                continue  # a ragged last batch too small to give every rank a puzzle
            local = ctx.shard(batch).to(ctx.device)
            puzzles, solutions = train_set.features[local], train_set.labels[local]
            boards = train_step(
                trained, optimizer, puzzles, solutions,
                global_count=len(batch), world_size=ctx.world_size,
            )  # fmt: skip
            sums += _metric_sums(boards, puzzles, solutions)
        _sync(ctx.device)
        epoch_time = time.perf_counter() - start
        sums = ctx.all_reduce_sum(sums)
        start = time.perf_counter()
        test = evaluate(model, test_set, batch_size=config.batch_size, ctx=ctx)
        return {
            "model": config.model,
            "dtype": dtype_name,
            "device": ctx.device.type,
            "world_size": ctx.world_size,
            **_metrics_from_sums(sums, "train"),
            "test_loss": test["loss"],
            "test_strict_error": test["strict_error"],
            "test_paper_error": test["paper_error"],
            "epoch_time_s": epoch_time,
            "eval_time_s": time.perf_counter() - start,
        }

    records: list[dict[str, Any]] = []

    def on_record(record: dict[str, Any]) -> None:
        records.append(record)
        if plot:
            keys = ["train_strict_error", "test_strict_error", "test_paper_error"]
            plot_curves(records, keys, paths.plot, title=title, ylabel="error (fraction of boards)")
        logger.info(
            "epoch %d: train loss %.4f strict err %.4f | test loss %.4f strict err %.4f "
            "paper err %.4f | %.1f s",
            record["epoch"], record["train_loss"], record["train_strict_error"],
            record["test_loss"], record["test_strict_error"], record["test_paper_error"],
            record["epoch_time_s"],
        )  # fmt: skip

    main = ctx.is_main  # only rank 0 writes
    result = fit(
        run_epoch,
        epochs=config.epochs,
        log=JsonLines(paths.log) if main else None,
        model=model,
        spec=model_spec(config.model, hparams),
        checkpoint=paths.checkpoint if main else None,
        best_checkpoint=paths.best_checkpoint if main else None,
        monitor=MONITOR,
        on_record=on_record if main else None,
        show_progress=main and config.show_progress,
    )
    return result.records
