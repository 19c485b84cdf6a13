"""The Sudoku models: OptNet (``SudokuOptNet``) and the paper's two baselines, and their
checkpoints.

Every model maps puzzles ``(B, s, s, s)`` (one-hot, zeros where empty) to a board of the same
shape whose argmax over the last axis is the predicted digit: OptNet returns the relaxed QP
solution, the baselines a softmax over digits. Checkpoints use the experiments' one format
(``optnet_experiments.checkpoints.save_checkpoint``): the model kind, the hyperparameters that
rebuild it, its dtype and its ``state_dict``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from optnet import QPSolution, SolverOptions
from optnet.nn import QPLayer

from ..checkpoints import Checkpoint, ModelSpec, load_checkpoint, save_checkpoint
from ..devices import DTYPES
from ..errors import ConfigError
from .boards import constraint_matrix, side_of

EXPERIMENT = "sudoku"
MODEL_KINDS = ("optnet", "conv", "fc")
# Rank of the exact constraint matrix (boards.constraint_matrix): the paper's 40 on 4x4.
EQUALITY_ROWS = {2: 40, 3: 249}
# OptNet's q per box size: the paper's 0.1 on 4x4. On 9x9 (31-41 givens) the QP relaxation
# with the exact constraints leaves 7.0 % of 500 validation boards wrong at q = 0.03, 2.6 % at
# 0.01 and 2.4 % at 0.003 (2 to 4 times slower to solve), and 42 % of 100 at q = 0.1
# (docs/experiments.md, "9x9 Sudoku").
DEFAULT_Q = {2: 0.1, 3: 0.01}
# How SudokuOptNet's A starts (SudokuOptNet.initialize): "rand", the paper's uniform [0, 1)
# entries, learned by gradient descent alone; "solutions", an orthonormal basis of the
# directions in which the training solutions do not vary (estimated from the solutions alone,
# no rules given); "exact", an orthonormal basis of the row space of the true constraint
# matrix: the rules given, a reference for what the model class can reach, not learning.
INITS = ("rand", "solutions", "exact")


class SudokuOptNet(nn.Module):
    """The paper's Sudoku model: learn the equality constraints of the one-hot board.

    Variables z are the one-hot encoding of a ``k^2 x k^2`` board (``k^6`` entries; 64 for 4x4):
    ``min 1/2 q z'z - puzzle'z  s.t.  z >= 0,  A z = b`` with ``Q = q I`` fixed, ``z >= 0`` as
    the solver's bound ``lb = 0`` (the same QP as the paper's ``G = -I, h = 0``, about twice as
    fast to solve at n = 729), and a learned ``A`` of ``n_eq`` rows (40 for 4x4, the rank of
    the true constraint matrix) initialized at random. ``b = A z0`` with ``z0 = 1/k^2`` (the
    uniform board, which satisfies every Sudoku constraint and z >= 0) keeps the QP feasible
    for every A. Only ``A`` is saved in a checkpoint; ``Q``, ``z0`` and the bound follow from
    the hyperparameters.

    Example:
        >>> model = SudokuOptNet(board=2)
        >>> boards = model(puzzles)          # (B, 4, 4, 4) -> (B, 4, 4, 4)
    """

    def __init__(
        self,
        board: int = 2,
        n_eq: int = 40,
        *,
        q: float = 0.1,
        options: SolverOptions | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        side = board * board
        n = side**3
        self.board = board
        self.side = side
        self.A = nn.Parameter(torch.rand(n_eq, n, dtype=dtype))
        self.register_buffer("Q", q * torch.eye(n, dtype=dtype), persistent=False)
        self.register_buffer("lb", torch.zeros(n, dtype=dtype), persistent=False)
        self.register_buffer("z0", torch.full((n,), 1.0 / side, dtype=dtype), persistent=False)
        self.qp = QPLayer(options)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Older checkpoints also saved the derived buffers (Q, G, h, z0): ignore them.
        for name in ("Q", "G", "h", "z0"):
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def initialize(self, init: str, solutions: torch.Tensor | None = None) -> None:
        """Set ``A`` by ``init`` (one of ``INITS``); "solutions" needs the training solutions
        ``(N, s, s, s)``. "rand" is what the constructor did (under the global torch RNG)."""
        if init not in INITS:
            raise ConfigError(f"init must be one of {INITS}, got {init!r}")
        n_eq, n = self.A.shape
        if init == "rand":
            self.A.copy_(torch.rand(n_eq, n, dtype=self.A.dtype))
            return
        if init == "solutions":
            if solutions is None:
                raise ConfigError('init "solutions" needs the training solutions')
            points = solutions.reshape(solutions.shape[0], -1)
        else:
            points = constraint_matrix(self.board)  # the rows themselves span the row space
        rows = flat_directions(points, n_eq) if init == "solutions" else row_basis(points, n_eq)
        self.A.copy_(rows.to(self.A))

    def forward(self, puzzles: torch.Tensor) -> torch.Tensor:
        """puzzles ``(B, side, side, side)`` one-hot (zeros where empty) -> relaxed board."""
        return self.solve(puzzles).z.reshape(puzzles.shape).to(puzzles.dtype)

    def solve(self, puzzles: torch.Tensor, *, warm_start=None) -> QPSolution:
        """The QP's solution for ``puzzles`` (``z`` is the flattened board); ``warm_start`` as
        in ``optnet.solve_qp``, e.g. ``ActiveSet(lb=...)`` cached per puzzle."""
        p = -puzzles.reshape(puzzles.shape[0], -1).to(self.Q.dtype)
        b = self.A @ self.z0
        return self.qp(self.Q, p, A=self.A, b=b, lb=self.lb, warm_start=warm_start)


def flat_directions(points: torch.Tensor, count: int) -> torch.Tensor:
    """``(count, n)`` orthonormal directions in which ``points (N, n)`` vary least: the
    eigenvectors of the smallest eigenvalues of their scatter matrix about their mean.

    For Sudoku solutions every constraint row ``a`` of ``M z = 1`` has ``a'(y - mean) = 0``;
    with enough solutions (N >= n - rank(M) + 1, 481 on 9x9) the directions of zero variance
    are exactly the row space of ``M``, learned from the solutions alone. Computed in float64.
    """
    centered = points.double() - points.double().mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(centered.T @ centered)  # ascending
    return eigenvectors[:, :count].T.contiguous()


def flat_count(points: torch.Tensor, *, rtol: float = 1e-9) -> int:
    """The number of directions in which ``points (N, n)`` do not vary: eigenvalues of the
    scatter matrix at most ``rtol`` times the largest (249 for enough 9x9 solutions)."""
    centered = points.double() - points.double().mean(0)
    eigenvalues = torch.linalg.eigvalsh(centered.T @ centered)
    return int((eigenvalues <= rtol * eigenvalues[-1]).sum())


def row_basis(matrix: torch.Tensor, count: int) -> torch.Tensor:
    """``(count, n)`` orthonormal rows spanning the ``count`` leading directions of ``matrix``'s
    row space (all of it when ``count`` is its rank)."""
    _, _, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    if count > vh.shape[0]:
        raise ConfigError(f"cannot take {count} rows from a matrix of {vh.shape[0]} rows")
    return vh[:count].contiguous()


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


def _check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise ConfigError(f"model kind must be one of {MODEL_KINDS}, got {kind!r}")


def default_hparams(kind: str, board: int) -> dict[str, Any]:
    """The paper's hyperparameters for ``kind`` on a board of box size ``board``."""
    _check_kind(kind)
    if kind == "optnet":
        return {
            "board": board,
            "n_eq": EQUALITY_ROWS[board],
            "q": DEFAULT_Q[board],
            "dtype": "float64",
        }
    if kind == "conv":
        return {"board": board, "depth": 10, "width": 512}
    return {"board": board, "depth": 2, "width": 512}


