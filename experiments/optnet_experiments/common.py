"""What the experiments share: data folders, seeding, devices, progress bars, JSON lines, plots,
the one checkpoint format and the one training loop.

The benchmarks package imports ``DTYPES``, ``JsonLines``, ``progress``, ``resolve_device``,
``save_figure`` and ``data_dir`` from here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger("optnet")

# The dtypes a command line can name (--dtype float64, ...).
DTYPES = {"float64": torch.float64, "float32": torch.float32}

# Data folders: a command's --data option, else $OPTNET_DATA/<name>, else ../shared/data/<name>.
DATA_ENV = "OPTNET_DATA"
DEFAULT_DATA_ROOT = Path("../shared/data")


class ConfigError(ValueError):
    """A request that cannot be carried out as given (a bad option, a missing device, a file
    of the wrong kind); the commands print its message and exit with status 2."""


def data_dir(name: str, override: str | Path | None = None) -> Path:
    """The folder of the data set ``name``.

    ``override`` (a command's ``--data`` option: the data set's own folder) wins; else
    ``$OPTNET_DATA/name`` when the environment variable ``OPTNET_DATA`` (a root folder) is set
    and not empty; else ``../shared/data/name``, relative to the current directory.

    Example:
        >>> data_dir("sudoku4")            # ../shared/data/sudoku4 without OPTNET_DATA
    """
    if override is not None:
        return Path(override)
    root = os.environ.get(DATA_ENV)
    return (Path(root) if root else DEFAULT_DATA_ROOT) / name


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``; raises ``ConfigError`` for "cuda" without a CUDA device."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA device is available")
    return torch.device(name)


def progress(iterable: Iterable, *, desc: str, total: int | None = None) -> Iterator:
    """A tqdm progress bar on stderr (silent when stderr is not a terminal, e.g. in CI)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # a bare environment (the GPU scripts): no bar
        return iter(iterable)
    disable = not sys.stderr.isatty()
    return iter(tqdm(iterable, desc=desc, total=total, leave=False, disable=disable))


class JsonLines:
    """Writer of one JSON object per line; the file is emptied when the writer is made."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------ plots


def can_plot() -> bool:
    """False (with a warning) where matplotlib is missing: runs still train and log."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logger.warning("matplotlib is not installed: skipping the plots")
        return False
    return True


def plot_curves(
    records: list[dict[str, Any]],
    keys: list[str],
    path: Path,
    *,
    title: str,
    ylabel: str,
    x: str = "epoch",
    logy: bool = False,
    labels: dict[str, str] | None = None,
) -> Path:
    """Plot ``record[key]`` against ``record[x]`` for each key; save a PNG.

    ``labels`` maps keys to legend names (default: the key). A log axis is labelled with plain
    numbers (60, 70, 80, not 6x10^1), minor ticks too when it spans less than two decades;
    an ``epoch`` axis has integer ticks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    markers = "os^vD"  # one marker per curve, so overlapping curves stay apart
    for i, key in enumerate(keys):
        points = [(r[x], r[key]) for r in records if r.get(key) is not None]
        if points:
            name = (labels or {}).get(key, key)
            ax.plot(*zip(*points), marker=markers[i % len(markers)], markersize=4, label=name)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
        plain_log_ticks(ax)
    if x == "epoch":
        integer_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, dpi=120)


def integer_ticks(axis) -> None:
    """Ticks of a matplotlib axis at integers only (epochs)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def plain_log_ticks(ax) -> None:
    """Label the log-scale y axis of ``ax`` with plain numbers (``%g``); label the minor ticks
    too (2..9 times a power of ten) when the axis spans less than two decades, where the major
    ticks alone would leave one label or none."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.yaxis
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    low, high = sorted(ax.get_ylim())
    if low > 0 and high / low < 100:
        axis.set_minor_locator(LogLocator(subs=(2, 3, 4, 5, 6, 7, 8, 9)))
        axis.set_minor_formatter(plain)
    else:
        axis.set_minor_formatter(NullFormatter())


def save_figure(fig, path: Path, *, dpi: int) -> Path:
    """Lay out a matplotlib figure, save it as ``path`` (making its folder) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ checkpoints

CHECKPOINT_FORMAT = "optnet-experiments/1"


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a model: its experiment, its kind, the hyperparameters of its builder,
    and the dtype it computes in (its QP's, for the QP models).

    ``hparams`` and ``metadata`` hold only what ``torch.load(weights_only=True)`` reads back:
    str, int, float, bool, None, lists and dicts of them.
    """

    experiment: str
    kind: str
    hparams: dict[str, Any]
    dtype: str


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file's contents: the model's spec, its weights and free-form metadata
    (the training loop writes ``epoch``, ``metrics`` and ``history``)."""

    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: Path | str, model: nn.Module, spec: ModelSpec, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights (copied to the CPU), ``spec`` and ``metadata`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "experiment": spec.experiment,
        "kind": spec.kind,
        "hparams": dict(spec.hparams),
        "dtype": spec.dtype,
        "state_dict": state,
        "metadata": dict(metadata or {}),
    }
    # Write then rename: a run killed by a time limit never leaves half a checkpoint.
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)
    return path


def read_checkpoint(path: Path | str, *, experiment: str | None = None) -> Checkpoint:
    """Read a ``save_checkpoint`` file (tensors on the CPU).

    Raises ``ConfigError`` when the file is not such a checkpoint, or is one of another
    experiment than ``experiment`` (when given).
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a checkpoint written by an `optnet` experiment")
    if experiment is not None and payload["experiment"] != experiment:
        raise ConfigError(
            f"{path} is a checkpoint of the {payload['experiment']} experiment, not of {experiment}"
        )
    spec = ModelSpec(payload["experiment"], payload["kind"], payload["hparams"], payload["dtype"])
    return Checkpoint(spec, payload["state_dict"], payload["metadata"])


def load_checkpoint(
    path: Path | str,
    build: Callable[[ModelSpec], nn.Module],
    *,
    experiment: str,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model saved in ``path``: ``build(spec)``, then its weights.

    Returns ``(model on device in eval mode, checkpoint)``.
    """
    checkpoint = read_checkpoint(path, experiment=experiment)
    model = build(checkpoint.spec)
    model.load_state_dict(checkpoint.state_dict)
    return model.to(device).eval(), checkpoint


# ---------------------------------------------------------------------------- training loop


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
