"""Data-parallel training: 2 CPU processes (gloo) take the same step as one process."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from optnet.cli import main as optnet_main
from optnet_experiments.distributed import DistributedContext
from optnet_experiments.sudoku.data import generate_sudoku, save_sudoku
from optnet_experiments.sudoku.models import build_model


def run(argv: list[str]) -> int:
    return optnet_main(["sudoku", *argv])


def test_shards_cover_the_global_batch():
    batch = torch.arange(17)
    shards = [
        DistributedContext(r, 2, torch.device("cpu"), active=True).shard(batch) for r in (0, 1)
    ]
    assert [len(s) for s in shards] == [9, 8]
    assert torch.equal(torch.cat(shards), batch)
    assert torch.equal(DistributedContext(0, 1, torch.device("cpu")).shard(batch), batch)


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")
def test_two_process_step_equals_single_process_step(tmp_path, restore_threads):
    # 19 puzzles: 17 train (one global batch, shards of 9 and 8) and 2 test.
    save_sudoku(generate_sudoku(2, 19, seed=11), tmp_path / "data")
    common = ["train", "--model", "optnet", "--dtype", "float64", "--epochs", "1"]
    # Plain SGD: the step is proportional to the gradient, so a wrong average would show
    # (Adam's first step is about lr * sign(gradient) and would hide a scale error).
    common += ["--batch-size", "17", "--optimizer", "sgd", "--lr", "2.0"]
    common += ["--data", str(tmp_path / "data")]
    # One thread in this process, like each of the two spawned processes on 2 cores.
    assert run([*common, "--out", str(tmp_path / "single"), "--threads", "1"]) == 0
    assert run([*common, "--out", str(tmp_path / "ddp"), "--distributed", "--nproc", "2"]) == 0

    def trained_A(folder):
        return torch.load(tmp_path / folder / "optnet.pt", weights_only=True)["state_dict"]["A"]

    single, ddp = trained_A("single"), trained_A("ddp")
    torch.manual_seed(0)  # the seed of --seed 0: the initial A of both runs
    initial = build_model("optnet", {"board": 2, "n_eq": 40, "q": 0.1, "dtype": "float64"}).A
    assert (single - initial.detach()).abs().max() > 1e-3  # the step did move A
    torch.testing.assert_close(ddp, single, rtol=1e-10, atol=1e-12)
