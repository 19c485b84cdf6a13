"""The Sudoku models: OptNet and the paper's two baselines, and their checkpoints.

Every model maps puzzles ``(B, s, s, s)`` (one-hot, zeros where empty) to a board of the same
shape whose argmax over the last axis is the predicted digit: OptNet returns the relaxed QP
solution, the baselines a softmax over digits. A checkpoint stores the model kind, the
hyperparameters that rebuild it, and its ``state_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..nn import SudokuOptNet
from ._common import DTYPES
from .sudoku_boards import side_of

MODEL_KINDS = ("optnet", "conv", "fc")
_CHECKPOINT_FORMAT = "optnet-sudoku/1"
# Rank of the exact constraint matrix (sudoku_boards.constraint_matrix): the paper's 40 on 4x4.
EQUALITY_ROWS = {2: 40, 3: 249}


class ConvSudokuNet(nn.Module):
    """The paper's convolutional baseline: ``depth`` 3x3 conv layers of ``width`` filters with
    ReLU, a final 3x3 convolution to the digit channels, and a softmax over digits.

    The paper used ``depth=10, width=512``; tests use tiny ones.
    """

    def __init__(self, board: int = 2, *, depth: int = 10, width: int = 512):
        super().__init__()
        side = side_of(board)
        layers: list[nn.Module] = []
        channels = side
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        layers.append(nn.Conv2d(channels, side, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, puzzles: torch.Tensor) -> torch.Tensor:
        # (B, row, col, digit) -> digits as channels -> back
        logits = self.net(puzzles.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return logits.softmax(-1)


class FCSudokuNet(nn.Module):
    """The paper's fully connected baseline: ``depth`` hidden ReLU layers of ``width`` units
    on the flattened one-hot board, then a softmax over digits for every cell."""

    def __init__(self, board: int = 2, *, depth: int = 2, width: int = 512):
        super().__init__()
        n = side_of(board) ** 3
        layers: list[nn.Module] = [nn.Flatten()]
        size = n
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        layers.append(nn.Linear(size, n))
        self.net = nn.Sequential(*layers)

    def forward(self, puzzles: torch.Tensor) -> torch.Tensor:
        return self.net(puzzles).reshape(puzzles.shape).softmax(-1)


def default_hparams(kind: str, board: int) -> dict[str, Any]:
    """The paper's hyperparameters for ``kind`` on a board of box size ``board``."""
    if kind == "optnet":
        return {"board": board, "n_eq": EQUALITY_ROWS[board], "q": 0.1, "dtype": "float64"}
    if kind == "conv":
        return {"board": board, "depth": 10, "width": 512}
    if kind == "fc":
        return {"board": board, "depth": 2, "width": 512}
    raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")


def build_model(kind: str, hparams: dict[str, Any]) -> nn.Module:
    """A freshly initialized model of ``kind`` (uses the global torch RNG: seed first)."""
    params = dict(hparams)
    if kind == "optnet":
        dtype = params.pop("dtype")
        if dtype not in DTYPES:
            raise ValueError(f"OptNet dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        return SudokuOptNet(dtype=DTYPES[dtype], **params)
    if kind == "conv":
        return ConvSudokuNet(**params)
    if kind == "fc":
        return FCSudokuNet(**params)
    raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")


def model_dtype(kind: str, hparams: dict[str, Any]) -> str:
    """The dtype the model computes in (the baselines always use float32)."""
    return hparams["dtype"] if kind == "optnet" else "float32"


def save_checkpoint(
    path: Path | str,
    kind: str,
    hparams: dict[str, Any],
    model: nn.Module,
    *,
    epoch: int,
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Save what ``load_checkpoint`` needs to rebuild ``model``, plus the epoch and metrics."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {
            "format": _CHECKPOINT_FORMAT,
            "model": kind,
            "hparams": dict(hparams),
            "state_dict": state,
            "epoch": epoch,
            "metrics": dict(metrics or {}),
        },
        path,
    )
    return path


def load_checkpoint(
    path: Path | str, *, device: torch.device | str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved in ``path``; returns ``(model in eval mode, checkpoint dict)``."""
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a Sudoku checkpoint written by `optnet sudoku train`")
    model = build_model(checkpoint["model"], checkpoint["hparams"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval(), checkpoint