def build_model(kind: str, hparams: dict[str, Any]) -> nn.Module:
    """A freshly initialized model of ``kind`` (uses the global torch RNG: seed first)."""
    _check_kind(kind)
    params = dict(hparams)
    if kind == "optnet":
        dtype = params.pop("dtype")
        if dtype not in DTYPES:
            raise ConfigError(f"OptNet dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        return SudokuOptNet(dtype=DTYPES[dtype], **params)
    if kind == "conv":
        return ConvSudokuNet(**params)
    return FCSudokuNet(**params)


def model_dtype(kind: str, hparams: dict[str, Any]) -> str:
    """The dtype the model computes in (the baselines always use float32)."""
    return hparams["dtype"] if kind == "optnet" else "float32"


def model_spec(kind: str, hparams: dict[str, Any]) -> ModelSpec:
    """The checkpoint spec of a Sudoku model: ``build_model(kind, hparams)`` rebuilds it."""
    return ModelSpec(EXPERIMENT, kind, dict(hparams), model_dtype(kind, hparams))


def save_model(
    path: Path | str, model: nn.Module, kind: str, hparams: dict[str, Any], **metadata: Any
) -> Path:
    """Save a Sudoku model in the experiments' checkpoint format, with ``metadata``."""
    return save_checkpoint(path, model, model_spec(kind, hparams), metadata)


def load_model(
    path: Path | str, *, device: torch.device | str = "cpu"
) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the Sudoku model saved in ``path``: ``(model in eval mode, checkpoint)``.

    Raises ``ConfigError`` when ``path`` is not a Sudoku checkpoint.
    """
    return load_checkpoint(
        path, lambda spec: build_model(spec.kind, spec.hparams), experiment=EXPERIMENT,
        device=device,
    )  # fmt: skip
