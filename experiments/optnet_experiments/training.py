"""The experiments' training plumbing: seeding, the learning-rate schedule and the epoch loop
(logs, last and best checkpoints, time limit)."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoints import ModelSpec, save_checkpoint
from .errors import ConfigError
from .json_lines import JsonLines
from .progress import progress

logger = logging.getLogger("optnet")

LR_SCHEDULES = ("constant", "cosine")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class LearningRate:
    """The learning rate of each step: constant, or a cosine from ``lr`` to 0 over the run.

    The run's progress is the larger of the fraction of ``total_steps`` done and the fraction
    of ``time_limit`` seconds elapsed, so a run cut by its time limit still ends its decay.
    Raises ``ConfigError`` for a schedule not in ``LR_SCHEDULES``.
    """

    def __init__(self, schedule: str, lr: float, total_steps: int, time_limit: float | None):
        if schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
        self.schedule, self.lr = schedule, lr
        self.total_steps, self.time_limit = max(total_steps, 1), time_limit

    def at(self, step: int, elapsed: float) -> float:
        """The learning rate of step ``step`` (from 0), ``elapsed`` seconds into the run."""
        if self.schedule == "constant":
            return self.lr
        done = step / self.total_steps
        if self.time_limit is not None and self.time_limit > 0:
            done = max(done, elapsed / self.time_limit)
        return 0.5 * self.lr * (1.0 + math.cos(math.pi * min(done, 1.0)))


@dataclass
class FitResult:
    """What ``fit`` returns: every record, and the best epoch by the monitored metric."""

    records: list[dict[str, Any]]
    best_epoch: int | None = None
    best_value: float | None = None
    time_limit_reached: bool = False


Wrap = Callable[..., Iterator]


def fit(
    run_epoch: Callable[[int, Wrap], dict[str, Any]],
    *,
    epochs: int,
    first_epoch: int = 1,
    log: JsonLines | None = None,
    model: nn.Module | None = None,
    spec: ModelSpec | None = None,
    checkpoint: Path | None = None,
    best_checkpoint: Path | None = None,
    monitor: str | None = None,
    mode: str = "min",
    metadata: dict[str, Any] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    time_limit: float | None = None,
    start: float | None = None,
    desc: str = "epoch",
    show_progress: bool = True,
) -> FitResult:
    """The experiments' epoch loop.

    For each epoch from ``first_epoch`` to ``epochs``, ``run_epoch(epoch, wrap)`` trains (epoch
    0, when asked for, conventionally only evaluates the initial model) and returns the
    epoch's metrics; ``wrap(batches, total=None)`` puts its batch loop under a progress bar.
    The loop then adds ``epoch`` and ``seconds`` (since ``start``, default: the call) to the
    record and, in this order: appends it to ``log``; saves ``model`` with ``spec`` as
    ``checkpoint`` (every epoch: the last epoch's weights); when ``record[monitor]`` is the
    best so far (lowest for ``mode="min"``, highest for ``"max"``; NaN never is), saves it
    as ``best_checkpoint`` too; calls ``on_record(record)``. Checkpoint metadata:
    ``{**metadata, "epoch", "metrics": record, "history": records so far}``.

    An existing ``best_checkpoint`` file is deleted first (it belongs to an earlier run).
    ``time_limit`` (seconds since ``start``) ends the loop after the first epoch >= 1 that
    passes it. Raises ``ValueError`` for an unknown ``mode`` or a record without ``monitor``.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if (checkpoint is not None or best_checkpoint is not None) and (model is None or spec is None):
        raise ValueError("saving checkpoints needs the model and its spec")
    if best_checkpoint is not None and monitor is None:
        raise ValueError("best_checkpoint needs a monitored metric (monitor=)")
    start = time.perf_counter() if start is None else start
    if best_checkpoint is not None:
        Path(best_checkpoint).unlink(missing_ok=True)  # never a stale file of an earlier run
    result = FitResult([])
    for epoch in range(first_epoch, epochs + 1):

        def wrap(batches, total=None, _epoch=epoch):
            if not show_progress:
                return iter(batches)
            return progress(batches, desc=f"{desc} {_epoch}/{epochs}", total=total)

        record = {"epoch": epoch, **run_epoch(epoch, wrap)}
        record.setdefault("seconds", time.perf_counter() - start)
        result.records.append(record)
        if log is not None:
            log.write(record)
        meta = {**(metadata or {}), "epoch": epoch, "metrics": record}
        meta["history"] = list(result.records)
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, spec, meta)
        if monitor is not None:
            if monitor not in record:
                raise ValueError(f"the epoch's record has no {monitor!r}: {sorted(record)}")
            value = float(record[monitor])
            if _improves(value, result.best_value, mode):
                result.best_epoch, result.best_value = epoch, value
                if best_checkpoint is not None:
                    save_checkpoint(best_checkpoint, model, spec, meta)
        if on_record is not None:
            on_record(record)
        if time_limit is not None and epoch >= 1 and time.perf_counter() - start > time_limit:
            if epoch < epochs:
                logger.info("time limit of %g s reached after epoch %d", time_limit, epoch)
                result.time_limit_reached = True
            break
    return result


def _improves(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best if mode == "min" else value > best
