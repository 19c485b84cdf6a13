"""Experiment plumbing: seeding, devices, progress bars, JSON lines, plots, checkpoints."""

from __future__ import annotations

import json
import logging
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# ../shared/data beside the repository: the default location of the shared data sets.
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
# The dtypes a command line can name (--dtype float64, ...).
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but no CUDA device is available")
    return torch.device(name)


def progress(iterable: Iterable, *, desc: str, total: int | None = None) -> Iterator:
    """A tqdm progress bar on stderr (silent when stderr is not a terminal and in CI)."""
    from tqdm.auto import tqdm

    disable = not sys.stderr.isatty()
    return iter(tqdm(iterable, desc=desc, total=total, leave=False, disable=disable))


class JsonLines:
    """Append-only writer of one JSON object per line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(
    records: list[dict[str, Any]],
    keys: list[str],
    path: Path,
    *,
    title: str,
    ylabel: str,
    x: str = "epoch",
    logy: bool = False,
) -> Path:
    """Plot ``record[key]`` against ``record[x]`` for each key; save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        points = [(r[x], r[key]) for r in records if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=key)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path, dpi=120)


def save_figure(fig, path: Path, *, dpi: int) -> Path:
    """Lay out a matplotlib figure, save it as ``path`` (making its folder) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def can_plot() -> bool:
    """matplotlib is an optional extra: without it, runs still train and log, minus the PNGs."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        logging.getLogger("optnet").warning("matplotlib is not installed: skipping the plots")
        return False
    return True


def save_checkpoint(path: Path, model: nn.Module, config: Any, extra: dict[str, Any]) -> None:
    """Save ``model``'s weights (on the CPU), its dataclass ``config`` and ``extra`` entries."""
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    torch.save({"config": asdict(config), "state_dict": state, **extra}, path)


def restore_checkpoint(
    path: Path,
    config_type: type,
    build: Callable[[Any], nn.Module],
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Read a ``save_checkpoint`` file: ``(model on device, config, checkpoint dict)``.

    ``build(config_type(**saved config))`` makes the model the weights are loaded into.
    """
    ckpt = torch.load(path, map_location=device, weights_only=True)
    config = config_type(**ckpt["config"])
    model = build(config)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), config, ckpt
