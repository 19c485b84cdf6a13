"""Sudoku boards: encodings, a solution-counting solver, and the two correctness checks.

A board of box size ``k`` has side ``s = k^2`` (4 for the paper's mini-Sudoku, 9 for the
classic one). Two encodings are used:

- *grid*: a flat list of ``s*s`` ints, 0 for an empty cell and 1..s for a digit (the solver's);
- *one-hot*: a float tensor ``(..., s, s, s)`` over (row, column, digit index 0..s-1); an empty
  cell is all zeros (the data files' and the models' encoding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def side_of(board: int) -> int:
    """Side length ``s = k^2`` of a board with box size ``k``."""
    return board * board


def board_of(side: int) -> int:
    """Box size ``k`` of a board of side ``s = k^2``; raises for a side that is not a square."""
    box = round(side**0.5)
    if box * box != side:
        raise ValueError(f"a Sudoku side must be a perfect square, got {side}")
    return box


# ---------------------------------------------------------------------------------- encodings


def grid_to_one_hot(grid: Sequence[int], board: int) -> torch.Tensor:
    """Flat grid (0 = empty, 1..s) -> one-hot float32 tensor ``(s, s, s)``."""
    side = side_of(board)
    cells = torch.as_tensor(list(grid), dtype=torch.long).reshape(side, side)
    one_hot = torch.nn.functional.one_hot(cells, side + 1)[..., 1:]  # drop the "empty" class
    return one_hot.to(torch.float32)


def one_hot_to_grid(one_hot: torch.Tensor) -> list[int]:
    """One-hot ``(s, s, s)`` -> flat grid; an all-zero cell becomes 0 (empty)."""
    filled = one_hot.sum(-1) > 0
    digits = one_hot.argmax(-1) + 1
    return torch.where(filled, digits, 0).flatten().tolist()


def constraint_matrix(board: int) -> torch.Tensor:
    """The exact Sudoku constraints ``M z = 1`` on a one-hot board z (flattened row-major).

    One row per cell (one digit each), and per digit one row per board row, column and box.
    Its rank (40 for 4x4) is the number of equality rows that SudokuOptNet needs to learn.
    """
    side = side_of(board)
    index = torch.arange(side**3).reshape(side, side, side)  # [row, col, digit]
    rows = [index[r, c, :] for r in range(side) for c in range(side)]
    for d in range(side):
        rows += [index[r, :, d] for r in range(side)]
        rows += [index[:, c, d] for c in range(side)]
        for br in range(board):
            for bc in range(board):
                box = index[br * board : (br + 1) * board, bc * board : (bc + 1) * board, d]
                rows.append(box.flatten())
    matrix = torch.zeros(len(rows), side**3)
    for i, cols in enumerate(rows):
        matrix[i, cols] = 1.0
    return matrix


# ----------------------------------------------------------------------------------- solver


def _box_index(board: int) -> list[int]:
    side = side_of(board)
    return [(r // board) * board + c // board for r in range(side) for c in range(side)]


def _search(grid: list[int], board: int, limit: int, rng: np.random.Generator | None) -> list:
    """Depth-first search over the empty cells, most-constrained cell first.

    Returns up to ``limit`` solutions (each a full grid). With ``rng`` the candidate digits
    are tried in random order, which makes the first solution a uniformly shuffled search.
    """
    side = side_of(board)
    box_of = _box_index(board)
    full = (1 << side) - 1
    rows, cols, boxes = [0] * side, [0] * side, [0] * side
    for cell, digit in enumerate(grid):
        if digit:
            bit = 1 << (digit - 1)
            r, c, b = cell // side, cell % side, box_of[cell]
            if (rows[r] | cols[c] | boxes[b]) & bit:
                return []  # the givens already clash
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
    work = list(grid)
    empty = [cell for cell, digit in enumerate(grid) if not digit]
    solutions: list[list[int]] = []

    def candidates(cell: int) -> int:
        return full & ~(rows[cell // side] | cols[cell % side] | boxes[box_of[cell]])

    def recurse() -> None:
        best, best_mask, best_count = -1, 0, side + 1
        for cell in empty:
            if work[cell]:
                continue
            mask = candidates(cell)
            count = mask.bit_count()
            if count < best_count:
                best, best_mask, best_count = cell, mask, count
                if count <= 1:
                    break
        if best < 0:
            solutions.append(list(work))
            return
        digits = [d for d in range(1, side + 1) if best_mask >> (d - 1) & 1]
        if rng is not None:
            digits = [digits[i] for i in rng.permutation(len(digits))]
        r, c, b = best // side, best % side, box_of[best]
        for digit in digits:
            bit = 1 << (digit - 1)
            work[best] = digit
            rows[r] |= bit
            cols[c] |= bit
            boxes[b] |= bit
            recurse()
            rows[r] &= ~bit
            cols[c] &= ~bit
            boxes[b] &= ~bit
            work[best] = 0
            if len(solutions) >= limit:
                return

    recurse()
    return solutions


def count_solutions(grid: Sequence[int], board: int, *, limit: int = 2) -> int:
    """Number of completions of ``grid`` (0 = empty), counting no further than ``limit``.

    ``limit=2`` is all a uniqueness test needs: the answer is 0, 1 or "2 or more".
    """
    side = side_of(board)
    if len(grid) != side * side or any(not 0 <= d <= side for d in grid):
        raise ValueError(f"a {side}x{side} grid needs {side * side} entries in 0..{side}")
    return len(_search(list(grid), board, limit, None))


def random_solution(board: int, rng: np.random.Generator) -> list[int]:
    """A random full valid grid, drawn by a randomized search from the empty board."""
    return _search([0] * side_of(board) ** 2, board, 1, rng)[0]


# ----------------------------------------------------------------------------------- checks


def _units(digits: torch.Tensor, board: int) -> torch.Tensor:
    """Rows, columns and boxes of ``(N, s, s)`` digit boards as ``(N, 3s, s)``."""
    n, side = digits.shape[0], digits.shape[-1]
    boxes = digits.reshape(n, board, board, board, board).transpose(2, 3).reshape(n, side, side)
    return torch.cat([digits, digits.transpose(1, 2), boxes], dim=1)


def predicted_digits(boards: torch.Tensor) -> torch.Tensor:
    """``(N, s, s, s)`` scores over digits -> ``(N, s, s)`` digit indices (argmax, 0..s-1)."""
    return boards.argmax(-1)


def strict_correct(boards: torch.Tensor, puzzles: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: the argmax board is a valid Sudoku AND keeps every given of the puzzle.

    A valid Sudoku has each digit exactly once in every row, column and box.
    """
    side = boards.shape[-1]
    board = board_of(side)
    digits = predicted_digits(boards)
    units = _units(digits, board)
    counts = torch.nn.functional.one_hot(units, side).sum(-2)  # (N, 3s, s) digit counts
    valid = (counts == 1).flatten(1).all(1)
    given = puzzles.sum(-1) > 0
    keeps_givens = ((digits == puzzles.argmax(-1)) | ~given).flatten(1).all(1)
    return valid & keeps_givens


def paper_correct(boards: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: the OptNet paper's check of an argmax board, generalized to any side.

    Every row, column and box of digit indices must have min 0, max s-1 and sum s(s-1)/2
    (0, 3 and 6 on 4x4). Weaker than ``strict_correct``: repeated digits can pass, and the
    givens are not compared.
    """
    side = boards.shape[-1]
    units = _units(predicted_digits(boards), board_of(side))
    ok = (
        (units.min(-1).values == 0)
        & (units.max(-1).values == side - 1)
        & (units.sum(-1) == side * (side - 1) // 2)
    )
    return ok.flatten(1).all(1)
