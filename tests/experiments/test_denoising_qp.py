"""Tests of the general-QP denoiser (``optnet-qp-tv``): the paper's QP layer in z = (x, t),
started at the TV solution, every QP parameter learned."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.func import functional_call

from optnet import SolverOptions
from optnet.cli import main as optnet_main
from optnet_experiments.denoising.data import SignalConfig, make_dataset, make_signals
from optnet_experiments.denoising.models import (
    DEFAULT_CENTER,
    QP_PARAMETERS,
    ModelConfig,
    QPDenoiser,
    TVDenoiser,
    build_model,
    difference_matrix,
    load_model,
    save_model,
    tv_epigraph_qp,
)
from optnet_experiments.denoising.train import (
    TrainConfig,
    evaluate,
    train,
    train_step,
)
from optnet_experiments.errors import ConfigError
from optnet_experiments.json_lines import read_json_lines

from .test_denoising import tv_reference

TIGHT = SolverOptions(eps_abs=1e-11, eps_rel=1e-11, max_iter=100)


def signals(count: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    clean, noisy, _ = make_signals(count, seed=seed, config=SignalConfig(length=length))
    return clean, noisy


def test_tv_epigraph_qp_blocks():
    Q, W, p0, G, h = tv_epigraph_qp(5, 3.0)
    n, m = 9, 8
    assert Q.shape == (n, n) and W.shape == (n, 5) and p0.shape == (n,)
    assert G.shape == (m, n) and h.shape == (m,)
    torch.testing.assert_close(Q, torch.diag(torch.tensor([1.0] * 5 + [0.0] * 4)).double())
    D = difference_matrix(5)
    torch.testing.assert_close(G[:4, :5], D)
    torch.testing.assert_close(G[4:, :5], -D)
    torch.testing.assert_close(G[:, 5:], -torch.eye(4, dtype=torch.float64).repeat(2, 1))
    assert torch.equal(p0, torch.tensor([0.0] * 5 + [3.0] * 4, dtype=torch.float64))
    assert not h.any()


@pytest.mark.parametrize("center", [0.0, DEFAULT_CENTER])
@pytest.mark.parametrize("lam", [0.5, 7.0, 21.0])
def test_tv_start_is_the_tv_solution(lam, center):
    # The untrained general QP is TV: against Clarabel on the epigraph form (independent) and
    # against the dual-form TVDenoiser, signal by signal. Clarabel stops at its tolerances
    # (x off by up to 1e-4 at lam 0.5 on these signals of size ~50), so against it: the TV
    # objective is no worse than Clarabel's and x is close; against the dual: x to 1e-7.
    clean, noisy = signals(4, 30, seed=1)
    model = QPDenoiser(30, lam, center=center, options=TIGHT)
    with torch.no_grad():
        x = model(noisy)
        dual = TVDenoiser(difference_matrix(30), lam, learn_D=False, options=TIGHT)(noisy)
    assert model.last_unsolved == 0 and x.shape == (4, 30)
    D = difference_matrix(30).numpy()

    def tv_objective(x, y):
        return 0.5 * np.sum((x - y) ** 2) + lam * np.abs(D @ x).sum()

    for xi, yi in zip(x.numpy(), noisy.numpy(), strict=True):
        reference = tv_reference(yi, lam)
        np.testing.assert_allclose(xi, reference, atol=1e-3)
        assert tv_objective(xi, yi) <= tv_objective(reference, yi) + 1e-9
    torch.testing.assert_close(x, dual, atol=1e-7, rtol=0)


def test_tv_start_test_mse_equals_tv_on_the_paper_data():
    # Epoch 0 of optnet-qp-tv is the TV baseline: the same MSE on 100 paper signals.
    data = make_dataset(0, n_train=0, n_test=100)
    qp = build_model(ModelConfig("optnet-qp-tv", lam=21.0))
    tv = build_model(ModelConfig("tv", lam=21.0))
    mse_qp, unsolved = evaluate(qp, data.test_clean, data.test_noisy)
    mse_tv, _ = evaluate(tv, data.test_clean, data.test_noisy)
    assert unsolved == 0
    assert mse_qp == pytest.approx(mse_tv, rel=1e-8)


def test_eps_ridge_keeps_Q_positive_definite_and_moves_x_by_order_eps():
    clean, noisy = signals(3, 20)
    model = QPDenoiser(20, 10.0, eps=1e-4, options=TIGHT)
    with torch.no_grad():
        exact = QPDenoiser(20, 10.0, options=TIGHT)(noisy)
        Q, _, _ = model.qp_data()
        diff = float((model(noisy) - exact).abs().max())
    assert float(torch.linalg.eigvalsh(Q).min()) == pytest.approx(1e-4, rel=1e-6)
    assert 0 < diff < 1e-1  # the solution moves, a little


def test_learn_picks_the_parameters_and_the_rest_are_buffers():
    model = QPDenoiser(10, 2.0, learn=("G", "h"))
    assert sorted(name for name, _ in model.named_parameters()) == ["G", "h"]
    assert sorted(model.state_dict()) == ["F", "G", "W", "h", "p0"]
    full = QPDenoiser(10, 2.0)
    assert sorted(name for name, _ in full.named_parameters()) == ["F", "G", "W", "h", "p0"]
    with pytest.raises(ConfigError, match="unknown QP parameter"):
        QPDenoiser(10, 2.0, learn=("Q", "D"))
    with pytest.raises(ConfigError, match="eps"):
        QPDenoiser(10, 2.0, eps=1.0)


def test_gradients_reach_every_learned_parameter():
    clean, noisy = signals(6, 16)
    model = QPDenoiser(16, 8.0, center=DEFAULT_CENTER)
    loss = (model(noisy) - clean).pow(2).mean()
    loss.backward()
    for name, value in model.named_parameters():
        assert value.grad is not None and torch.isfinite(value.grad).all(), name
        assert float(value.grad.abs().max()) > 1e-6, name  # each group moves the loss
    assert model.F.grad.shape == (31, 31) and model.W.grad.shape == (31, 16)


def test_parameter_gradients_match_finite_differences():
    # gradcheck of x in every parameter, at a generic point near the TV start (small random
    # perturbations: strictly complementary, so x is differentiable there).
    torch.manual_seed(0)
    length = 5
    model = QPDenoiser(length, 1.5, options=TIGHT)
    y = torch.tensor([[1.0, 1.4, 0.7, 3.0, 3.2], [0.2, -1.0, -0.8, 2.5, 2.0]], dtype=torch.float64)
    names = [name for name, _ in model.named_parameters()]
    start = [
        value.detach() + 0.02 * torch.randn_like(value) for _, value in model.named_parameters()
    ]

    def x_of(*params):
        return functional_call(model, dict(zip(names, params, strict=True)), (y,))

    inputs = tuple(value.clone().requires_grad_() for value in start)
    assert torch.autograd.gradcheck(x_of, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_one_training_step_lowers_the_loss():
    clean, noisy = signals(16, 20, seed=5)
    model = build_model(ModelConfig("optnet-qp-tv", length=20, lam=15.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)

    def loss():
        with torch.no_grad():
            return float((model(noisy) - clean).pow(2).mean())

    before = loss()
    train_step(model, optimizer, clean, noisy)
    assert loss() < before


def test_checkpoint_round_trip(tmp_path):
    config = ModelConfig("optnet-qp-tv", length=12, lam=4.0, learn="Q,G", center=3.0, eps=1e-6)
    model = build_model(config)
    with torch.no_grad():  # move the learned parameters off the start
        model.F.add_(0.01 * torch.randn_like(model.F))
        model.G.add_(0.01 * torch.randn_like(model.G))
    save_model(tmp_path / "m.pt", model, config, data={})
    loaded, loaded_config, checkpoint = load_model(tmp_path / "m.pt")
    assert loaded_config == config and checkpoint.spec.kind == "optnet-qp-tv"
    assert loaded.learn == ("Q", "G") and loaded.center == 3.0 and loaded.eps == 1e-6
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)
    y = torch.randn(3, 12, dtype=torch.float64) * 10 + 50
    with torch.no_grad():
        torch.testing.assert_close(loaded(y), model(y))


def test_train_epoch_zero_is_tv_and_records_the_moves(tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(
        model="optnet-qp-tv", out=str(out), epochs=2, n_train=20, n_test=10, batch_size=10,
        lam=21.0, learn="G,h", lr=1e-3, lr_schedule="cosine",
    )  # fmt: skip
    result = train(config)
    records = result.records
    assert [r["epoch"] for r in records] == [0, 1, 2]
    data = make_dataset(0, n_train=20, n_test=10)
    tv = build_model(ModelConfig("tv", lam=21.0))
    assert records[0]["test_mse"] == pytest.approx(
        evaluate(tv, data.test_clean, data.test_noisy)[0], rel=1e-8
    )
    assert records[0]["moved_G"] == 0.0 and records[2]["moved_G"] > records[1]["moved_G"] > 0
    assert set(k for k in records[1] if k.startswith("moved_")) == {"moved_G", "moved_h"}
    # 4 steps on a cosine from 1e-3: the last (the 4th) at 3/4 of the run
    assert records[2]["lr"] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(0.75 * np.pi)))
    assert all(r["unsolved"] == 0 for r in records)
    _, loaded_config, _ = load_model(out / "model.pt")
    assert loaded_config.learn == "G,h" and loaded_config.kind == "optnet-qp-tv"


def test_cli_train_smoke(tmp_path, capsys):
    out = tmp_path / "run"
    code = optnet_main(
        ["denoise", "train", "--model", "optnet-qp-tv", "--lam", "21", "--epochs", "1",
         "--n-train", "10", "--n-test", "10", "--batch-size", "10", "--dtype", "float32",
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    history = read_json_lines(out / "history.jsonl")
    assert [r["epoch"] for r in history] == [0, 1]
    assert (out / "curves.png").stat().st_size > 0 and (out / "examples.png").exists()
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "optnet-qp-tv" and summary["lambda"] == 21.0
    _, config, checkpoint = load_model(out / "model.pt")
    assert config.learn == ",".join(QP_PARAMETERS) and checkpoint.spec.dtype == "float32"


def test_cli_nothing_to_learn_is_an_error_line(tmp_path, capsys):
    code = optnet_main(
        ["denoise", "train", "--model", "optnet-qp-tv", "--lam", "21", "--learn", "",
         "--n-train", "10", "--n-test", "10", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    assert code == 2
    assert "nothing to learn" in capsys.readouterr().err


def test_cli_help_shows_the_qp_defaults(capsys):
    with pytest.raises(SystemExit):
        optnet_main(["denoise", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "optnet-qp-tv" in text and "(default: Q,p,G,h)" in text
    assert f"(default: {DEFAULT_CENTER:g})" in text and "(default: constant)" in text
