"""Models: shapes, a training step lowers the loss, checkpoint round trip, SudokuOptNet."""

from __future__ import annotations

import pytest
import torch

from optnet import ActiveSet
from optnet_experiments.denoising.models import ModelConfig
from optnet_experiments.denoising.models import build_model as build_denoiser
from optnet_experiments.denoising.models import save_model as save_denoiser
from optnet_experiments.errors import ConfigError
from optnet_experiments.sudoku.data import generate_sudoku
from optnet_experiments.sudoku.models import (
    SudokuOptNet,
    build_model,
    default_hparams,
    load_model,
    save_model,
)
from optnet_experiments.sudoku.train import train_step

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
    path = save_model(tmp_path / "m.pt", model, kind, TINY[kind], epoch=3, metrics={"a": 1})
    restored, checkpoint = load_model(path)
    assert checkpoint.metadata == {"epoch": 3, "metrics": {"a": 1}}
    assert checkpoint.spec.kind == kind and checkpoint.spec.hparams == TINY[kind]
    assert checkpoint.spec.dtype == ("float64" if kind == "optnet" else "float32")
    puzzles, _ = _inputs(kind, tiny_data)
    torch.testing.assert_close(restored(puzzles[:2]), model.eval()(puzzles[:2]))


def test_load_rejects_foreign_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a checkpoint"):
        load_model(tmp_path / "other.pt")
    config = ModelConfig("fc", length=8, hidden=4)
    save_denoiser(tmp_path / "denoiser.pt", build_denoiser(config), config)
    with pytest.raises(ConfigError, match="of the denoising experiment, not of sudoku"):
        load_model(tmp_path / "denoiser.pt")


def test_sudoku_optnet_output_and_gradient():
    torch.manual_seed(0)
    model = SudokuOptNet()
    puzzles = torch.zeros(3, 4, 4, 4)
    puzzles[:, 0, 0, 1] = 1.0
    out = model(puzzles)
    assert out.shape == puzzles.shape and out.dtype == puzzles.dtype
    assert bool((out >= -1e-6).all())
    out.sum().backward()
    assert model.A.grad is not None and torch.isfinite(model.A.grad).all()


def test_sudoku_optnet_solution_satisfies_its_constraints():
    # z >= 0 and A z = A z0 hold at the solution for any A: the QP is feasible by construction.
    torch.manual_seed(2)
    model = SudokuOptNet(dtype=torch.float64)
    puzzles = generate_sudoku(2, 4, seed=1).features.double()
    with torch.no_grad():
        z = model(puzzles).reshape(4, -1)
        A = model.A
        torch.testing.assert_close(z @ A.T, (A @ model.z0).expand(4, -1), atol=1e-6, rtol=0)
    assert bool((z >= -1e-7).all())


def test_sudoku_optnet_warm_started_from_a_cached_active_set():
    # The benchmarks' warm start (optnet_benchmarks.warm_start): each puzzle's bounds cached.
    torch.manual_seed(3)
    model = SudokuOptNet(dtype=torch.float64)
    puzzles = generate_sudoku(2, 6, seed=2).features.double()
    with torch.no_grad():
        cold = model.solve(puzzles)
        cache = cold.active_set.lb.clone()
        model.A.add_(1e-6 * torch.randn_like(model.A))  # one small training step
        fresh = model.solve(puzzles)
        warm = model.solve(puzzles, warm_start=ActiveSet(lb=cache))
    assert int(warm.iterations.sum()) == 0 and int(fresh.iterations.min()) > 0
    torch.testing.assert_close(warm.z, fresh.z, atol=1e-12, rtol=0)
