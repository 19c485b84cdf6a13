"""What the experiments share: data folders, the checkpoint format, the learning-rate schedule,
the training loop, the command-line kit, the commands' registration and help."""

from __future__ import annotations

import argparse
import math
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from torch import nn

from optnet_experiments.checkpoints import (
    ModelSpec,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from optnet_experiments.cli import REQUIRED, add_command, shared
from optnet_experiments.data_paths import DATA_ENV, data_dir
from optnet_experiments.errors import ConfigError
from optnet_experiments.json_lines import JsonLines, read_json_lines
from optnet_experiments.training import LearningRate, fit

# ---- data folders -------------------------------------------------------------------------


def test_data_dir_option_beats_environment_beats_default(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_dir("sudoku4") == Path("../shared/data/sudoku4")
    monkeypatch.setenv(DATA_ENV, "")  # empty: as if unset
    assert data_dir("sudoku4") == Path("../shared/data/sudoku4")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir("sudoku4") == tmp_path / "sudoku4"
    # The option is the data set's own folder: taken as is, whatever the environment says.
    assert data_dir("sudoku4", tmp_path / "mine") == tmp_path / "mine"
    assert data_dir("sudoku4", "rel/dir") == Path("rel/dir")


def test_default_data_root_is_relative_to_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_dir("x").resolve() == (tmp_path.parent / "shared" / "data" / "x").resolve()


# ---- checkpoints --------------------------------------------------------------------------

SPEC = ModelSpec("toy", "linear", {"n": 3, "bias": True, "sizes": [1, 2]}, "float64")


def _toy(spec: ModelSpec) -> nn.Module:
    return nn.Linear(spec.hparams["n"], 2, bias=spec.hparams["bias"]).double()


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = _toy(SPEC)
    metadata = {"epoch": 4, "metrics": {"loss": 0.5, "note": None}, "history": [{"epoch": 1}]}
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, SPEC, metadata)
    assert path.is_file() and not list(path.parent.glob("*.partial"))
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)  # the file holds the weights as they were when saved

    checkpoint = read_checkpoint(path, experiment="toy")
    assert checkpoint.spec == SPEC and checkpoint.metadata == metadata
    assert checkpoint.state_dict.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(checkpoint.state_dict[name], value)

    restored, again = load_checkpoint(path, _toy, experiment="toy")
    assert not restored.training and again.spec == SPEC
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(restored(x), x @ expected["weight"].T + expected["bias"])


def test_checkpoint_rejects_other_files_and_experiments(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(ConfigError, match="not a checkpoint written by an `optnet` experiment"):
        read_checkpoint(tmp_path / "plain.pt")
    save_checkpoint(tmp_path / "toy.pt", _toy(SPEC), SPEC)
    with pytest.raises(ConfigError, match="of the toy experiment, not of sudoku"):
        load_checkpoint(tmp_path / "toy.pt", _toy, experiment="sudoku")


# ---- the learning-rate schedule -----------------------------------------------------------


def test_cosine_learning_rate_follows_steps_or_time():
    constant = LearningRate("constant", 0.1, 10, None)
    assert constant.at(9, 1e6) == 0.1
    cosine = LearningRate("cosine", 0.1, 10, None)
    assert cosine.at(0, 0.0) == pytest.approx(0.1)
    assert cosine.at(5, 0.0) == pytest.approx(0.05)
    assert cosine.at(15, 0.0) == pytest.approx(0.0)
    timed = LearningRate("cosine", 0.1, 1000, time_limit=100.0)
    assert timed.at(1, 50.0) == pytest.approx(0.05)  # half the time: half way down
    assert timed.at(1, 500.0) == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="lr schedule"):
        LearningRate("step", 0.1, 10, None)


# ---- the training loop --------------------------------------------------------------------


class _Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def _scripted_run(values: list[float], model: _Scalar):
    """An "epoch" sets w to the epoch number and reports values[epoch - 1] as the metric."""

    def run_epoch(epoch: int, wrap) -> dict:
        assert list(wrap([1, 2, 3])) == [1, 2, 3]
        with torch.no_grad():
            model.w.fill_(float(epoch))
        return {"val": values[epoch - 1]}

    return run_epoch


def _weight(path: Path) -> float:
    return float(load_checkpoint(path, lambda spec: _Scalar(), experiment="toy")[0].w.detach())


