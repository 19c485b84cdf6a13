"""``optnet sudoku``: the paper's headline experiment, learning the rules of Sudoku.

Subcommands: ``generate`` (seeded puzzles with unique solutions), ``train`` (OptNet or a
baseline, optionally data-parallel), ``eval`` (a checkpoint on a data set) and ``demo`` (what
``make demo`` runs: a short OptNet training on CPU). The code lives in ``boards`` (boards,
solver, checks), ``data``, ``models`` and ``train``; this module only parses arguments and
prints for people. ``python -m optnet_experiments.sudoku.cli ARGS`` (torchrun too) is
``optnet sudoku ARGS``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

from ..cli import add_command, reports_errors
from ..common import DTYPES, ConfigError, data_dir, progress, read_json_lines, resolve_device
from ..distributed import launched_by_torchrun, spawn_local
from .data import DATA_NAME, DEFAULT_GIVENS, generate_sudoku, load_sudoku, save_sudoku
from .data import split as split_data
from .models import MODEL_KINDS, load_model
from .train import RunPaths, TrainConfig, evaluate, train

logger = logging.getLogger("optnet")

# The demo: OptNet on 4x4 boards, float32 on CPU, sized to finish in a few minutes on 2 cores.
DEMO_PUZZLES = 10000  # the paper's split: 9000 train + 1000 test
DEMO_EPOCHS = 3
DEMO_LR = 0.1
# Adam learning rates that worked best in short measured runs (docs/experiments.md).
DEFAULT_LR = {"optnet": 0.1, "conv": 1e-3, "fc": 1e-3}
DEMO_SEED = 0
_reports_errors = reports_errors("optnet sudoku")
_DATA_HELP = (
    "folder of features.pt and labels.pt "
    f"(default: $OPTNET_DATA/{DATA_NAME} if OPTNET_DATA is set, else ../shared/data/{DATA_NAME})"
)


def register(subparsers) -> None:
    """Add ``optnet sudoku {generate,train,eval,demo}``."""
    parser = add_command(
        subparsers, "sudoku", help="learn Sudoku with OptNet (the paper's experiment)",
        description="Learn the rules of Sudoku with OptNet (the paper's headline experiment): "
        "generate puzzles, train OptNet or a baseline (optionally data-parallel), evaluate a "
        "checkpoint, or run the demo (`make demo`).",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="sudoku_command", required=True)
    _add_generate(commands)
    _add_train(commands)
    _add_eval(commands)
    _add_demo(commands)


def main(argv: list[str] | None = None) -> int:
    """``optnet sudoku ARGS`` without the ``optnet`` command (for ``python -m`` and torchrun)."""
    parser = argparse.ArgumentParser(prog="optnet")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(["sudoku", *(sys.argv[1:] if argv is None else argv)])
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return int(args.func(args) or 0)


# ------------------------------------------------------------------------------- generate


def _add_generate(commands) -> None:
    p = add_command(commands, "generate", help="write seeded puzzles with unique solutions")
    p.add_argument("--board", type=int, choices=(2, 3), default=2, help="2: 4x4, 3: 9x9")
    p.add_argument("--n", type=int, required=True, help="number of puzzles")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", type=Path, required=True, help="folder for features.pt/labels.pt")
    p.add_argument(
        "--givens", type=int, nargs=2, metavar=("LOW", "HIGH"), default=None,
        help="range of the number of givens aimed for (default: 4 6 on 4x4, 25 35 on 9x9)",
    )  # fmt: skip
    p.set_defaults(func=run_generate)


@_reports_errors
def run_generate(args: argparse.Namespace) -> int:
    givens = tuple(args.givens) if args.givens else DEFAULT_GIVENS[args.board]
    start = time.perf_counter()
    data = generate_sudoku(
        args.board, args.n, args.seed, givens=givens,
        progress=lambda it: progress(it, desc="generating", total=args.n),
    )  # fmt: skip
    meta = {"board": args.board, "n": args.n, "seed": args.seed, "givens": list(givens)}
    save_sudoku(data, args.out, meta=meta)
    side = args.board * args.board
    print(
        f"wrote {args.n} {side}x{side} puzzles (unique solutions, seed {args.seed}) to "
        f"{args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0


# ---------------------------------------------------------------------------------- train


def _add_train(commands) -> None:
    p = add_command(commands, "train", help="train OptNet or a baseline on Sudoku")
    p.add_argument("--model", choices=MODEL_KINDS, default="optnet", help="model kind")
    p.add_argument("--epochs", type=int, default=20, help="training epochs")
    p.add_argument("--seed", type=int, default=0, help="model init and batch order")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument("--out", type=Path, default=Path("runs/sudoku"), help="output folder")
    p.add_argument(
        "--batch-size",
        type=int,
        default=150,
        help="global batch, split across processes (paper: 150)",
    )
    p.add_argument(
        "--lr", type=float, default=None, help="Adam/SGD learning rate "
        "(default: 0.1 for optnet, 1e-3 for the baselines)",
    )  # fmt: skip
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="optimizer")
    p.add_argument(
        "--dtype", choices=("float32", "float64"), default="float64",
        help="OptNet's dtype (the baselines always use float32)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=None, help="use only the first N puzzles")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch's default)")
    p.add_argument(
        "--n-eq", type=int, default=None,
        help="OptNet: learned equality rows (default: 40 on 4x4, 249 on 9x9)",
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
    p.set_defaults(func=run_train)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    hparams = {}
    if args.model == "optnet":
        hparams["dtype"] = args.dtype
        if args.n_eq is not None:
            hparams["n_eq"] = args.n_eq
        if args.depth is not None or args.width is not None:
            raise ConfigError("--depth/--width apply to the conv and fc baselines, not to optnet")
    else:
        if args.n_eq is not None:
            raise ConfigError("--n-eq applies to optnet only")
        hparams.update({k: v for k in ("depth", "width") if (v := getattr(args, k)) is not None})
    return TrainConfig(
        model=args.model,
        hparams=hparams,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=DEFAULT_LR[args.model] if args.lr is None else args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        device=args.device,
        data=str(data_dir(DATA_NAME, args.data)),
        limit=args.limit,
        out=str(args.out),
        distributed=args.distributed,
        threads=args.threads,
    )


@_reports_errors
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
    print(
        f"log: {paths.log}\ncheckpoint: {paths.checkpoint}\n"
        f"best checkpoint (lowest test strict error): {paths.best_checkpoint}\nplot: {paths.plot}"
    )
    return 0


def _print_final(records: list[dict]) -> None:
    if not records:
        return
    last = records[-1]
    best = min(r["test_strict_error"] for r in records)
    print(
        f"after {last['epoch']} epochs: test strict error {last['test_strict_error']:.2%}, "
        f"paper error {last['test_paper_error']:.2%} (best strict {best:.2%}); "
        f"{last['epoch_time_s']:.1f} s per epoch"
    )


# ----------------------------------------------------------------------------------- eval


def _add_eval(commands) -> None:
    p = add_command(commands, "eval", help="evaluate a checkpoint on a data set")
    p.add_argument("--checkpoint", type=Path, required=True, help="a `sudoku train` checkpoint")
    p.add_argument("--data", type=Path, default=None, help=_DATA_HELP)
    p.add_argument(
        "--split", choices=("all", "test"), default="all",
        help="all puzzles in --data, or only its last 10%% (the test split)",
    )  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device")
    p.add_argument("--batch-size", type=int, default=500, help="puzzles per forward pass")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch's default)")
    p.add_argument("--json", action="store_true", help="print only one JSON object")
    p.set_defaults(func=run_eval)


@_reports_errors
def run_eval(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, checkpoint = load_model(args.checkpoint, device=device)
    folder = data_dir(DATA_NAME, args.data)
    data = load_sudoku(folder)
    if args.split == "test":
        data = split_data(data)[1]
    dtype = DTYPES[checkpoint.spec.dtype]
    data = type(data)(data.features.to(dtype), data.labels.to(dtype)).to(device)
    metrics = evaluate(model, data, batch_size=args.batch_size)
    result = {
        "strict_error": metrics["strict_error"],
        "paper_error": metrics["paper_error"],
        "n": metrics["n"],
    }
    if not args.json:
        print(
            f"{checkpoint.spec.kind} (epoch {checkpoint.metadata.get('epoch')}) on {folder} "
            f"[{args.split}]: strict error {result['strict_error']:.2%}, "
            f"paper error {result['paper_error']:.2%}, loss {metrics['loss']:.5f}"
        )
    print(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------------- demo


def _add_demo(commands) -> None:
    p = add_command(commands, "demo", help="a short OptNet training on CPU (what `make demo` runs)")
    p.add_argument(
        "--data", type=Path, default=None,
        help=_DATA_HELP + "; generated into OUT/data when absent",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("runs/sudoku_demo"), help="output folder")
    p.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="training epochs")
    p.add_argument("--limit", type=int, default=DEMO_PUZZLES, help="puzzles used (90%% train)")
    p.set_defaults(func=run_demo)


@_reports_errors
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


if __name__ == "__main__":
    sys.exit(main())
