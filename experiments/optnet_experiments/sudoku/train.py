"""Training and evaluation of the Sudoku models, single-process or data-parallel (DDP).

The loss is the paper's: mean squared error between the model's board and the one-hot
solution. The train error of an epoch is measured on the training batches as they are seen
(the model changes during the epoch), the validation and test errors after the epoch. With a
validation split (``val_fraction > 0``) the best epoch's checkpoint is picked on it; without
one (the paper's 4x4 setup) on the test split.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import Checkpoint
from ..data_paths import data_dir
from ..devices import DTYPES, resolve_device
from ..distributed import (
    DistributedContext,
    init_distributed,
    launched_by_torchrun,
    shutdown_distributed,
)
from ..errors import ConfigError
from ..json_lines import JsonLines
from ..plotting import can_plot
from ..training import LearningRate, fit, seed_everything
from .boards import paper_correct, strict_correct
from .data import DATA_NAMES, SudokuData, load_sudoku, split_train_val_test
from .models import (
    INITS,
    build_model,
    default_hparams,
    flat_count,
    load_model,
    model_dtype,
    model_spec,
)
from .plots import plot_errors

logger = logging.getLogger("optnet")

# The metric that picks the best epoch's checkpoint (RunPaths.best_checkpoint): the validation
# split's when there is one; else (the paper's split has no validation part) the test split's,
# and then the best checkpoint's test error is an optimistic estimate.
MONITOR = "val_strict_error"
MONITOR_WITHOUT_VAL = "test_strict_error"


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
    data: str | None = None  # the data set's folder; None: data_dir(DATA_NAMES[board])
    board: int | None = None  # None: the data's; else the data must have this box size
    limit: int | None = None
    val_fraction: float = 0.0  # of all puzzles, just before the test split; 0: no validation
    init: str = "rand"  # OptNet's A: one of models.INITS
    eval_initial: bool = False  # log an epoch 0: the initial model's errors, no training
    lr_schedule: str = "constant"  # or "cosine": to 0 over the epochs or the time limit
    time_limit: float | None = None  # seconds: no batch starts later, the last epoch is logged
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


def select_split(data: SudokuData, split: str, val_fraction: float | None) -> SudokuData:
    """``data`` itself (``split="all"``), or its ``"val"`` or ``"test"`` split (the validation
    split is ``val_fraction`` of the puzzles, just before the test split)."""
    if split == "all":
        return data
    if split == "val" and not val_fraction:
        raise ConfigError(
            "--split val needs a validation split: this checkpoint was trained without one; "
            "pass --val-fraction"
        )
    _, val, test = split_train_val_test(data, val_fraction=val_fraction or 0.0)
    return val if split == "val" else test


@dataclass(frozen=True)
class CheckpointEvaluation:
    """What ``evaluate_checkpoint`` measured, and on what."""

    metrics: dict[str, float]  # evaluate()'s: loss, strict_error, paper_error, n
    checkpoint: Checkpoint
    folder: Path  # the data set's


def evaluate_checkpoint(
    path: Path | str,
    *,
    data: Path | str | None = None,
    split: str = "all",
    val_fraction: float | None = None,
    limit: int | None = None,
    device: str = "cpu",
    batch_size: int = 50,
) -> CheckpointEvaluation:
    """Evaluate the checkpoint ``path`` on the data set ``data`` (default: the default folder
    of the checkpoint's board) or one of its splits; ``val_fraction`` None takes the one the
    checkpoint was trained with. Raises ``ConfigError`` when the boards do not match."""
    torch_device = resolve_device(device)
    model, checkpoint = load_model(path, device=torch_device)
    board = checkpoint.spec.hparams["board"]
    folder = data_dir(DATA_NAMES[board], data)
    puzzles = load_sudoku(folder, limit=limit)
    if puzzles.board != board:
        side, data_side = board * board, puzzles.features.shape[-1]
        raise ConfigError(
            f"{path} is a {side}x{side} model but {folder} has {data_side}x{data_side} boards"
        )
    if val_fraction is None:
        val_fraction = checkpoint.metadata.get("val_fraction")
    puzzles = select_split(puzzles, split, val_fraction)
    dtype = DTYPES[checkpoint.spec.dtype]
    puzzles = SudokuData(puzzles.features.to(dtype), puzzles.labels.to(dtype)).to(torch_device)
    return CheckpointEvaluation(evaluate(model, puzzles, batch_size=batch_size), checkpoint, folder)


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


def load_training_data(config: TrainConfig) -> SudokuData:
    """The run's data set: ``config.data`` (default: the folder of ``config.board``'s data,
    ``sudoku4`` without a board), checked against ``config.board``."""
    default_name = DATA_NAMES.get(config.board or 2, DATA_NAMES[2])
    data = load_sudoku(config.data if config.data else None, limit=config.limit, name=default_name)
    if config.board is not None and data.board != config.board:
        side = data.features.shape[-1]
        raise ConfigError(
            f"--board {config.board} asks for {config.board**2}x{config.board**2} boards but "
            f"the data set has {side}x{side} boards"
        )
    return data


def _train(config: TrainConfig, ctx: DistributedContext) -> list[dict[str, Any]]:
    run_start = time.perf_counter()
    if config.init not in INITS:
        raise ConfigError(f"init must be one of {INITS}, got {config.init!r}")
    if config.init != "rand" and config.model != "optnet":
        raise ConfigError("--init applies to optnet only")
    data = load_training_data(config)
    hparams = config.full_hparams(data.board)
    dtype_name = model_dtype(config.model, hparams)
    dtype = DTYPES[dtype_name]
    data = SudokuData(data.features.to(dtype), data.labels.to(dtype)).to(ctx.device)
    train_set, val_set, test_set = split_train_val_test(data, val_fraction=config.val_fraction)
    monitor = MONITOR if val_set is not None else MONITOR_WITHOUT_VAL
    if config.init == "solutions" and "n_eq" not in config.hparams:
        # The number of rows is learned too: the directions in which no solution varies.
        hparams["n_eq"] = flat_count(train_set.labels.reshape(len(train_set), -1))
        if ctx.is_main:
            logger.info(
                "sudoku: the %d training solutions do not vary in %d directions: n_eq = %d",
                len(train_set), hparams["n_eq"], hparams["n_eq"],
            )  # fmt: skip

    seed_everything(config.seed)
    model = build_model(config.model, hparams).to(ctx.device)
    if config.init != "rand":
        model.initialize(config.init, train_set.labels)
    trained = model
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=device_ids)
    optimizer = _make_optimizer(config.optimizer, trained.parameters(), config.lr)

    paths = RunPaths.for_run(config.out, config.model)
    n_batches = -(-len(train_set) // config.batch_size)
    schedule = LearningRate(
        config.lr_schedule, config.lr, n_batches * config.epochs, config.time_limit
    )
    steps = 0
    order_rng = torch.Generator().manual_seed(config.seed)
    side = data.features.shape[-1]
    where = f"{ctx.device.type} x{ctx.world_size}"
    title = f"Sudoku {side}x{side}: {config.model} ({dtype_name}, {where})"
    plot = ctx.is_main and can_plot()
    if ctx.is_main:
        logger.info(
            "sudoku: training %s (%s, init %s) on %d puzzles, validating on %d, testing on %d, "
            "%s x%d, batch %d",
            config.model, dtype_name, config.init, len(train_set),
            0 if val_set is None else len(val_set), len(test_set),
            ctx.device.type, ctx.world_size, config.batch_size,
        )  # fmt: skip

    def out_of_time() -> bool:
        # Distributed, the ranks stop together when any one is late (same number of steps).
        if config.time_limit is None:
            return False
        late = time.perf_counter() - run_start > config.time_limit
        if not ctx.active:
            return late
        return ctx.all_reduce_sum(torch.tensor([float(late)], device=ctx.device)).item() > 0

    def evaluations() -> dict[str, Any]:
        start = time.perf_counter()
        record: dict[str, Any] = {}
        for name, part in (("val", val_set), ("test", test_set)):
            if part is None:
                continue
            metrics = evaluate(model, part, batch_size=config.batch_size, ctx=ctx)
            record.update({f"{name}_{key}": metrics[key] for key in METRICS})
        record["eval_time_s"] = time.perf_counter() - start
        return record

    def run_epoch(epoch: int, wrap) -> dict[str, Any]:
        nonlocal steps
        common = {
            "model": config.model, "dtype": dtype_name, "device": ctx.device.type,
            "world_size": ctx.world_size,
        }  # fmt: skip
        if epoch == 0:  # the initial model, before any step
            return {**common, "batches": 0, "epoch_time_s": 0.0, **evaluations()}
        # Same permutation on every rank: each takes its shard of the same global batches.
        order = torch.randperm(len(train_set), generator=order_rng)
        trained.train()
        sums = torch.zeros(4, dtype=torch.float64, device=ctx.device)
        _sync(ctx.device)
        start = time.perf_counter()
        batches = 0
        for batch in wrap(order.split(config.batch_size), total=n_batches):
            if out_of_time():
                break
            if len(batch) < ctx.world_size:
                continue  # a ragged last batch too small to give every rank a puzzle
            for group in optimizer.param_groups:
                group["lr"] = schedule.at(steps, time.perf_counter() - run_start)
            local = ctx.shard(batch).to(ctx.device)
            puzzles, solutions = train_set.features[local], train_set.labels[local]
            boards = train_step(
                trained, optimizer, puzzles, solutions,
                global_count=len(batch), world_size=ctx.world_size,
            )  # fmt: skip
            sums += _metric_sums(boards, puzzles, solutions)
            steps += 1
            batches += 1
        _sync(ctx.device)
        epoch_time = time.perf_counter() - start
        sums = ctx.all_reduce_sum(sums)
        train_metrics = _metrics_from_sums(sums, "train")
        if batches == 0:  # the time limit came before the first batch: nothing was measured
            train_metrics = dict.fromkeys(train_metrics)
        return {
            **common,
            **train_metrics,
            "batches": batches,
            "lr": optimizer.param_groups[0]["lr"],
            **evaluations(),
            "epoch_time_s": epoch_time,
        }

    records: list[dict[str, Any]] = []

    def on_record(record: dict[str, Any]) -> None:
        records.append(record)
        if plot:
            plot_errors(records, paths.plot, title=title)
        logger.info(
            "epoch %d: train loss %s strict err %s | val strict err %s | test loss %.4f "
            "strict err %.4f paper err %.4f | %.1f s",
            record["epoch"], _fmt(record.get("train_loss")),
            _fmt(record.get("train_strict_error")), _fmt(record.get("val_strict_error")),
            record["test_loss"], record["test_strict_error"], record["test_paper_error"],
            record["epoch_time_s"],
        )  # fmt: skip

    main = ctx.is_main  # only rank 0 writes
    result = fit(
        run_epoch,
        epochs=config.epochs,
        first_epoch=0 if config.eval_initial else 1,
        log=JsonLines(paths.log) if main else None,
        model=model,
        spec=model_spec(config.model, hparams),
        checkpoint=paths.checkpoint if main else None,
        best_checkpoint=paths.best_checkpoint if main else None,
        monitor=monitor,
        metadata={
            "init": config.init,
            "val_fraction": config.val_fraction,
            "lr": config.lr,
            "lr_schedule": config.lr_schedule,
            "batch_size": config.batch_size,
            "seed": config.seed,
            "monitor": monitor,
        },  # fmt: skip
        on_record=on_record if main else None,
        time_limit=config.time_limit,
        start=run_start,
        show_progress=main and config.show_progress,
    )
    return result.records


METRICS = ("loss", "strict_error", "paper_error")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
