"""Board logic: the solution counter and the strict/paper checks on hand-made boards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optnet_experiments.sudoku.boards import (
    constraint_matrix,
    count_solutions,
    grid_to_one_hot,
    one_hot_to_grid,
    paper_correct,
    random_solution,
    strict_correct,
)

# A valid 4x4 board (digits 1..4) and a classic 9x9 one.
VALID_4 = [1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1]
VALID_9 = [int(c) for c in (
    "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
)]  # fmt: skip


def one_hot_batch(*grids, board=2):
    return torch.stack([grid_to_one_hot(g, board) for g in grids])


def test_encoding_round_trip():
    puzzle = [1, 0, 0, 4, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1]
    one_hot = grid_to_one_hot(puzzle, 2)
    assert one_hot.shape == (4, 4, 4)
    assert one_hot.sum() == 4  # empty cells are all zeros
    assert one_hot_to_grid(one_hot) == puzzle


def test_count_solutions_stops_at_limit():
    assert count_solutions(VALID_4, 2) == 1
    assert count_solutions([0] * 16, 2) == 2  # 288 completions; the count stops at 2
    assert count_solutions([0] * 16, 2, limit=300) == 288  # the known number of 4x4 grids
    clash = [1, 1] + [0] * 14
    assert count_solutions(clash, 2) == 0


def test_count_solutions_9x9():
    # The well-known puzzle whose unique solution is VALID_9.
    puzzle = [int(c) for c in (
        "530070000600195000098000060800060003400803001700020006060000280000419005000080079"
    )]  # fmt: skip
    assert count_solutions(puzzle, 3) == 1
    puzzle[0] = 0  # the 5 is forced by the other givens: still unique
    assert count_solutions(puzzle, 3) == 1
    # With every 1 and 2 removed, swapping the two digits gives a second solution.
    grid = [0 if d in (1, 2) else d for d in VALID_9]
    assert count_solutions(grid, 3) == 2
    assert count_solutions([0] * 81, 3) == 2


def test_random_solution_is_valid_and_seeded():
    for board in (2, 3):
        grid = random_solution(board, np.random.default_rng(3))
        solution = one_hot_batch(grid, board=board)
        assert bool(strict_correct(solution, solution).item())
        assert grid == random_solution(board, np.random.default_rng(3))


def test_constraint_matrix_rank_matches_paper():
    matrix = constraint_matrix(2)
    assert matrix.shape == (64, 64)
    assert int(torch.linalg.matrix_rank(matrix.double())) == 40
    # Every valid one-hot board satisfies M z = 1.
    z = grid_to_one_hot(VALID_4, 2).flatten()
    torch.testing.assert_close(matrix @ z, torch.ones(64))


def test_checks_on_a_valid_board():
    boards = one_hot_batch(VALID_4)
    puzzle = one_hot_batch([1, 0, 0, 0] + [0] * 12)
    assert strict_correct(boards, puzzle).tolist() == [True]
    assert paper_correct(boards).tolist() == [True]
    assert paper_correct(one_hot_batch(VALID_9, board=3)).tolist() == [True]


def test_checks_on_a_board_breaking_a_row():
    broken = list(VALID_4)
    broken[0], broken[1] = broken[1], broken[0]  # swaps keep row 0 but break columns 0 and 1
    broken[2] = 1  # row 0 is now 2, 1, 1, 4
    boards = one_hot_batch(broken)
    empty = torch.zeros_like(boards)
    assert strict_correct(boards, empty).tolist() == [False]
    assert paper_correct(boards).tolist() == [False]


def test_paper_check_passes_where_strict_fails():
    # Every row, column and box holds digit indices {0, 0, 3, 3}: min 0, max 3, sum 6.
    fake = [1, 4, 1, 4, 4, 1, 4, 1, 1, 4, 1, 4, 4, 1, 4, 1]
    boards = one_hot_batch(fake)
    assert paper_correct(boards).tolist() == [True]
    assert strict_correct(boards, torch.zeros_like(boards)).tolist() == [False]
    # A valid board that contradicts a given also passes the paper check only.
    valid = one_hot_batch(VALID_4)
    wrong_given = one_hot_batch([2] + [0] * 15)
    assert paper_correct(valid).tolist() == [True]
    assert strict_correct(valid, wrong_given).tolist() == [False]


def test_checks_use_argmax_of_relaxed_boards():
    boards = one_hot_batch(VALID_4) * 0.6 + 0.1  # soft but the argmax is still the valid board
    assert strict_correct(boards, torch.zeros_like(boards)).tolist() == [True]


@pytest.mark.parametrize("bad", [[1] * 15, [5] + [0] * 15])
def test_count_solutions_rejects_bad_grids(bad):
    with pytest.raises(ValueError, match="grid"):
        count_solutions(bad, 2)
