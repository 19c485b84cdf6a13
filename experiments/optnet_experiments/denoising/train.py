"""Training and evaluation of the denoising models, and the TV baseline's lambda grid.

``train(TrainConfig)`` is one whole run (what ``optnet denoise train`` does): the data set,
the grid search (tv, optnet-tv, optnet-qp-tv without ``lam``), then the epochs, writing into
``out``: ``history.jsonl`` (grid records, then one record per epoch, epoch 0 being the initial
model), ``model.pt`` (the last epoch's), ``best.pt`` (the epoch with the lowest test MSE) and
the plots.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoints import Checkpoint
from ..devices import DTYPES, resolve_device
from ..errors import ConfigError
from ..json_lines import JsonLines
from ..plotting import can_plot
from ..progress import progress
from ..training import LearningRate, fit, seed_everything
from .data import DenoisingData, make_dataset
from .models import (
    DEFAULT_CENTER,
    QP_PARAMETERS,
    ModelConfig,
    QPDenoiser,
    TVDenoiser,
    build_model,
    difference_matrix,
    model_spec,
)
from .plots import plot_run

logger = logging.getLogger("optnet")

_CPU = torch.device("cpu")
DEFAULT_LR = {"fc": 1e-3, "optnet": 1e-2, "optnet-tv": 1e-4, "optnet-qp-tv": 2e-4}
# The kinds that start at the TV solution: without --lam they take the grid search's lambda.
TV_STARTED = ("tv", "optnet-tv", "optnet-qp-tv")
# The metric that picks best.pt. There is no validation split (the paper's setting): this is
# the test set's, so best.pt's test MSE is an optimistic estimate; model.pt is the last epoch.
MONITOR = "test_mse"


def batches(count: int, batch_size: int, generator: torch.Generator | None = None):
    """Index batches over ``count`` items, in order or shuffled by ``generator``."""
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
    for idx in progress(batches(len(clean), batch_size), desc=desc):
        out = model(noisy[idx].to(device))
        total += float((out - clean[idx].to(device)).pow(2).sum())
        unsolved += getattr(model, "last_unsolved", 0)
    return total / clean.numel(), unsolved


def lambda_grid(start: float, stop: float, step: float) -> list[float]:
    """``start, start + step, ..., stop`` (inclusive)."""
    count = int(round((stop - start) / step)) + 1
    return [start + i * step for i in range(count)]


def tv_grid_search(
    clean: torch.Tensor,
    noisy: torch.Tensor,
    lambdas: list[float],
    *,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 100,
    device: torch.device = _CPU,
    on_result: Callable[[dict[str, Any]], None] | None = None,
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


def parameter_moves(model: nn.Module, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """``moved_<name>``: the Frobenius norm of each learned parameter's change since ``start``."""
    return {
        f"moved_{name}": float((value.detach() - start[name]).norm())
        for name, value in model.named_parameters()
        if name in start
    }


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


@dataclass(frozen=True)
class TrainConfig:
    """One ``optnet denoise train`` run (the CLI's options)."""

    model: str
    out: str
    epochs: int = 10
    seed: int = 0  # model init and batch order
    data_seed: int = 0  # the data set (share it between the models!)
    n_train: int = 9000
    n_test: int = 1000
    batch_size: int = 100
    lr: float | None = None  # None: DEFAULT_LR[model]
    l1: float | None = None  # None: 0.1 for optnet, else 0
    lam: float | None = None  # tv/optnet-tv/optnet-qp-tv; None: grid search; optnet uses 1
    lambda_grid: tuple[float, float, float] = (0.0, 100.0, 1.0)
    grid_signals: int | None = None  # None: all training signals
    dtype: str = "float64"  # of the QP models
    max_iter: int = 50
    time_limit: float | None = None
    device: str = "cpu"
    lr_schedule: str = "constant"  # or "cosine": to 0 over the epochs (or the time limit)
    learn: str = ",".join(QP_PARAMETERS)  # optnet-qp-tv: the learned groups
    center: float = DEFAULT_CENTER  # optnet-qp-tv: see QPDenoiser
    eps: float = 0.0  # optnet-qp-tv: the ridge of Q


@dataclass(frozen=True)
class RunPaths:
    """The files a run writes into its ``out`` folder."""

    log: Path
    checkpoint: Path
    best_checkpoint: Path

    @classmethod
    def for_run(cls, out: str | Path) -> RunPaths:
        out = Path(out)
        return cls(out / "history.jsonl", out / "model.pt", out / "best.pt")


@dataclass
class TrainResult:
    records: list[dict[str, Any]]  # one per epoch, from epoch 0 (the initial model)
    grid_records: list[dict[str, Any]] | None  # one per lambda of the grid search
    lam: float | None  # the TV weight used (the TV-started kinds) or 1 (optnet); None for fc
    best_epoch: int | None
    seconds: float
    paths: RunPaths


