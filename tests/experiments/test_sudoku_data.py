"""Data: the seeded generator (unique solutions, consistent givens), the loader and the split."""

from __future__ import annotations

import pytest
import torch

from optnet_experiments.data_paths import data_dir
from optnet_experiments.sudoku.boards import count_solutions, one_hot_to_grid, strict_correct
from optnet_experiments.sudoku.data import (
    DATA_NAME,
    SudokuData,
    generate_sudoku,
    load_sudoku,
    save_sudoku,
    split,
)


@pytest.mark.parametrize("board, n", [(2, 30), (3, 3)])
def test_generated_puzzles_have_unique_consistent_solutions(board, n):
    data = generate_sudoku(board, n, seed=7)
    side = board * board
    assert data.features.shape == data.labels.shape == (n, side, side, side)
    assert data.features.dtype == torch.float32
    # The labels are valid boards that keep every given of their puzzle.
    assert strict_correct(data.labels, data.features).all()
    # ... and, the solution being unique, they are THE solution.
    for puzzle in data.features:
        grid = one_hot_to_grid(puzzle)
        assert 0 < sum(d > 0 for d in grid) < side * side
        assert count_solutions(grid, board) == 1


def test_generator_respects_givens_range():
    data = generate_sudoku(2, 40, seed=1, givens=(6, 6))
    givens = data.features.sum((1, 2, 3))
    assert (givens >= 6).all()  # at the target, or above it when no cell could be removed
    assert (givens == 6).float().mean() > 0.5


def test_generator_is_seeded():
    a = generate_sudoku(2, 10, seed=3)
    b = generate_sudoku(2, 10, seed=3)
    c = generate_sudoku(2, 10, seed=4)
    assert torch.equal(a.features, b.features) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.features, c.features)


def test_generator_rejects_bad_arguments():
    with pytest.raises(ValueError, match="board"):
        generate_sudoku(4, 1, seed=0)
    with pytest.raises(ValueError, match="givens"):
        generate_sudoku(2, 1, seed=0, givens=(5, 20))


def test_save_load_round_trip_and_limit(tmp_path):
    data = generate_sudoku(2, 12, seed=0)
    save_sudoku(data, tmp_path, meta={"seed": 0})
    loaded = load_sudoku(tmp_path)
    assert torch.equal(loaded.features, data.features) and torch.equal(loaded.labels, data.labels)
    assert len(load_sudoku(tmp_path, limit=5)) == 5
    assert (tmp_path / "meta.json").is_file()


def test_load_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="optnet sudoku generate"):
        load_sudoku(tmp_path / "absent")


def test_split_is_the_papers():
    data = SudokuData(torch.zeros(20, 4, 4, 4), torch.zeros(20, 4, 4, 4))
    data.features[:, 0, 0, 0] = torch.arange(20.0)
    train, test = split(data)
    assert len(train) == 18 and len(test) == 2
    assert test.features[:, 0, 0, 0].tolist() == [18.0, 19.0]  # the last 10%


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        SudokuData(torch.zeros(2, 4, 4, 4), torch.zeros(3, 4, 4, 4))


PAPER_DATA = data_dir(DATA_NAME)  # $OPTNET_DATA/sudoku4, else ../shared/data/sudoku4


@pytest.mark.data
@pytest.mark.skipif(not (PAPER_DATA / "features.pt").is_file(), reason=f"no {PAPER_DATA}")
def test_paper_data_loads_with_valid_labels():
    data = load_sudoku(PAPER_DATA)
    assert data.features.shape == (10000, 4, 4, 4)
    assert data.board == 2
    assert strict_correct(data.labels, data.features).all()
    train, test = split(data)
    assert (len(train), len(test)) == (9000, 1000)