@pytest.mark.parametrize(
    "mode, values, best",
    [("min", [3.0, 1.0, 2.0, 5.0], 2), ("max", [3.0, 1.0, 4.0, 0.5], 3),
     ("min", [math.nan, 2.0, math.nan, 2.0], 2)],
)  # fmt: skip
def test_fit_logs_every_epoch_and_keeps_the_best(tmp_path, mode, values, best):
    model = _Scalar()
    spec = ModelSpec("toy", "scalar", {}, "float32")
    result = fit(
        _scripted_run(values, model), epochs=4, log=JsonLines(tmp_path / "log.jsonl"),
        model=model, spec=spec, checkpoint=tmp_path / "last.pt",
        best_checkpoint=tmp_path / "best.pt", monitor="val", mode=mode,
        metadata={"seed": 7}, show_progress=False,
    )  # fmt: skip
    assert [r["epoch"] for r in result.records] == [1, 2, 3, 4]
    assert all(r["seconds"] >= 0 for r in result.records)
    logged = read_json_lines(tmp_path / "log.jsonl")
    assert [r["epoch"] for r in logged] == [1, 2, 3, 4]
    assert result.best_epoch == best and result.best_value == values[best - 1]
    assert _weight(tmp_path / "best.pt") == best  # the best epoch's weights, not the last's
    assert _weight(tmp_path / "last.pt") == 4
    meta = read_checkpoint(tmp_path / "best.pt").metadata
    assert meta["seed"] == 7 and meta["epoch"] == best and len(meta["history"]) == best


def test_fit_stops_after_the_epoch_that_passes_the_time_limit():
    model = _Scalar()
    result = fit(
        _scripted_run([1.0] * 5, model), epochs=5, time_limit=10.0,
        start=time.perf_counter() - 11.0, show_progress=False,
    )  # fmt: skip
    assert [r["epoch"] for r in result.records] == [1] and result.time_limit_reached


def test_fit_rejects_an_unknown_monitor():
    with pytest.raises(ValueError, match="no 'loss'"):
        fit(_scripted_run([1.0], _Scalar()), epochs=1, monitor="loss", show_progress=False)


# ---- commands -----------------------------------------------------------------------------


def test_commands_are_registered_as_entry_points():
    registered = {ep.name: ep for ep in entry_points(group="optnet.commands")}
    for name, module in [("sudoku", "sudoku"), ("denoise", "denoising"), ("classify", "classify")]:
        assert registered[name].value == f"optnet_experiments.{module}.cli:register"


@pytest.mark.parametrize(
    "argv, default",
    [(["sudoku", "train"], "(default: 20)"), (["denoise", "train"], "(default: 9000)"),
     (["classify", "train"], "(default: 0.003)")],
)  # fmt: skip
def test_help_shows_the_defaults(argv, default, capsys):
    parser = argparse.ArgumentParser(prog="optnet")
    subparsers = parser.add_subparsers()
    for ep in entry_points(group="optnet.commands"):
        if ep.name in ("sudoku", "denoise", "classify"):
            ep.load()(subparsers)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*argv, "--help"])
    assert exit_info.value.code == 0
    assert default in capsys.readouterr().out


def _kit_parser(run) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optnet")
    toy = add_command(
        parser.add_subparsers(), "toy", run,
        parents=[shared(device="cpu", seed=3, threads=None, out=REQUIRED, help={"seed": "s"})],
    )  # fmt: skip
    toy.add_argument("--n", type=int, default=1, help="count")
    return parser


def test_shared_flags_take_the_command_defaults_and_help(capsys):
    parser = _kit_parser(lambda args: 0)
    args = parser.parse_args(["toy", "--out", "x"])
    assert (args.device, args.seed, args.threads, args.out) == ("cpu", 3, None, Path("x"))
    with pytest.raises(SystemExit):
        parser.parse_args(["toy"])  # --out is required
    assert "--out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["toy", "--help"])
    shown = capsys.readouterr().out
    assert "s (default: 3)" in shown and "count (default: 1)" in shown


def test_a_config_error_is_one_line_and_exit_status_2(capsys):
    def fails(args):
        raise ConfigError("no such thing")

    args = _kit_parser(fails).parse_args(["toy", "--out", "x", "--threads", "1"])
    assert args.func(args) == 2
    assert capsys.readouterr().err == "optnet toy: error: no such thing\n"
