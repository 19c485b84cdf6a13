"""Sudoku data sets: the paper's files, our seeded generator, and the train/test split.

A data set is a folder with ``features.pt`` (puzzles) and ``labels.pt`` (solutions), float32
one-hot tensors of shape ``(N, s, s, s)``: (row, column, digit); an empty cell is all zeros.
This is the format of the OptNet paper's 4x4 files, and the one our generator writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..common import ConfigError, data_dir
from .boards import board_of, count_solutions, grid_to_one_hot, random_solution, side_of

logger = logging.getLogger("optnet")

# The paper's 4x4 puzzles: data_dir(DATA_NAME) is $OPTNET_DATA/sudoku4 or ../shared/data/sudoku4.
DATA_NAME = "sudoku4"
TEST_FRACTION = 0.1  # the paper's split: first 90% train, last 10% test
# Range of the number of givens the generator aims for, per box size (4x4: like the paper's data).
DEFAULT_GIVENS = {2: (4, 6), 3: (25, 35)}


@dataclass(frozen=True)
class SudokuData:
    """Puzzles and their solutions, both ``(N, s, s, s)`` float32 one-hot."""

    features: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if self.features.shape != self.labels.shape or self.features.dim() != 4:
            raise ConfigError(
                "features and labels must both have shape (N, s, s, s), got "
                f"{tuple(self.features.shape)} and {tuple(self.labels.shape)}"
            )
        board_of(self.features.shape[-1])  # raises unless the side is a square

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def board(self) -> int:
        """Box size k (2 for 4x4 boards, 3 for 9x9)."""
        return board_of(self.features.shape[-1])

    def subset(self, index: slice | torch.Tensor) -> SudokuData:
        return SudokuData(self.features[index], self.labels[index])

    def to(self, device: torch.device | str) -> SudokuData:
        return SudokuData(self.features.to(device), self.labels.to(device))


def load_sudoku(path: Path | str | None = None, *, limit: int | None = None) -> SudokuData:
    """Load ``features.pt``/``labels.pt`` from ``path`` (default: ``data_dir("sudoku4")``);
    ``limit`` keeps the first puzzles. Raises ``FileNotFoundError`` when a file is missing."""
    path = data_dir(DATA_NAME, path)
    missing = [name for name in ("features.pt", "labels.pt") if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} has no {' or '.join(missing)}; generate a data set with "
            "`optnet sudoku generate --out DIR` or pass --data"
        )
    features = torch.load(path / "features.pt", weights_only=True).to(torch.float32)
    labels = torch.load(path / "labels.pt", weights_only=True).to(torch.float32)
    data = SudokuData(features, labels)
    if limit is not None:
        if limit < 2:
            raise ConfigError(f"--limit must be at least 2 (one train, one test), got {limit}")
        data = data.subset(slice(0, limit))
    return data


def save_sudoku(data: SudokuData, path: Path | str, *, meta: dict | None = None) -> Path:
    """Write ``features.pt``/``labels.pt`` (and ``meta.json`` when given) into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(data.features.contiguous(), path / "features.pt")
    torch.save(data.labels.contiguous(), path / "labels.pt")
    if meta is not None:
        (path / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def split(data: SudokuData, test_fraction: float = TEST_FRACTION) -> tuple[SudokuData, SudokuData]:
    """The paper's split: the first ``1 - test_fraction`` for training, the rest for testing."""
    n_test = max(1, round(len(data) * test_fraction))
    n_train = len(data) - n_test
    if n_train < 1:
        raise ConfigError(f"cannot split {len(data)} puzzles into train and test")
    return data.subset(slice(0, n_train)), data.subset(slice(n_train, None))


def generate_puzzle(
    board: int, rng: np.random.Generator, givens: tuple[int, int]
) -> tuple[list[int], list[int]]:
    """One puzzle with a unique solution; returns ``(puzzle, solution)`` as flat grids.

    Draws a random full grid and a target number of givens in ``givens`` (inclusive), then
    empties cells in random order, keeping each removal only if the solution stays unique.
    It stops at the target or when no cell can be removed (then there are more givens).
    """
    side = side_of(board)
    solution = random_solution(board, rng)
    target = int(rng.integers(givens[0], givens[1] + 1))
    puzzle = list(solution)
    n_givens = side * side
    for cell in rng.permutation(side * side).tolist():
        if n_givens <= target:
            break
        puzzle[cell] = 0
        if count_solutions(puzzle, board, limit=2) == 1:
            n_givens -= 1
        else:
            puzzle[cell] = solution[cell]
    return puzzle, solution


def generate_sudoku(
    board: int, n: int, seed: int, *, givens: tuple[int, int] | None = None, progress=None
) -> SudokuData:
    """``n`` seeded puzzles with unique solutions, in the data-file format.

    The same ``(board, n, seed, givens)`` always gives the same data set. ``progress`` is an
    optional wrapper of the puzzle loop (the CLI passes a progress bar).
    """
    if board not in DEFAULT_GIVENS:
        raise ConfigError(f"board must be 2 (4x4) or 3 (9x9), got {board}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    givens = DEFAULT_GIVENS[board] if givens is None else tuple(givens)
    cells = side_of(board) ** 2
    if not 0 <= givens[0] <= givens[1] <= cells:
        raise ConfigError(f"givens must satisfy 0 <= low <= high <= {cells}, got {givens}")
    rng = np.random.default_rng(seed)
    loop = range(n) if progress is None else progress(range(n))
    puzzles, solutions = [], []
    for _ in loop:
        puzzle, solution = generate_puzzle(board, rng, givens)
        puzzles.append(grid_to_one_hot(puzzle, board))
        solutions.append(grid_to_one_hot(solution, board))
    return SudokuData(torch.stack(puzzles), torch.stack(solutions))