def train(
    config: TrainConfig, *, on_record: Callable[[dict[str, Any]], None] | None = None
) -> TrainResult:
    """One run; ``on_record`` sees each grid record and each epoch record as it is logged."""
    device = resolve_device(config.device)
    generator = seed_everything(config.seed)
    data = make_dataset(config.data_seed, config.n_train, config.n_test)
    paths = RunPaths.for_run(config.out)
    log = JsonLines(paths.log)
    start = time.perf_counter()

    def report(record: dict[str, Any]) -> None:
        if on_record is not None:
            on_record(record)

    lam = 1.0 if config.model == "optnet" else config.lam
    grid_records = None
    if config.model in TV_STARTED and lam is None:
        n_grid = config.grid_signals or len(data.train_clean)
        lam, grid_records = tv_grid_search(
            data.train_clean[:n_grid],
            data.train_noisy[:n_grid],
            lambda_grid(*config.lambda_grid),
            dtype=DTYPES[config.dtype],
            batch_size=config.batch_size,
            device=device,
            on_result=lambda r: (log.write(r), report(r)),
        )
        logger.info("best lambda %g on %d training signals", lam, n_grid)
    model_config = ModelConfig(
        config.model,
        length=data.train_clean.shape[-1],
        lam=1.0 if lam is None else lam,
        dtype=config.dtype,
        max_iter=config.max_iter,
        learn=config.learn,
        eps=config.eps,
        center=config.center,
    )
    model = build_model(model_config, seed=config.seed).to(device)
    trains = config.model != "tv"
    lr = config.lr if config.lr is not None else DEFAULT_LR.get(config.model, 0.0)  # tv: none
    n_batches = math.ceil(len(data.train_clean) / config.batch_size)
    schedule = LearningRate(config.lr_schedule, lr, n_batches * config.epochs, config.time_limit)
    if trains:
        if not any(True for _ in model.parameters()):
            raise ConfigError(f"--learn {config.learn!r} leaves {config.model} nothing to learn")
        l1 = config.l1 if config.l1 is not None else (0.1 if config.model == "optnet" else 0.0)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start_weights = {name: v.detach().clone() for name, v in model.named_parameters()}
    steps = [0]  # Adam steps taken so far

    def run_epoch(epoch: int, wrap) -> dict[str, Any]:
        train_mse, unsolved = None, 0
        if epoch == 0:  # the initial model; the TV baseline's train MSE is the grid's
            if grid_records is not None and not trains:
                train_mse = min(r["train_mse"] for r in grid_records)
        else:
            total = 0.0
            for idx in wrap(batches(len(data.train_clean), config.batch_size, generator)):
                for group in optimizer.param_groups:
                    group["lr"] = schedule.at(steps[0], time.perf_counter() - start)
                clean, noisy = data.train_clean[idx].to(device), data.train_noisy[idx].to(device)
                total += train_step(model, optimizer, clean, noisy, l1=l1) * len(idx)
                unsolved += getattr(model, "last_unsolved", 0)
                steps[0] += 1
            train_mse = total / len(data.train_clean)
        seconds = time.perf_counter() - start  # before this epoch's test pass
        test_mse, test_unsolved = evaluate(
            model, data.test_clean, data.test_noisy, batch_size=config.batch_size, device=device
        )
        unsolved += test_unsolved
        record = {"train_mse": train_mse, "test_mse": test_mse, "unsolved": unsolved}
        record["seconds"] = seconds
        if isinstance(model, TVDenoiser):
            record["D_l1"] = float(model.D.detach().abs().sum())
        if isinstance(model, QPDenoiser):
            record.update(parameter_moves(model, start_weights))
        if trains:
            record["lr"] = optimizer.param_groups[0]["lr"]
        return record

    data_info = {"data_seed": config.data_seed, "n_train": config.n_train, "n_test": config.n_test}
    result = fit(
        run_epoch,
        epochs=config.epochs if trains else 0,
        first_epoch=0,
        log=log,
        model=model,
        spec=model_spec(model_config),
        checkpoint=paths.checkpoint,
        best_checkpoint=paths.best_checkpoint,
        monitor=MONITOR,
        metadata={"data": data_info},
        on_record=report,
        time_limit=config.time_limit,
        start=start,
    )
    if can_plot():
        plot_run(
            Path(config.out), model, data, result.records, grid_records,
            lam if grid_records is not None else None, config.model, device,
        )  # fmt: skip
    return TrainResult(
        result.records, grid_records, lam, result.best_epoch, time.perf_counter() - start, paths
    )


def checkpoint_test_set(checkpoint: Checkpoint) -> tuple[torch.Tensor, torch.Tensor]:
    """The test set a checkpoint was evaluated on, regenerated from its metadata."""
    info = checkpoint.metadata["data"]
    data: DenoisingData = make_dataset(info["data_seed"], info["n_train"], info["n_test"])
    return data.test_clean, data.test_noisy
