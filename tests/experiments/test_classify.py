"""Tests of the digits classification experiment (data split, models, training, CLI)."""

from __future__ import annotations

import json

import pytest
import torch

from optnet.cli import main as optnet_main
from optnet_experiments.checkpoints import read_checkpoint
from optnet_experiments.classify.data import load_digits_split
from optnet_experiments.classify.models import (
    MODEL_KINDS,
    ClassifierConfig,
    DigitClassifier,
    load_model,
    save_model,
)
from optnet_experiments.classify.train import summarize, train_epoch
from optnet_experiments.json_lines import read_json_lines


def test_split_sizes_ranges_and_stratification():
    split = load_digits_split(0)
    assert split.train_x.shape == (1437, 64) and split.test_x.shape == (360, 64)
    assert split.train_x.dtype == torch.float32 and split.train_y.dtype == torch.int64
    assert split.train_x.min() >= 0 and split.train_x.max() <= 1
    train_share = torch.bincount(split.train_y, minlength=10) / len(split.train_y)
    test_share = torch.bincount(split.test_y, minlength=10) / len(split.test_y)
    assert (train_share - test_share).abs().max() < 0.01


def test_split_seeding():
    a, b, c = load_digits_split(1), load_digits_split(1), load_digits_split(2)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.test_x, c.test_x)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_model_outputs_log_probabilities(kind):
    torch.manual_seed(0)
    model = DigitClassifier(ClassifierConfig(kind, hidden=32, n_ineq=12))
    out = model(torch.rand(5, 64))
    assert out.shape == (5, 10) and out.dtype == torch.float32
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(5))


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_one_training_step_lowers_the_loss(kind):
    torch.manual_seed(0)
    split = load_digits_split(0)
    x, y = split.train_x[:32], split.train_y[:32]
    model = DigitClassifier(ClassifierConfig(kind, hidden=32, n_ineq=12))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss():
        with torch.no_grad():
            return float(torch.nn.functional.nll_loss(model(x), y))

    before = loss()
    train_epoch(model, optimizer, x, y, batch_size=32, generator=torch.Generator())
    assert loss() < before


def test_optnet_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    config = ClassifierConfig("optnet", hidden=16, n_ineq=8)
    model = DigitClassifier(config)
    save_model(tmp_path / "m.pt", model, config, seed=0)
    loaded, loaded_config, checkpoint = load_model(tmp_path / "m.pt")
    assert loaded_config == config and checkpoint.metadata == {"seed": 0}
    x = torch.rand(4, 64)
    torch.testing.assert_close(loaded(x), model(x))


def test_summarize():
    results = [{"seed": s, "test_error": e} for s, e in [(0, 0.1), (1, 0.2), (2, 0.3)]]
    summary = summarize(results)
    assert summary["test_error_mean"] == pytest.approx(0.2)
    assert summary["test_error_std"] == pytest.approx(0.1)  # sample std
    assert summary["seeds"] == [0, 1, 2]


def test_cli_train_seeds_then_eval_json(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["classify", "train", "--model", "fc", "--seeds", "0", "1", "--epochs", "2"]
    assert optnet_main([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["test_errors"]) == 2
    history = read_json_lines(out / "seed1" / "history.jsonl")
    assert [r["epoch"] for r in history] == [1, 2]
    best = read_checkpoint(out / "seed1" / "best.pt")
    assert best.metadata["metrics"]["test_error"] == min(r["test_error"] for r in history)
    capsys.readouterr()
    ckpt = out / "seed1" / "model.pt"
    assert optnet_main(["classify", "eval", "--checkpoint", str(ckpt), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result == {"test_error": history[-1]["test_error"], "n": 360, "model": "fc", "seed": 1}
