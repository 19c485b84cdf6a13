"""Models: shapes, a training step lowers the loss, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from optnet.experiments.sudoku_data import generate_sudoku
from optnet.experiments.sudoku_models import (
    build_model,
    default_hparams,
    load_checkpoint,
    save_checkpoint,
)
from optnet.experiments.sudoku_train import train_step

TINY = {
    "optnet": {"board": 2, "n_eq": 40, "q": 0.1, "dtype": "float64"},
    "conv": {"board": 2, "depth": 2, "width": 8},
    "fc": {"board": 2, "depth": 1, "width": 16},
}


@pytest.fixture(scope="module")
def tiny_data():
    return generate_sudoku(2, 12, seed=0)


def _inputs(kind, data):
    dtype = torch.float64 if kind == "optnet" else torch.float32
    return data.features.to(dtype), data.labels.to(dtype)


def _loss(model, puzzles, solutions):
    with torch.no_grad():
        return float((model(puzzles) - solutions).pow(2).mean())


@pytest.mark.parametrize("kind", ["optnet", "conv", "fc"])
def test_output_shape_and_probabilities(kind, tiny_data):
    torch.manual_seed(0)
    model = build_model(kind, TINY[kind])
    puzzles, _ = _inputs(kind, tiny_data)
    boards = model(puzzles[:3])
    assert boards.shape == (3, 4, 4, 4)
    if kind == "optnet":
        assert (boards > -1e-6).all()  # z >= 0 is a constraint of the QP
    else:
        torch.testing.assert_close(boards.sum(-1), torch.ones(3, 4, 4))


@pytest.mark.parametrize("kind, lr", [("optnet", 1e-2), ("conv", 1e-2), ("fc", 1e-2)])
def test_training_steps_lower_the_loss(kind, lr, tiny_data):
    torch.manual_seed(0)
    model = build_model(kind, TINY[kind])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    puzzles, solutions = _inputs(kind, tiny_data)
    before = _loss(model, puzzles, solutions)
    for _ in range(3):
        train_step(model, optimizer, puzzles, solutions, global_count=len(puzzles))
    assert _loss(model, puzzles, solutions) < before


def test_default_hparams_follow_the_paper():
    assert default_hparams("optnet", 2)["n_eq"] == 40
    assert default_hparams("conv", 2) == {"board": 2, "depth": 10, "width": 512}
    with pytest.raises(ValueError, match="model kind"):
        default_hparams("rnn", 2)


@pytest.mark.parametrize("kind", ["optnet", "conv"])
def test_checkpoint_round_trip(kind, tiny_data, tmp_path):
    torch.manual_seed(1)
    model = build_model(kind, TINY[kind])
    path = save_checkpoint(tmp_path / "m.pt", kind, TINY[kind], model, epoch=3, metrics={"a": 1})
    restored, checkpoint = load_checkpoint(path)
    assert checkpoint["epoch"] == 3 and checkpoint["model"] == kind
    assert checkpoint["metrics"] == {"a": 1}
    puzzles, _ = _inputs(kind, tiny_data)
    torch.testing.assert_close(restored(puzzles[:2]), model.eval()(puzzles[:2]))


def test_load_rejects_foreign_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Sudoku checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
