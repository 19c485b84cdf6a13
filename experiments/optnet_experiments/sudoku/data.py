"""Sudoku data sets: the paper's files, our seeded generator, and the train/val/test split.

A data set is a folder with ``features.pt`` (puzzles) and ``labels.pt`` (solutions), float32
one-hot tensors of shape ``(N, s, s, s)``: (row, column, digit); an empty cell is all zeros.
This is the format of the OptNet paper's 4x4 files, and the one our generator writes.

The split is by position: the last 10 % is the test set (the paper's split), and an optional
validation set (``val_fraction`` of the whole) sits just before it; the rest is training.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data_paths import data_dir
from ..errors import ConfigError
from .boards import board_of, count_solutions, grid_to_one_hot, random_solution, side_of

logger = logging.getLogger("optnet")

# The paper's 4x4 puzzles: data_dir(DATA_NAME) is $OPTNET_DATA/sudoku4 or ../shared/data/sudoku4.
DATA_NAME = "sudoku4"
# The default data folder's name per box size: data_dir(DATA_NAMES[board]).
DATA_NAMES = {2: DATA_NAME, 3: "sudoku9"}
TEST_FRACTION = 0.1  # the paper's split: first 90% train, last 10% test
# Range of the number of givens the generator aims for, per box size: 4x4 like the paper's data,
# 9x9 like SATNet's 9x9 data (Wang et al. 2019; about 36 givens on average).
DEFAULT_GIVENS = {2: (4, 6), 3: (31, 41)}
# Below this many puzzles per worker, starting processes costs more than it saves.
_MIN_PUZZLES_PER_WORKER = 50


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


def load_sudoku(
    path: Path | str | None = None, *, limit: int | None = None, name: str = DATA_NAME
) -> SudokuData:
    """Load ``features.pt``/``labels.pt`` from ``path`` (default: ``data_dir(name)``, the
    paper's ``sudoku4``); ``limit`` keeps the first puzzles. Raises ``FileNotFoundError`` when
    a file is missing."""
    path = data_dir(name, path)
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
    train, _, test = split_train_val_test(data, test_fraction=test_fraction)
    return train, test


def split_train_val_test(
    data: SudokuData, *, val_fraction: float = 0.0, test_fraction: float = TEST_FRACTION
) -> tuple[SudokuData, SudokuData | None, SudokuData]:
    """``(train, val, test)`` by position: test is the last ``test_fraction`` of the puzzles
    (the paper's test set, whatever ``val_fraction`` is), val the ``val_fraction`` before it
    (``None`` when ``val_fraction`` is 0), train the rest.

    Example: 10000 puzzles, ``val_fraction=0.05`` -> 8500 train, 500 val, 1000 test.
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    n_test = max(1, round(len(data) * test_fraction))
    n_val = max(1, round(len(data) * val_fraction)) if val_fraction > 0 else 0
    n_train = len(data) - n_test - n_val
    if n_train < 1:
        parts = "train, validation and test" if n_val else "train and test"
        raise ConfigError(f"cannot split {len(data)} puzzles into {parts}")
    train = data.subset(slice(0, n_train))
    val = data.subset(slice(n_train, n_train + n_val)) if n_val else None
    return train, val, data.subset(slice(n_train + n_val, None))


def generate_puzzle(
    board: int, rng: np.random.Generator, givens: tuple[int, int]
) -> tuple[list[int], list[int]]:
    """One puzzle with a unique solution; returns ``(puzzle, solution)`` as flat grids.

    Draws a random full grid and a target number of givens in ``givens`` (inclusive), then
    empties cells in random order, keeping each removal only if the solution stays unique.
    It stops at the target or when no cell can be removed (then there are more givens).
    """
    return _carve(_draw(board, rng, givens))


# A puzzle's random draws: (board, full grid, target number of givens, order of the cells).
_Draw = tuple[int, list[int], int, list[int]]


def _draw(board: int, rng: np.random.Generator, givens: tuple[int, int]) -> _Draw:
    """Everything random about one puzzle (cheap: about 0.7 ms on 9x9)."""
    side = side_of(board)
    solution = random_solution(board, rng)
    target = int(rng.integers(givens[0], givens[1] + 1))
    return board, solution, target, rng.permutation(side * side).tolist()


def _carve(draw: _Draw) -> tuple[list[int], list[int]]:
    """Empty the cells of a drawn grid in the drawn order while the solution stays unique
    (deterministic, and most of the work: about 5 ms on 9x9 with 31-41 givens)."""
    board, solution, target, order = draw
    puzzle = list(solution)
    n_givens = len(solution)
    for cell in order:
        if n_givens <= target:
            break
        puzzle[cell] = 0
        if count_solutions(puzzle, board, limit=2) == 1:
            n_givens -= 1
        else:
            puzzle[cell] = solution[cell]
    return puzzle, solution


def default_workers() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def generate_sudoku(
    board: int,
    n: int,
    seed: int,
    *,
    givens: tuple[int, int] | None = None,
    progress=None,
    workers: int = 1,
) -> SudokuData:
    """``n`` seeded puzzles with unique solutions, in the data-file format.

    The same ``(board, n, seed, givens)`` always gives the same data set, for any ``workers``:
    this process draws every puzzle's random grid and cell order in sequence (one generator,
    as with one worker), and ``workers`` processes do the uniqueness checks, which need no
    randomness. ``progress`` is an optional wrapper of the puzzle loop (the CLI passes a
    progress bar).
    """
    if board not in DEFAULT_GIVENS:
        raise ConfigError(f"board must be 2 (4x4) or 3 (9x9), got {board}")
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    givens = DEFAULT_GIVENS[board] if givens is None else tuple(givens)
    cells = side_of(board) ** 2
    if not 0 <= givens[0] <= givens[1] <= cells:
        raise ConfigError(f"givens must satisfy 0 <= low <= high <= {cells}, got {givens}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    rng = np.random.default_rng(seed)
    draws = (_draw(board, rng, givens) for _ in range(n))
    workers = min(workers, n // _MIN_PUZZLES_PER_WORKER)
    puzzles, solutions = [], []

    def collect(results: Iterator[tuple[list[int], list[int]]]) -> None:
        for puzzle, solution in results if progress is None else progress(results):
            puzzles.append(grid_to_one_hot(puzzle, board))
            solutions.append(grid_to_one_hot(solution, board))

    if workers <= 1:
        collect(map(_carve, draws))
    else:
        # forkserver: the workers never inherit the threads of torch in this process.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else None)
        with context.Pool(workers) as pool:
            collect(pool.imap(_carve, draws, chunksize=16))
    return SudokuData(torch.stack(puzzles), torch.stack(solutions))
