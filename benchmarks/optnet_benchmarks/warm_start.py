"""Warm starts in the 4x4 Sudoku OptNet's training: cold vs warm-started solves.

Between two visits of a training puzzle its QP changes only by the optimizer's steps on ``A``,
so its active set (the cells held at ``z >= 0``) may stay the same. The warm run caches every
puzzle's ``QPSolution.active_set`` by sample index and passes it as ``warm_start`` the next
time the puzzle is drawn (minibatches are reshuffled every epoch); the first measured epoch
fills the cache and is cold in both runs. The two runs train two copies of one model on the
same batches in lockstep (a cold step, then a warm step), so that the load of the machine
falls on both alike; their losses must agree, since a warm start changes which solve produces
the solution, not the solution.

``--pretrain-epochs`` first trains the model (cold, not measured) at ``--pretrain-lr``: the
measured epochs then fine-tune a model that has learned the rules, where the QPs change least.

Reported per measured epoch and run: interior-point iterations (sum over the puzzles), the
fraction of puzzles solved from the guess (0 iterations), the wall time of the training steps
(forward + backward + optimizer step) and of the forward solves alone, the mean training loss
and strict error of the epoch's batches; at the end the test strict error of both models.

Example::

    optnet bench warm-start --puzzles 3000 --pretrain-epochs 3 --epochs 3
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import time

import torch

import optnet
from optnet_experiments.cli import add_shared
from optnet_experiments.data_paths import default_help
from optnet_experiments.devices import DTYPES
from optnet_experiments.sudoku.boards import strict_correct
from optnet_experiments.sudoku.data import DATA_NAME, load_sudoku, split_train_val_test
from optnet_experiments.sudoku.models import SudokuOptNet

from .measure import device_name

RUNS = ("cold", "warm")
# The options recorded with the results.
_CONFIG_KEYS = ("puzzles", "test", "pretrain_epochs", "pretrain_lr", "epochs", "lr", "batch_size",
                "dtype", "seed", "threads")  # fmt: skip


class Run:
    """One model, its optimizer, the warm start's cache and the current epoch's sums."""

    def __init__(self, model: SudokuOptNet, lr: float, size: int, warm: bool):
        self.model, self.warm = model, warm
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.cache = torch.zeros(size, model.A.shape[1], dtype=torch.bool)  # active bounds
        self.cached = torch.zeros(size, dtype=torch.bool)
        self.reset()

    def reset(self) -> None:
        self.iterations = self.from_guess = self.wrong = 0
        self.loss = self.step_s = self.solve_s = 0.0

    def step(self, index, puzzles, solutions) -> torch.Tensor:
        guess = None
        if self.warm and bool(self.cached[index].all()):
            guess = optnet.ActiveSet(lb=self.cache[index])
        start = time.perf_counter()
        sol = self.model.solve(puzzles, warm_start=guess)
        solved = time.perf_counter()
        boards = sol.z.reshape(puzzles.shape)
        per_puzzle = (boards - solutions).square().flatten(1).mean(1)
        self.optimizer.zero_grad(set_to_none=True)
        per_puzzle.mean().backward()
        self.optimizer.step()
        self.step_s += time.perf_counter() - start
        self.solve_s += solved - start
        self.cache[index], self.cached[index] = sol.active_set.lb, True
        self.iterations += int(sol.iterations.sum())
        self.from_guess += int((sol.iterations == 0).sum()) if guess is not None else 0
        self.loss += float(per_puzzle.detach().sum())
        self.wrong += int((~strict_correct(boards.detach(), puzzles)).sum())
        return per_puzzle.detach()

    def record(self, epoch: int, count: int) -> dict:
        return {
            "epoch": epoch, "iterations": self.iterations, "from_guess": self.from_guess / count,
            "step_s": self.step_s, "solve_s": self.solve_s, "train_loss": self.loss / count,
            "train_strict_error": self.wrong / count,
        }  # fmt: skip


def _pretrain(model, features, labels, *, epochs: int, lr: float, batch_size: int, seed: int):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order_rng = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        for index in torch.randperm(len(features), generator=order_rng).split(batch_size):
            boards = model(features[index])
            loss = (boards - labels[index]).square().flatten(1).mean(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def compare(train, test, *, epochs, batch_size, lr, seed, dtype, pretrain_epochs, pretrain_lr):
    """Cold and warm runs in lockstep: ({run: per-epoch records}, {run: test error}, stats)."""
    torch.manual_seed(seed)
    model = SudokuOptNet(board=train.board, n_eq=40, q=0.1, dtype=dtype)
    features, labels = train.features.to(dtype), train.labels.to(dtype)
    _pretrain(model, features, labels, epochs=pretrain_epochs, lr=pretrain_lr,
              batch_size=batch_size, seed=seed)  # fmt: skip
    runs = {name: Run(copy.deepcopy(model), lr, len(train), name == "warm") for name in RUNS}
    records = {name: [] for name in RUNS}
    order_rng = torch.Generator().manual_seed(seed)
    max_loss_difference = 0.0
    for epoch in range(1, epochs + 1):
        for run in runs.values():
            run.reset()
        for index in torch.randperm(len(train), generator=order_rng).split(batch_size):
            puzzles, solutions = features[index], labels[index]
            losses = [run.step(index, puzzles, solutions) for run in runs.values()]
            max_loss_difference = max(
                max_loss_difference, float((losses[0] - losses[1]).abs().max())
            )
        for name, run in runs.items():
            records[name].append(run.record(epoch, len(train)))
    test_error = {}
    with torch.no_grad():
        puzzles = test.features.to(dtype)
        for name, run in runs.items():
            boards = run.model(puzzles)
            test_error[name] = float((~strict_correct(boards, puzzles)).double().mean())
    A_cold, A_warm = (runs[name].model.A.detach() for name in RUNS)
    stats = {
        "max_abs_loss_difference": max_loss_difference,
        "max_abs_A_difference": float((A_cold - A_warm).abs().max()),
    }
    return records, test_error, stats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``optnet bench warm-start``."""
    add_shared(
        parser, dtype="float32", seed=0, threads=1, data=None, epochs=3, lr=0.1,
        batch_size=150, json=False,
        help={
            "data": f"folder of the 4x4 puzzles {default_help(DATA_NAME)}",
            "epochs": "measured epochs",
            "lr": "Adam learning rate (the Sudoku trainer's for OptNet)",
            "json": "print one JSON object",
        },
    )  # fmt: skip
    parser.add_argument("--puzzles", type=int, default=3000, help="training puzzles used")
    parser.add_argument("--test", type=int, default=1000, help="test puzzles evaluated")
    parser.add_argument("--pretrain-epochs", type=int, default=0, help="cold, not measured")
    parser.add_argument("--pretrain-lr", type=float, default=0.1, help="Adam, pretraining")


