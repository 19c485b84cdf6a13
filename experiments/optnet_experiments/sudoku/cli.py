"""``optnet sudoku``: the paper's headline experiment, learning the rules of Sudoku.

Subcommands: ``generate`` (seeded puzzles with unique solutions), ``train`` (OptNet or a
baseline, optionally data-parallel), ``eval`` (a checkpoint on a data set), ``relaxation``
(the QP relaxation with the true constraints: what OptNet's model class can reach), ``demo``
(what ``make demo`` runs: a short OptNet training on CPU) and ``report`` (gather the runs of
``experiments/gpu_sudoku9.sh``). The code lives in ``boards`` (boards, solver, checks),
``data``, ``models``, ``train``, ``plots`` and ``report``; this module only parses arguments
and prints for people. Under torchrun: ``torchrun --nproc-per-node 2 -m optnet.cli sudoku
train --distributed ...``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import torch

from ..cli import REQUIRED, add_command, add_group, config_from_args, print_result, shared
from ..data_paths import data_dir, default_help
from ..devices import DTYPES, resolve_device
from ..distributed import launched_by_torchrun, spawn_local
from ..errors import ConfigError
from ..json_lines import read_json_lines
from ..progress import progress
from .data import (
    DATA_NAME,
    DATA_NAMES,
    DEFAULT_GIVENS,
    default_workers,
    generate_sudoku,
    load_sudoku,
    save_sudoku,
)
from .models import EQUALITY_ROWS, INITS, MODEL_KINDS, SudokuOptNet
from .report import DEFAULT_RUNS, collect, replot
from .train import RunPaths, TrainConfig, evaluate, evaluate_checkpoint, select_split, train

logger = logging.getLogger("optnet")

# The demo: OptNet on 4x4 boards, float32 on CPU, sized to finish in a few minutes on 2 cores.
DEMO_PUZZLES = 10000  # the paper's split: 9000 train + 1000 test
DEMO_EPOCHS = 3
DEMO_LR = 0.1
# Adam learning rates that worked best in short measured runs (docs/experiments.md).
DEFAULT_LR = {"optnet": 0.1, "conv": 1e-3, "fc": 1e-3}
DEMO_SEED = 0
_DATA_HELP = f"folder of features.pt and labels.pt {default_help(DATA_NAME)}"
_BOARD_DATA_HELP = (
    f"folder of features.pt and labels.pt {default_help('NAME')}, with NAME sudoku4 for 4x4 "
    "boards and sudoku9 for 9x9"
)
_EVAL_HELP = {
    "data": _BOARD_DATA_HELP,
    "batch_size": "puzzles per forward pass",
    "limit": "use only the first N puzzles",
}
_SPLIT_HELP = (
    "all puzzles in --data, its test split (the last 10%%), or its validation split (the "
    "fraction of --val-fraction just before the test split)"
)


def register(subparsers) -> None:
    """Add ``optnet sudoku {generate,train,eval,relaxation,demo,report}``."""
    commands = add_group(
        subparsers, "sudoku", help="learn Sudoku with OptNet (the paper's experiment)",
        description="Learn the rules of Sudoku with OptNet (the paper's headline experiment): "
        "generate puzzles, train OptNet or a baseline (optionally data-parallel), evaluate a "
        "checkpoint, or run the demo (`make demo`).",
    )  # fmt: skip
    _add_generate(commands)
    _add_train(commands)
    _add_eval(commands)
    _add_relaxation(commands)
    _add_demo(commands)
    _add_report(commands)


# ------------------------------------------------------------------------------- generate


def _add_generate(commands) -> None:
    p = add_command(
        commands, "generate", run_generate, help="write seeded puzzles with unique solutions",
        parents=[shared(seed=0, out=REQUIRED, help={"out": "folder for features.pt/labels.pt"})],
    )  # fmt: skip
    p.add_argument("--board", type=int, choices=(2, 3), default=2, help="2: 4x4, 3: 9x9")
    p.add_argument("--n", type=int, required=True, help="number of puzzles")
    p.add_argument(
        "--givens", nargs="+", metavar="N", default=None,
        help="range of the number of givens aimed for, as LOW,HIGH or LOW HIGH (default: "
        + ", ".join(f"{lo},{hi} on {k * k}x{k * k}" for k, (lo, hi) in DEFAULT_GIVENS.items())
        + ")",
    )  # fmt: skip
    p.add_argument(
        "--workers", type=int, default=None,
        help="processes for the uniqueness checks; the puzzles do not depend on it "
        "(default: every core this process may use)",
    )  # fmt: skip


def parse_givens(values: list[str] | None, board: int) -> tuple[int, int]:
    """``["31,41"]`` or ``["31", "41"]`` -> ``(31, 41)``; ``None`` -> the board's default."""
    if values is None:
        return DEFAULT_GIVENS[board]
    parts = [part for value in values for part in value.split(",") if part.strip()]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 2:
        raise ConfigError(f"--givens takes LOW,HIGH (two integers), got {' '.join(values)!r}")
    return numbers[0], numbers[1]


