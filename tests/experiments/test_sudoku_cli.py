"""The ``optnet sudoku`` command: generate -> train -> eval on tiny data, and the demo fallback."""

from __future__ import annotations

import json

import pytest
import torch

from optnet.cli import main as optnet_main
from optnet_experiments.data_paths import DATA_ENV
from optnet_experiments.json_lines import read_json_lines
from optnet_experiments.sudoku.data import load_sudoku


def run(argv: list[str]) -> int:
    return optnet_main(["sudoku", *argv])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sudoku_tiny")
    assert run(["generate", "--board", "2", "--n", "40", "--seed", "5", "--out", str(folder)]) == 0
    return folder


def test_generate_writes_the_data_format(tiny_dir):
    data = load_sudoku(tiny_dir)
    assert data.features.shape == (40, 4, 4, 4)
    assert json.loads((tiny_dir / "meta.json").read_text())["seed"] == 5


@pytest.mark.parametrize(
    "model, extra", [("optnet", []), ("conv", ["--depth", "1", "--width", "4"])]
)
def test_train_then_eval(model, extra, tiny_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", model, "--epochs", "2", "--batch-size", "12"]
    argv += ["--data", str(tiny_dir), "--out", str(out), *extra]
    assert run(argv) == 0
    records = read_json_lines(out / f"{model}.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("train_loss", "test_loss", "test_strict_error", "test_paper_error", "epoch_time_s"):
        assert all(isinstance(r[key], float) for r in records)
    assert (out / f"{model}_error.png").stat().st_size > 1000
    assert (out / f"{model}.best.pt").is_file()
    capsys.readouterr()

    checkpoint = out / f"{model}.pt"
    assert run(["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"strict_error", "paper_error", "n"}
    assert result["n"] == 40

    run(["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_dir), "--split", "test"])
    test = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert test["n"] == 4
    # The checkpoint holds the last epoch's model, so eval reproduces its logged test error.
    assert test["strict_error"] == pytest.approx(records[-1]["test_strict_error"])
    assert test["paper_error"] == pytest.approx(records[-1]["test_paper_error"])


def test_train_rejects_options_of_another_model(tiny_dir, tmp_path, capsys):
    argv = ["train", "--model", "optnet", "--width", "3", "--data", str(tiny_dir)]
    assert run([*argv, "--out", str(tmp_path)]) == 2
    assert "--depth/--width apply to the conv and fc baselines" in capsys.readouterr().err


def test_eval_of_a_missing_data_folder_is_an_error_line(tmp_path, capsys):
    argv = ["eval", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path / "no")]
    assert run(argv) == 2
    assert capsys.readouterr().err.startswith("optnet sudoku eval: error:")


def test_demo_falls_back_to_generated_data(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--data", str(tmp_path / "absent"), "--out", str(out)]
    assert run([*argv, "--limit", "30", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "not found; generating 30 seeded 4x4 puzzles" in printed
    assert str(out / "optnet_error.png") in printed
    assert len(load_sudoku(out / "data")) == 30
    checkpoint = torch.load(out / "optnet.pt", weights_only=True)
    assert checkpoint["hparams"]["dtype"] == "float32"


def test_demo_reads_the_data_under_optnet_data(tmp_path, capsys, monkeypatch):
    # No --data: the demo reads $OPTNET_DATA/sudoku4 (here 30 generated puzzles).
    assert run(["generate", "--n", "30", "--seed", "2", "--out", str(tmp_path / "sudoku4")]) == 0
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    out = tmp_path / "demo"
    assert run(["demo", "--out", str(out), "--limit", "30", "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"the OptNet paper's 4x4 puzzles from {tmp_path / 'sudoku4'}" in printed
    assert not (out / "data").exists()