def run(args: argparse.Namespace) -> int:
    """Run ``optnet bench warm-start``: a table per measured epoch and run, or one JSON object."""
    train, _, test = split_train_val_test(load_sudoku(args.data))
    train, test = train.subset(slice(0, args.puzzles)), test.subset(slice(0, args.test))
    records, test_error, stats = compare(
        train, test, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        dtype=DTYPES[args.dtype], pretrain_epochs=args.pretrain_epochs,
        pretrain_lr=args.pretrain_lr,
    )  # fmt: skip
    config = {key: getattr(args, key) for key in _CONFIG_KEYS}
    result = {
        "date": datetime.date.today().isoformat(), "torch": torch.__version__,
        "machine": device_name(torch.device("cpu")), **config, "records": records,
        "test_strict_error": test_error, **stats,
    }  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    setup = (f"{len(train)} puzzles, {args.dtype}, batch {args.batch_size}, "
             f"{args.pretrain_epochs} pretraining epoch(s) at lr {args.pretrain_lr}, then Adam "
             f"lr {args.lr}; {args.threads} thread(s), torch {torch.__version__}")  # fmt: skip
    print(f"{setup}, {result['date']}")
    print("| epoch | run | IPM iterations | solved from the guess | steps s | solves s | "
          "train loss | train strict error |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for cold, warm in zip(records["cold"], records["warm"]):
        for name, r in (("cold", cold), ("warm", warm)):
            print(f"| {r['epoch']} | {name} | {r['iterations']} | {100 * r['from_guess']:.1f} % "
                  f"| {r['step_s']:.2f} | {r['solve_s']:.2f} | {r['train_loss']:.6f} "
                  f"| {r['train_strict_error']:.4f} |")  # fmt: skip
    print(
        f"test strict error: cold {test_error['cold']:.4f}, warm {test_error['warm']:.4f}; "
        f"max |loss_cold - loss_warm| per puzzle {stats['max_abs_loss_difference']:.1e}, "
        f"max |A_cold - A_warm| after training {stats['max_abs_A_difference']:.1e}"
    )
    return 0