def run_generate(args: argparse.Namespace) -> int:
    givens = parse_givens(args.givens, args.board)
    workers = default_workers() if args.workers is None else args.workers
    start = time.perf_counter()
    data = generate_sudoku(
        args.board, args.n, args.seed, givens=givens, workers=workers,
        progress=lambda it: progress(it, desc="generating", total=args.n),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    counts = data.features.sum((1, 2, 3))
    meta = {
        "board": args.board, "n": args.n, "seed": args.seed, "givens": list(givens),
        "givens_mean": round(counts.mean().item(), 3), "givens_min": int(counts.min()),
        "givens_max": int(counts.max()), "workers": workers, "seconds": round(seconds, 2),
    }  # fmt: skip
    save_sudoku(data, args.out, meta=meta)
    side = args.board * args.board
    print(
        f"wrote {args.n} {side}x{side} puzzles (unique solutions, seed {args.seed}, "
        f"{meta['givens_min']} to {meta['givens_max']} givens, mean {meta['givens_mean']:.1f}) "
        f"to {args.out} in {seconds:.1f} s with {workers} worker(s)"
    )
    return 0


# ---------------------------------------------------------------------------------- train


def _add_train(commands) -> None:
    p = add_command(
        commands, "train", run_train, help="train OptNet or a baseline on Sudoku",
        parents=[
            shared(
                device="cpu", dtype="float64", seed=0, threads=None, data=None,
                out=Path("runs/sudoku"), epochs=20, batch_size=150, lr=None,
                lr_schedule="constant", time_limit=None, limit=None,
                help={
                    "dtype": "OptNet's dtype (the baselines always use float32)",
                    "seed": "model init and batch order",
                    "data": _BOARD_DATA_HELP,
                    "batch_size": "global batch, split across processes (the paper's)",
                    "lr": "Adam/SGD learning rate (default: 0.1 for optnet, 1e-3 for the "
                    "baselines)",
                    "limit": "use only the first N puzzles",
                },
            )
        ],
    )  # fmt: skip
    p.add_argument("--model", choices=MODEL_KINDS, default="optnet", help="model kind")
    p.add_argument(
        "--board", type=int, choices=(2, 3), default=None,
        help="2: 4x4, 3: 9x9; picks the default --data folder and is checked against the data "
        "(default: the data's)",
    )  # fmt: skip
    p.add_argument(
        "--val-fraction", type=float, default=0.0,
        help="fraction of all puzzles, just before the test split (the last 10%%), held out "
        "for validation; the best checkpoint is then picked on it, not on the test split",
    )  # fmt: skip
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer")
    p.add_argument(
        "--n-eq", type=int, default=None,
        help="OptNet: learned equality rows (default: with --init solutions, the number of "
        "directions in which the training solutions do not vary; else the rank of the true "
        "constraints, "
        + ", ".join(f"{rows} on {k * k}x{k * k}" for k, rows in EQUALITY_ROWS.items()) + ")",
    )  # fmt: skip
    p.add_argument(
        "--q", type=float, default=None,
        help="OptNet: the QP's Q = q I (default: 0.1 on 4x4, the paper's; 0.01 on 9x9)",
    )  # fmt: skip
    p.add_argument(
        "--init", choices=INITS, default="rand",
        help="OptNet's A at the start: rand (the paper's uniform [0, 1) entries), solutions "
        "(the directions in which the training solutions do not vary: learned from the "
        "solutions alone), exact (the true constraints: a reference, not learning)",
    )  # fmt: skip
    p.add_argument(
        "--eval-initial", action="store_true",
        help="log an epoch 0: the errors of the initial model (eligible as the best checkpoint)",
    )  # fmt: skip
    p.add_argument(
        "--depth", type=int, default=None,
        help="baselines: number of hidden layers (default: conv 10, fc 2)",
    )  # fmt: skip
    p.add_argument(
        "--width", type=int, default=None,
        help="baselines: filters/units per layer (default: 512)",
    )  # fmt: skip
    p.add_argument(
        "--distributed", action="store_true",
        help="data-parallel (DDP): under torchrun, or start --nproc local processes",
    )  # fmt: skip
    p.add_argument(
        "--nproc", type=int, default=None,
        help="processes to start with --distributed outside torchrun "
        "(default: the CUDA devices with --device cuda, else 2)",
    )  # fmt: skip


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    hparams = {}
    if args.model == "optnet":
        hparams["dtype"] = args.dtype
        if args.n_eq is not None:
            hparams["n_eq"] = args.n_eq
        if args.q is not None:
            hparams["q"] = args.q
        if args.depth is not None or args.width is not None:
            raise ConfigError("--depth/--width apply to the conv and fc baselines, not to optnet")
    else:
        if args.n_eq is not None or args.q is not None or args.init != "rand":
            raise ConfigError("--n-eq, --q and --init apply to optnet only")
        hparams.update({k: v for k in ("depth", "width") if (v := getattr(args, k)) is not None})
    return config_from_args(
        TrainConfig, args, hparams=hparams, out=str(args.out),
        lr=DEFAULT_LR[args.model] if args.lr is None else args.lr,
        data=str(data_dir(DATA_NAMES[args.board or 2], args.data)),
    )  # fmt: skip


def run_train(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    if args.nproc is not None and not config.distributed:
        raise ConfigError("--nproc needs --distributed")
    paths = RunPaths.for_run(config.out, config.model)
    if config.distributed and not launched_by_torchrun():
        # Start the processes here; each joins the group and runs `train`.
        nproc = args.nproc
        if nproc is None:
            nproc = torch.cuda.device_count() if config.device == "cuda" else 2
        if nproc < 1:
            raise ConfigError("--distributed found no device to run on; pass --nproc")
        spawn_local(train, config, nproc)
        records = read_json_lines(paths.log)
    else:
        records = train(config)
        if config.distributed and int(os.environ["RANK"]) != 0:
            return 0  # rank 0 reports
    _print_final(records)
    split = "validation" if config.val_fraction > 0 else "test"
    print(
        f"log: {paths.log}\ncheckpoint: {paths.checkpoint}\n"
        f"best checkpoint (lowest {split} strict error): {paths.best_checkpoint}\n"
        f"plot: {paths.plot}"
    )
    return 0


def _print_final(records: list[dict]) -> None:
    if not records:
        return
    last = records[-1]
    key = "val_strict_error" if "val_strict_error" in last else "test_strict_error"
    best = min(records, key=lambda r: r[key])
    val = f"validation strict error {last[key]:.2%}, " if key.startswith("val") else ""
    print(
        f"after {last['epoch']} epochs: {val}test strict error {last['test_strict_error']:.2%}, "
        f"paper error {last['test_paper_error']:.2%}; best epoch by {key}: {best['epoch']} "
        f"(test strict error {best['test_strict_error']:.2%}); "
        f"{last['epoch_time_s']:.1f} s for the last epoch's training"
    )


# ----------------------------------------------------------------------------------- eval


def _add_eval(commands) -> None:
    p = add_command(
        commands, "eval", run_eval, help="evaluate a checkpoint on a data set",
        parents=[
            shared(
                device="cpu", threads=None, data=None, batch_size=50, limit=None, json=False,
                help={
                    **_EVAL_HELP,
                    "data": _BOARD_DATA_HELP + " (default board: the checkpoint's)",
                    "json": 'print only one JSON object: {"strict_error", "paper_error", "n"}',
                },
            )
        ],
    )  # fmt: skip
    p.add_argument("--checkpoint", type=Path, required=True, help="a `sudoku train` checkpoint")
    p.add_argument("--split", choices=("all", "val", "test"), default="all", help=_SPLIT_HELP)
    p.add_argument(
        "--val-fraction", type=float, default=None,
        help="for --split val (default: the fraction the checkpoint was trained with)",
    )  # fmt: skip


def run_eval(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    evaluation = evaluate_checkpoint(
        args.checkpoint, data=args.data, split=args.split, val_fraction=args.val_fraction,
        limit=args.limit, device=args.device, batch_size=args.batch_size,
    )  # fmt: skip
    metrics, checkpoint = evaluation.metrics, evaluation.checkpoint
    result = {key: metrics[key] for key in ("strict_error", "paper_error", "n")}
    text = (
        f"{checkpoint.spec.kind} (epoch {checkpoint.metadata.get('epoch')}) on "
        f"{evaluation.folder} [{args.split}]: strict error {result['strict_error']:.2%}, "
        f"paper error {result['paper_error']:.2%}, loss {metrics['loss']:.5f}, "
        f"{time.perf_counter() - start:.1f} s"
    )
    print_result(result, text, json_only=args.json)
    return 0


# ----------------------------------------------------------------------------- relaxation


def _add_relaxation(commands) -> None:
    p = add_command(
        commands, "relaxation", run_relaxation,
        help="the QP relaxation with the TRUE constraints on a data set: what OptNet can reach",
        description="Solve min 1/2 q z'z - puzzle'z s.t. z >= 0, M z = 1 with the exact Sudoku "
        "constraint matrix M (the rules given, nothing learned) and report its errors: the "
        "best that SudokuOptNet's model class does at this q.",
        parents=[
            shared(
                device="cpu", dtype="float64", threads=None, data=None, batch_size=50,
                limit=None, json=False,
                help={**_EVAL_HELP, "json": "print one JSON object per q only"},
            )
        ],
    )  # fmt: skip
    p.add_argument("--board", type=int, choices=(2, 3), default=3, help="2: 4x4, 3: 9x9")
    p.add_argument("--q", type=float, nargs="+", default=[0.01], help="q values to evaluate")
    p.add_argument("--split", choices=("all", "val", "test"), default="all", help=_SPLIT_HELP)
    p.add_argument(
        "--val-fraction", type=float, default=0.05, help="the validation split for --split val"
    )  # fmt: skip


def run_relaxation(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    folder = data_dir(DATA_NAMES[args.board], args.data)
    data = load_sudoku(folder, limit=args.limit)
    if data.board != args.board:
        raise ConfigError(f"--board {args.board} does not match the boards of {folder}")
    data = select_split(data, args.split, args.val_fraction)
    dtype = DTYPES[args.dtype]
    data = type(data)(data.features.to(dtype), data.labels.to(dtype)).to(device)
    for q in args.q:
        start = time.perf_counter()
        model = SudokuOptNet(args.board, EQUALITY_ROWS[args.board], q=q, dtype=dtype)
        model.initialize("exact")
        metrics = evaluate(model.to(device), data, batch_size=args.batch_size)
        result = {
            "q": q, "strict_error": metrics["strict_error"],
            "paper_error": metrics["paper_error"], "n": metrics["n"],
            "seconds": round(time.perf_counter() - start, 2),
        }  # fmt: skip
        text = (
            f"true constraints, q = {q:g}, {args.dtype}, {metrics['n']} puzzles of {folder} "
            f"[{args.split}]: strict error {result['strict_error']:.2%}, paper error "
            f"{result['paper_error']:.2%} ({result['seconds']:.1f} s)"
        )
        print_result(result, text, json_only=args.json)
    return 0


# ----------------------------------------------------------------------------------- demo


def _add_demo(commands) -> None:
    add_command(
        commands, "demo", run_demo, help="a short OptNet training on CPU (what `make demo` runs)",
        parents=[
            shared(
                data=None, out=Path("runs/sudoku_demo"), epochs=DEMO_EPOCHS, limit=DEMO_PUZZLES,
                help={
                    "data": _DATA_HELP + "; generated into OUT/data when absent",
                    "limit": "puzzles used (90%% train)",
                },
            )
        ],
    )  # fmt: skip


def run_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    wanted = data_dir(DATA_NAME, args.data)
    folder = wanted
    if (folder / "features.pt").is_file() and (folder / "labels.pt").is_file():
        print(f"Sudoku demo: the OptNet paper's 4x4 puzzles from {folder}")
    else:
        folder = args.out / "data"
        print(
            f"Sudoku demo: {wanted} not found; generating {args.limit} seeded 4x4 puzzles "
            f"with unique solutions into {folder} (seed {DEMO_SEED})"
        )
        data = generate_sudoku(
            2, args.limit, DEMO_SEED,
            progress=lambda it: progress(it, desc="generating", total=args.limit),
        )  # fmt: skip
        save_sudoku(data, folder, meta={"board": 2, "n": args.limit, "seed": DEMO_SEED})
    n_test = round(args.limit * 0.1)
    print(
        f"training OptNet (float32, CPU) for {args.epochs} epochs on {args.limit - n_test} "
        f"puzzles, testing on {n_test}; batch 150, Adam lr {DEMO_LR}"
    )
    config = TrainConfig(
        model="optnet",
        hparams={"dtype": "float32"},
        epochs=args.epochs,
        lr=DEMO_LR,
        seed=DEMO_SEED,
        device="cpu",
        data=str(folder),
        limit=args.limit,
        out=str(args.out),
        threads=1,  # the solver's small batched kernels gain little from a second thread,
        # and lose badly when the cores are shared with other work
    )
    records = train(config)
    paths = RunPaths.for_run(config.out, config.model)
    print()
    print("epoch  train strict err  test strict err  test paper err  epoch time")
    for r in records:
        print(
            f"{r['epoch']:>5}  {r['train_strict_error']:>16.2%}  {r['test_strict_error']:>15.2%}"
            f"  {r['test_paper_error']:>14.2%}  {r['epoch_time_s']:>8.1f} s"
        )
    print(f"\nerror curves: {paths.plot}\ncheckpoint: {paths.checkpoint}")
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0


# --------------------------------------------------------------------------------- report


def _add_report(commands) -> None:
    p = add_command(
        commands, "report", run_report,
        help="gather the runs of experiments/gpu_sudoku9.sh (or redraw their plots)",
        description="With RUNS DATA OUT: read each run folder RUNS/NAME (what `optnet sudoku "
        "train --out RUNS/NAME` wrote) and write into OUT sudoku9.jsonl (every run's "
        "per-epoch records, tagged with the run), sudoku9_error.png, summary.json (each run's "
        "best checkpoint by validation, evaluated on the test split of DATA) and sudoku9.pt "
        "(the OptNet run with the lowest validation strict error). With --replot FILE DIR: "
        "redraw the plots from the records alone.",
        parents=[shared(device="cpu", help={"device": "device of the test evaluations"})],
    )  # fmt: skip
    p.add_argument(
        "paths", type=Path, nargs="+", metavar="PATH", help="RUNS DATA OUT, or with --replot DIR"
    )
    p.add_argument(
        "--runs", dest="names", nargs="+", metavar="NAME", default=list(DEFAULT_RUNS),
        help="the run folders in RUNS to gather",
    )  # fmt: skip
    p.add_argument("--replot", type=Path, default=None, help="a sudoku9.jsonl to redraw")


def run_report(args: argparse.Namespace) -> int:
    if args.replot is not None:
        if len(args.paths) != 1:
            raise ConfigError("--replot takes one output folder")
        for path in replot(args.replot, args.paths[0]):
            print(path)
        return 0
    if len(args.paths) != 3:
        raise ConfigError("give RUNS DATA OUT")
    runs, data, out = args.paths
    collect(runs, data, out, device=args.device, names=args.names)
    return 0
