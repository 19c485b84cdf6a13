"""Tests of the total-variation denoising experiment (data, TV QP, models, CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from optnet import SolverOptions
from optnet.cli import main as optnet_main
from optnet_experiments.checkpoints import read_checkpoint
from optnet_experiments.denoising.data import SignalConfig, make_dataset, make_signals
from optnet_experiments.denoising.models import (
    ModelConfig,
    TVDenoiser,
    build_model,
    difference_matrix,
    load_model,
    save_model,
)
from optnet_experiments.denoising.train import (
    TrainConfig,
    checkpoint_test_set,
    d_penalty,
    evaluate,
    train,
    train_step,
    tv_grid_search,
)
from optnet_experiments.json_lines import read_json_lines

# ---- data ---------------------------------------------------------------------------------


def test_signals_shapes_ranges_and_piece_counts():
    clean, noisy, pieces = make_signals(500, seed=3)
    assert clean.shape == noisy.shape == (500, 100)
    assert clean.dtype == noisy.dtype == torch.float64
    assert pieces.min() >= 1 and pieces.max() <= 9
    assert set(pieces.tolist()) == set(range(1, 10))  # 500 draws hit every count
    assert torch.equal(clean, clean.round())
    assert clean.min() >= 10 and clean.max() <= 99
    jumps = (clean.diff(dim=1) != 0).sum(1)
    assert torch.equal(jumps + 1, pieces)


def test_signals_noise_level():
    clean, noisy, _ = make_signals(2000, seed=0)
    noise = noisy - clean
    assert abs(noise.mean().item()) < 0.1
    assert noise.std().item() == pytest.approx(10.0, rel=0.01)


def test_signals_seeding():
    a = make_signals(20, seed=1)
    b = make_signals(20, seed=1)
    c = make_signals(20, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[1], c[1])


def test_dataset_split():
    data = make_dataset(seed=0, n_train=30, n_test=10)
    assert data.train_clean.shape == data.train_noisy.shape == (30, 100)
    assert data.test_clean.shape == data.test_noisy.shape == (10, 100)
    clean, _, _ = make_signals(40, seed=0)
    assert torch.equal(torch.cat([data.train_clean, data.test_clean]), clean)


# ---- the TV QP ----------------------------------------------------------------------------


def tv_reference(y: np.ndarray, lam: float) -> np.ndarray:
    """The primal TV problem with epigraph variables, solved by Clarabel (independent)."""
    clarabel = pytest.importorskip("clarabel")
    from scipy import sparse

    n = len(y)
    D = np.diff(np.eye(n), axis=0)
    m = n - 1
    # variables (x, t): min 1/2 |x|^2 - y'x + lam 1't  s.t.  D x - t <= 0,  -D x - t <= 0
    P = sparse.block_diag([sparse.eye(n), sparse.csc_matrix((m, m))], format="csc")
    q = np.concatenate([-y, lam * np.ones(m)])
    A = sparse.csc_matrix(np.block([[D, -np.eye(m)], [-D, -np.eye(m)]]))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-10
    solver = clarabel.DefaultSolver(
        P, q, A, np.zeros(2 * m), [clarabel.NonnegativeConeT(2 * m)], settings
    )
    solution = solver.solve()
    assert str(solution.status) == "Solved"
    return np.asarray(solution.x[:n])


@pytest.mark.parametrize("lam", [0.0, 0.5, 3.0, 50.0])
def test_tv_dual_qp_matches_primal_reference(lam):
    y = torch.tensor([[1.0, 1.3, 0.8, 4.0, 4.2, 3.9, 4.1, -1.0]], dtype=torch.float64)
    model = TVDenoiser(difference_matrix(8), lam, learn_D=False)
    x = model(y)
    assert model.last_unsolved == 0
    np.testing.assert_allclose(x[0].numpy(), tv_reference(y[0].numpy(), lam), atol=1e-6)


def test_tv_large_lambda_gives_the_mean():
    # With lam above every partial-sum bound the TV solution is the constant mean signal.
    y = torch.tensor([[3.0, -1.0, 2.0, 7.0, 0.5]], dtype=torch.float64)
    x = TVDenoiser(difference_matrix(5), 100.0, learn_D=False)(y)
    torch.testing.assert_close(x, y.mean().expand_as(y), atol=1e-7, rtol=0)


def test_tv_layer_gradient_in_D():
    torch.manual_seed(0)
    y = torch.tensor([[1.0, 1.4, 0.7, 3.0, 3.2, 2.9]], dtype=torch.float64)
    D0 = difference_matrix(6) + 0.05 * torch.randn(5, 6, dtype=torch.float64)
    options = SolverOptions(eps_abs=1e-12, eps_rel=1e-12, max_iter=100)
    model = TVDenoiser(D0, 0.3, learn_D=False, options=options)

    def x_of_D(D):
        model.D = D  # a buffer: the module's own forward, with D as the input
        return model(y)

    D = D0.clone().requires_grad_()
    assert torch.autograd.gradcheck(x_of_D, (D,), eps=1e-6, atol=1e-5, rtol=1e-4)


# ---- models and training ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fc", "optnet", "optnet-tv"])
def test_one_training_step_lowers_the_loss(kind):
    clean, noisy, _ = make_signals(16, seed=5, config=SignalConfig(length=20))
    config = ModelConfig(kind, length=20, hidden=64, lam=15.0)
    model = build_model(config, seed=0)
    l1 = 0.1 if kind == "optnet" else 0.0
    lr = {"fc": 1e-3, "optnet": 1e-2, "optnet-tv": 1e-4}[kind]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def objective():
        with torch.no_grad():
            return float((model(noisy) - clean).pow(2).mean() + l1 * d_penalty(model))

    before = objective()
    train_step(model, optimizer, clean, noisy, l1=l1)
    assert objective() < before


def test_grid_search_measures_each_lambda_and_picks_the_best():
    # Each lambda's training MSE against the primal TV solved by Clarabel, signal by signal.
    clean, noisy, _ = make_signals(6, seed=2, config=SignalConfig(length=30))
    lambdas = [0.0, 5.0, 20.0, 200.0]
    best, records = tv_grid_search(clean, noisy, lambdas)
    pairs = [(x.numpy(), y.numpy()) for x, y in zip(clean, noisy)]
    expected = [np.mean([(tv_reference(y, lam) - x) ** 2 for x, y in pairs]) for lam in lambdas]
    assert [r["lambda"] for r in records] == lambdas
    np.testing.assert_allclose([r["train_mse"] for r in records], expected, rtol=1e-6)
    assert best == lambdas[int(np.argmin(expected))]
    assert best in (5.0, 20.0)  # denoising beats both the identity and the flat mean


def test_build_model_initializations():
    tv = build_model(ModelConfig("tv", length=10, lam=4.0))
    assert not any(True for _ in tv.parameters())
    torch.testing.assert_close(tv.D, difference_matrix(10))
    from_tv = build_model(ModelConfig("optnet-tv", length=10, lam=4.0))
    torch.testing.assert_close(from_tv.D.detach(), difference_matrix(10))
    assert float(from_tv.lam) == 4.0
    pure = build_model(ModelConfig("optnet", length=10), seed=1)
    assert pure.D.shape == (9, 10) and 0.15 < float(pure.D.detach().std()) < 0.45
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model(ModelConfig("nope"))


# ---- checkpoints and CLI ------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    config = ModelConfig("optnet", length=12)
    model = build_model(config, seed=3)
    save_model(tmp_path / "m.pt", model, config, data={})
    loaded, loaded_config, checkpoint = load_model(tmp_path / "m.pt")
    assert loaded_config == config and checkpoint.spec.dtype == "float64"
    torch.testing.assert_close(loaded.D, model.D)
    y = torch.randn(3, 12, dtype=torch.float64) * 10 + 50
    torch.testing.assert_close(loaded(y), model(y))


def test_best_checkpoint_holds_the_best_epochs_weights(tmp_path):
    # From the tuned TV solution (epoch 0), Adam steps of lr 0.02 on 20 signals overfit: the
    # test MSE jumps at epoch 1 and recovers part of the way at epoch 2. So the best epoch is
    # neither the last nor the best of the later epochs: best.pt must hold epoch 0's weights
    # (re-evaluated, they give its logged MSE), model.pt epoch 2's.
    out = tmp_path / "run"
    config = TrainConfig(
        model="optnet-tv", out=str(out), epochs=2, n_train=20, n_test=10, batch_size=10,
        lam=20.0, lr=0.02,
    )  # fmt: skip
    result = train(config)
    mse = [r["test_mse"] for r in result.records]
    assert [r["epoch"] for r in result.records] == [0, 1, 2]
    assert mse[0] < mse[2] < mse[1], mse  # the premise of this test
    assert result.best_epoch == 0

    best, _, best_checkpoint = load_model(out / "best.pt")
    last, _, last_checkpoint = load_model(out / "model.pt")
    assert best_checkpoint.metadata["epoch"] == 0 and last_checkpoint.metadata["epoch"] == 2
    clean, noisy = checkpoint_test_set(best_checkpoint)
    assert evaluate(best, clean, noisy)[0] == pytest.approx(mse[0], rel=1e-9)
    assert evaluate(last, clean, noisy)[0] == pytest.approx(mse[2], rel=1e-9)
    torch.testing.assert_close(best.D, difference_matrix(100))  # the TV start, untrained
    assert read_json_lines(out / "history.jsonl") == result.records


def test_cli_train_then_eval_json(tmp_path, capsys):
    out = tmp_path / "run"
    code = optnet_main(
        ["denoise", "train", "--model", "fc", "--epochs", "2", "--n-train", "40", "--n-test", "10",
         "--batch-size", "20", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    history = read_json_lines(out / "history.jsonl")
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert (out / "examples.png").stat().st_size > 0 and (out / "curves.png").exists()
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["test_mse"] == history[-1]["test_mse"]
    assert optnet_main(["denoise", "eval", "--checkpoint", str(out / "model.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 10
    assert result["test_mse"] == pytest.approx(history[-1]["test_mse"], rel=1e-6)


def test_cli_eval_of_another_experiments_checkpoint_is_an_error_line(tmp_path, capsys):
    from optnet_experiments.sudoku.models import build_model as build_sudoku
    from optnet_experiments.sudoku.models import save_model as save_sudoku

    hparams = {"board": 2, "depth": 1, "width": 4}
    save_sudoku(tmp_path / "s.pt", build_sudoku("fc", hparams), "fc", hparams)
    assert optnet_main(["denoise", "eval", "--checkpoint", str(tmp_path / "s.pt")]) == 2
    err = capsys.readouterr().err
    assert "optnet denoise eval: error:" in err and "sudoku experiment, not of denoising" in err
    assert read_checkpoint(tmp_path / "s.pt").spec.experiment == "sudoku"
