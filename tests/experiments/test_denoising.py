"""Tests of the total-variation denoising experiment (data, TV QP, models, CLI)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from optnet import SolverOptions
from optnet.experiments import denoising as dn


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    dn.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


# ---- data ---------------------------------------------------------------------------------


def test_signals_shapes_ranges_and_piece_counts():
    clean, noisy, pieces = dn.make_signals(500, seed=3)
    assert clean.shape == noisy.shape == (500, 100)
    assert clean.dtype == noisy.dtype == torch.float64
    assert pieces.min() >= 1 and pieces.max() <= 9
    assert set(pieces.tolist()) == set(range(1, 10))  # 500 draws hit every count
    assert torch.equal(clean, clean.round())
    assert clean.min() >= 10 and clean.max() <= 99
    jumps = (clean.diff(dim=1) != 0).sum(1)
    assert torch.equal(jumps + 1, pieces)


def test_signals_noise_level():
    clean, noisy, _ = dn.make_signals(2000, seed=0)
    noise = noisy - clean
    assert abs(noise.mean().item()) < 0.1
    assert noise.std().item() == pytest.approx(10.0, rel=0.01)


def test_signals_seeding():
    a = dn.make_signals(20, seed=1)
    b = dn.make_signals(20, seed=1)
    c = dn.make_signals(20, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[1], c[1])


def test_dataset_split():
    data = dn.make_dataset(seed=0, n_train=30, n_test=10)
    assert data.train_clean.shape == data.train_noisy.shape == (30, 100)
    assert data.test_clean.shape == data.test_noisy.shape == (10, 100)
    clean, _, _ = dn.make_signals(40, seed=0)
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
    model = dn.TVDenoiser(dn.difference_matrix(8), lam, learn_D=False)
    x = model(y)
    assert model.last_unsolved == 0
    np.testing.assert_allclose(x[0].numpy(), tv_reference(y[0].numpy(), lam), atol=1e-6)


def test_tv_large_lambda_gives_the_mean():
    # With lam above every partial-sum bound the TV solution is the constant mean signal.
    y = torch.tensor([[3.0, -1.0, 2.0, 7.0, 0.5]], dtype=torch.float64)
    x = dn.TVDenoiser(dn.difference_matrix(5), 100.0, learn_D=False)(y)
    torch.testing.assert_close(x, y.mean().expand_as(y), atol=1e-7, rtol=0)


def test_tv_layer_gradient_in_D():
    torch.manual_seed(0)
    y = torch.tensor([[1.0, 1.4, 0.7, 3.0, 3.2, 2.9]], dtype=torch.float64)
    D0 = dn.difference_matrix(6) + 0.05 * torch.randn(5, 6, dtype=torch.float64)
    options = SolverOptions(eps_abs=1e-12, eps_rel=1e-12, max_iter=100)
    model = dn.TVDenoiser(D0, 0.3, learn_D=False, options=options)

    def x_of_D(D):
        model.D = D  # a buffer: the module's own forward, with D as the input
        return model(y)

    D = D0.clone().requires_grad_()
    assert torch.autograd.gradcheck(x_of_D, (D,), eps=1e-6, atol=1e-5, rtol=1e-4)


# ---- models and training ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fc", "optnet", "optnet-tv"])
def test_one_training_step_lowers_the_loss(kind):
    clean, noisy, _ = dn.make_signals(16, seed=5, config=dn.SignalConfig(length=20))
    config = dn.ModelConfig(kind, length=20, hidden=64, lam=15.0)
    model = dn.build_model(config, seed=0)
    l1 = 0.1 if kind == "optnet" else 0.0
    lr = {"fc": 1e-3, "optnet": 1e-2, "optnet-tv": 1e-4}[kind]
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def objective():
        with torch.no_grad():
            return float((model(noisy) - clean).pow(2).mean() + l1 * dn.d_penalty(model))

    before = objective()
    dn.train_step(model, optimizer, clean, noisy, l1=l1)
    assert objective() < before


def test_grid_search_picks_the_best_lambda():
    clean, noisy, _ = dn.make_signals(10, seed=2, config=dn.SignalConfig(length=30))
    best, records = dn.tv_grid_search(clean, noisy, [0.0, 5.0, 20.0, 200.0])
    assert [r["lambda"] for r in records] == [0.0, 5.0, 20.0, 200.0]
    assert best == min(records, key=lambda r: r["train_mse"])["lambda"]
    assert records[0]["train_mse"] == pytest.approx(float((noisy - clean).pow(2).mean()))
    assert best in (5.0, 20.0)  # denoising beats both the identity and the flat mean


def test_build_model_initializations():
    tv = dn.build_model(dn.ModelConfig("tv", length=10, lam=4.0))
    assert not any(True for _ in tv.parameters())
    torch.testing.assert_close(tv.D, dn.difference_matrix(10))
    from_tv = dn.build_model(dn.ModelConfig("optnet-tv", length=10, lam=4.0))
    torch.testing.assert_close(from_tv.D.detach(), dn.difference_matrix(10))
    assert float(from_tv.lam) == 4.0
    pure = dn.build_model(dn.ModelConfig("optnet", length=10), seed=1)
    assert pure.D.shape == (9, 10) and 0.15 < float(pure.D.detach().std()) < 0.45
    with pytest.raises(ValueError, match="unknown model kind"):
        dn.build_model(dn.ModelConfig("nope"))


# ---- checkpoints and CLI ------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    config = dn.ModelConfig("optnet", length=12)
    model = dn.build_model(config, seed=3)
    dn.save_checkpoint(tmp_path / "m.pt", model, config, {"data": {}})
    loaded, loaded_config, _ = dn.load_checkpoint(tmp_path / "m.pt")
    assert loaded_config == config
    torch.testing.assert_close(loaded.D, model.D)
    y = torch.randn(3, 12, dtype=torch.float64) * 10 + 50
    torch.testing.assert_close(loaded(y), model(y))


def test_cli_train_then_eval_json(tmp_path, capsys):
    out = tmp_path / "run"
    code = run_cli(
        ["denoise", "train", "--model", "fc", "--epochs", "2", "--n-train", "40", "--n-test", "10",
         "--batch-size", "20", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert (out / "examples.png").stat().st_size > 0 and (out / "curves.png").exists()
    capsys.readouterr()
    assert run_cli(["denoise", "eval", "--checkpoint", str(out / "model.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 10
    assert result["test_mse"] == pytest.approx(history[-1]["test_mse"], rel=1e-6)
