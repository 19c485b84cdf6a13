"""9x9 Sudoku: the parallel generator, the train/val/test split, OptNet's initializations (the
constraints from the solutions), the relaxation with the true constraints, time-limited and
scheduled training, eval with the board from the checkpoint, the plots and the GPU script's
report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optnet.cli import main as optnet_main
from optnet_experiments.checkpoints import read_checkpoint
from optnet_experiments.data_paths import DATA_ENV
from optnet_experiments.errors import ConfigError
from optnet_experiments.json_lines import read_json_lines
from optnet_experiments.sudoku import cli as sudoku
from optnet_experiments.sudoku import data as sudoku_data
from optnet_experiments.sudoku.boards import constraint_matrix, count_solutions, one_hot_to_grid
from optnet_experiments.sudoku.data import (
    DEFAULT_GIVENS,
    SudokuData,
    generate_sudoku,
    save_sudoku,
    split_train_val_test,
)
from optnet_experiments.sudoku.models import (
    SudokuOptNet,
    build_model,
    flat_count,
    flat_directions,
    load_model,
    row_basis,
    save_model,
)
from optnet_experiments.sudoku.plots import plot_errors, plot_runs
from optnet_experiments.sudoku.report import collect
from optnet_experiments.sudoku.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str]) -> int:
    return optnet_main(["sudoku", *argv])


@pytest.fixture(scope="module")
def data4():
    return generate_sudoku(2, 60, seed=11)


@pytest.fixture(scope="module")
def dir9(tmp_path_factory):
    """Six 9x9 puzzles: with --val-fraction 0.2, 4 train, 1 validation, 1 test."""
    folder = tmp_path_factory.mktemp("sudoku9") / "sudoku9"
    argv = ["generate", "--board", "3", "--n", "6", "--givens", "31,41", "--seed", "3"]
    assert run([*argv, "--out", str(folder), "--workers", "1"]) == 0
    return folder


# ---- data ---------------------------------------------------------------------------------


def test_parallel_generation_gives_the_same_puzzles(monkeypatch):
    monkeypatch.setattr(sudoku_data, "_MIN_PUZZLES_PER_WORKER", 1)
    one = generate_sudoku(2, 12, seed=5)
    two = generate_sudoku(2, 12, seed=5, workers=2)
    assert torch.equal(one.features, two.features) and torch.equal(one.labels, two.labels)
    with pytest.raises(ConfigError, match="workers"):
        generate_sudoku(2, 2, seed=0, workers=0)


def test_9x9_default_is_satnets_difficulty(dir9):
    assert DEFAULT_GIVENS[3] == (31, 41)
    meta = json.loads((dir9 / "meta.json").read_text())
    assert meta["givens"] == [31, 41] and meta["board"] == 3
    features = torch.load(dir9 / "features.pt", weights_only=True)
    assert features.shape == (6, 9, 9, 9)
    givens = features.sum((1, 2, 3))
    assert ((givens >= 31) & (givens <= 41)).all()
    assert count_solutions(one_hot_to_grid(features[0]), 3) == 1


@pytest.mark.parametrize("text, expected", [(["31,41"], (31, 41)), (["4", "6"], (4, 6))])
def test_givens_option_takes_both_spellings(text, expected):
    assert sudoku.parse_givens(text, 3) == expected
    assert sudoku.parse_givens(None, 3) == DEFAULT_GIVENS[3]
    with pytest.raises(ConfigError, match="LOW,HIGH"):
        sudoku.parse_givens(["31"], 3)


def test_train_val_test_split_by_position():
    data = SudokuData(torch.zeros(100, 4, 4, 4), torch.zeros(100, 4, 4, 4))
    data.features[:, 0, 0, 0] = torch.arange(100.0)
    train_set, val, test = split_train_val_test(data, val_fraction=0.05)
    assert (len(train_set), len(val), len(test)) == (85, 5, 10)
    assert val.features[:, 0, 0, 0].tolist() == [85.0, 86.0, 87.0, 88.0, 89.0]
    assert test.features[0, 0, 0, 0] == 90.0  # the test split does not depend on val
    assert split_train_val_test(data)[1] is None
    with pytest.raises(ConfigError, match="validation fraction"):
        split_train_val_test(data, val_fraction=1.0)


# ---- the model ----------------------------------------------------------------------------


def test_constraints_are_learned_from_the_solutions(data4):
    solutions = data4.labels.reshape(len(data4), -1)
    assert flat_count(solutions) == 40  # the rank of the true 4x4 constraints
    learned = flat_directions(solutions, 40)
    exact = row_basis(constraint_matrix(2), 40)
    # Same row space: every principal angle between the two is 0.
    cosines = torch.linalg.svdvals(learned @ exact.T)
    torch.testing.assert_close(cosines, torch.ones(40, dtype=torch.float64), atol=1e-9, rtol=0)
    # Too few solutions: fewer varying directions, so more flat ones than constraints.
    assert flat_count(solutions[:10]) == 64 - 9


def test_exact_constraints_solve_4x4_puzzles(data4):
    model = SudokuOptNet(2, 40, q=0.1)
    model.initialize("exact")
    with torch.no_grad():
        boards = model(data4.features[:20].double())
    assert (boards.argmax(-1) == data4.labels[:20].argmax(-1)).all()
    with pytest.raises(ConfigError, match="init must be one of"):
        model.initialize("zeros")
    with pytest.raises(ConfigError, match="needs the training solutions"):
        model.initialize("solutions")


def test_checkpoint_keeps_only_A_and_reads_older_ones(tmp_path):
    torch.manual_seed(0)
    hparams = {"board": 2, "n_eq": 40, "q": 0.1, "dtype": "float64"}
    model = build_model("optnet", hparams)
    assert set(model.state_dict()) == {"A"}
    # An older checkpoint also held the derived buffers: they are ignored on loading.
    path = save_model(tmp_path / "m.pt", model, "optnet", hparams)
    payload = torch.load(path, weights_only=True)
    n = 64
    payload["state_dict"].update(
        Q=0.1 * torch.eye(n, dtype=torch.float64), G=-torch.eye(n, dtype=torch.float64),
        h=torch.zeros(n, dtype=torch.float64), z0=torch.full((n,), 0.25, dtype=torch.float64),
    )  # fmt: skip
    torch.save(payload, path)
    restored, _ = load_model(path)
    torch.testing.assert_close(restored.A, model.A)


# ---- training -----------------------------------------------------------------------------


def test_validation_split_picks_the_best_checkpoint(data4, tmp_path):
    folder = save_sudoku(data4, tmp_path / "data")
    config = TrainConfig(
        model="optnet", hparams={"dtype": "float64"}, epochs=1, batch_size=20, lr=0.1,
        data=str(folder), val_fraction=0.1, init="solutions", eval_initial=True,
        out=str(tmp_path / "run"), show_progress=False,
    )  # fmt: skip
    records = train(config)
    assert [r["epoch"] for r in records] == [0, 1]
    first = records[0]
    assert first["batches"] == 0 and first["val_strict_error"] == 0.0  # the learned rules
    assert first["test_strict_error"] == 0.0
    for key in ("val_loss", "val_strict_error", "val_paper_error", "lr"):
        assert key in records[1]
    best = read_checkpoint(tmp_path / "run" / "optnet.best.pt")
    assert best.metadata["monitor"] == "val_strict_error"
    assert best.metadata["init"] == "solutions" and best.metadata["val_fraction"] == 0.1
    assert best.spec.hparams["n_eq"] == 40  # learned from the solutions


def test_time_limit_stops_before_any_batch(data4, tmp_path):
    folder = save_sudoku(data4, tmp_path / "data")
    config = TrainConfig(
        model="fc", hparams={"depth": 1, "width": 8}, epochs=50, batch_size=10,
        data=str(folder), time_limit=0.0, out=str(tmp_path / "run"), show_progress=False,
    )  # fmt: skip
    records = train(config)
    assert len(records) == 1 and records[0]["batches"] == 0
    assert records[0]["train_loss"] is None and records[0]["test_strict_error"] is not None


def test_board_option_is_checked_against_the_data(data4, tmp_path, capsys):
    folder = save_sudoku(data4, tmp_path / "data")
    argv = ["train", "--board", "3", "--data", str(folder), "--out", str(tmp_path / "run")]
    assert run(argv) == 2
    assert "--board 3 asks for 9x9 boards but the data set has 4x4" in capsys.readouterr().err


def test_9x9_train_then_eval_with_the_board_from_the_checkpoint(
    dir9, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    argv = ["train", "--board", "3", "--data", str(dir9), "--out", str(out), "--epochs", "1"]
    argv += ["--batch-size", "4", "--val-fraction", "0.2", "--dtype", "float32", "--lr", "1e-3"]
    assert run([*argv, "--init", "solutions", "--eval-initial", "--time-limit", "60"]) == 0
    records = read_json_lines(out / "optnet.jsonl")
    assert [r["epoch"] for r in records] == [0, 1] and records[1]["batches"] == 1
    assert (out / "optnet_error.png").stat().st_size > 1000
    checkpoint = out / "optnet.best.pt"
    # A only: 4 solutions vary in 3 directions, so 726 flat ones, 726 x 729 float32 (2.1 MB).
    assert checkpoint.stat().st_size < 726 * 729 * 4 + 100_000
    capsys.readouterr()

    # No --data: the checkpoint's board picks $OPTNET_DATA/sudoku9.
    monkeypatch.setenv(DATA_ENV, str(dir9.parent))
    assert run(["eval", "--checkpoint", str(checkpoint), "--split", "test", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"strict_error", "paper_error", "n"} and last["n"] == 1
    best = read_checkpoint(checkpoint).metadata["metrics"]
    assert last["strict_error"] == pytest.approx(best["test_strict_error"])
    assert run(["eval", "--checkpoint", str(checkpoint), "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert "[val]" in printed and json.loads(printed.splitlines()[-1])["n"] == 1


def test_eval_rejects_data_of_another_board(dir9, data4, tmp_path, capsys):
    hparams = {"board": 2, "n_eq": 40, "q": 0.1, "dtype": "float64"}
    path = save_model(tmp_path / "m.pt", build_model("optnet", hparams), "optnet", hparams)
    assert run(["eval", "--checkpoint", str(path), "--data", str(dir9)]) == 2
    assert "is a 4x4 model but" in capsys.readouterr().err
    assert run(["eval", "--checkpoint", str(path), "--data", str(dir9), "--split", "val"]) == 2


def test_relaxation_command(data4, tmp_path, capsys):
    folder = save_sudoku(data4, tmp_path / "data")
    argv = ["relaxation", "--board", "2", "--data", str(folder), "--q", "0.1", "0.05"]
    assert run([*argv, "--limit", "20", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["q"] for r in lines] == [0.1, 0.05]
    assert all(r["strict_error"] == 0.0 and r["n"] == 20 for r in lines)


# ---- plots and the GPU script's report ----------------------------------------------------


def test_error_plot_takes_zeros_and_missing_splits(tmp_path):
    records = [
        {"epoch": 0, "test_strict_error": 0.5, "test_paper_error": 0.4, "val_strict_error": 0.3},
        {"epoch": 1, "train_strict_error": 0.2, "test_strict_error": 0.0, "test_paper_error": 0.0,
         "val_strict_error": None},
    ]  # fmt: skip
    assert plot_errors(records, tmp_path / "a.png", title="t").stat().st_size > 1000
    path = plot_runs({"x": records, "y": records[:1]}, tmp_path / "b.png", title="t")
    assert path.stat().st_size > 1000


def test_log_axis_has_plain_tick_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optnet_experiments.plotting import plain_log_ticks

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [102.0, 61.0, 45.0])
    ax.set_yscale("log")
    plain_log_ticks(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    labels += [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    plt.close(fig)
    assert "60" in labels and "100" in labels
    assert not any("times" in label or "^" in label for label in labels)


def test_report_collects_runs_and_picks_the_optnet_checkpoint(data4, tmp_path, capsys):
    folder = save_sudoku(data4, tmp_path / "data")
    runs = tmp_path / "runs"
    base = {"epochs": 1, "batch_size": 27, "data": str(folder), "val_fraction": 0.1}
    train(TrainConfig(model="optnet", lr=0.1, out=str(runs / "optnet_rand"), **base))
    train(TrainConfig(model="fc", hparams={"depth": 1, "width": 8}, out=str(runs / "conv"), **base))
    out = tmp_path / "out"
    summary = collect(runs, folder, out)
    assert summary["sudoku9.pt"] == "optnet_rand" and summary["missing"] == ["optnet_solutions"]
    assert set(summary["conv"]) >= {"strict_error", "paper_error", "n", "best_epoch"}
    assert summary["conv"]["n"] == 6
    names = {"summary.json", "sudoku9.jsonl", "sudoku9.pt", "sudoku9_error.png"}
    assert {p.name for p in out.iterdir()} == names
    tags = {r["run"] for r in read_json_lines(out / "sudoku9.jsonl")}
    assert tags == {"optnet_rand", "conv"}
    # Where the GPU machine had no matplotlib, the plots are redrawn from the records.
    assert run(["report", "--replot", str(out / "sudoku9.jsonl"), str(tmp_path / "plots")]) == 0
    drawn = {p.name for p in (tmp_path / "plots").iterdir()}
    assert drawn == {"sudoku9_error.png", "optnet_rand_error.png", "conv_error.png"}


@pytest.mark.slow
def test_gpu_script_runs_on_cpu_with_tiny_sizes(tmp_path):
    """The GPU script end to end on CPU (about 1.5 minutes on 2 cores): DEVICE=cpu N=40."""
    env = {
        **os.environ, "DEVICE": "cpu", "N": "40", "EPOCHS": "1", "BATCH": "8", "OUT": str(tmp_path),
        "T_SOLUTIONS": "5", "T_CONV": "5", "T_RAND": "10", "MIN_RAND": "10", "MARGIN": "40",
        "CONV_DEPTH": "1", "CONV_WIDTH": "8", "WORKERS": "1", "TOTAL": "400",
        "PYTHON": sys.executable,
    }  # fmt: skip
    done = subprocess.run(
        ["bash", str(REPO / "experiments" / "gpu_sudoku9.sh")], env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert {p.name for p in tmp_path.iterdir()} == {
        "optnet_rand_error.png", "summary.json", "sudoku9.jsonl", "sudoku9.log", "sudoku9.pt",
        "sudoku9_error.png",
    }  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["missing"] == [] and summary["sudoku9.pt"].startswith("optnet")
