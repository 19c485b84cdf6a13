"""``optnet denoise {train,eval,compare}``: total-variation denoising (paper section 5.3).

The code is in ``data``, ``models``, ``train`` and ``plots``; this module parses arguments
and prints for people (JSON lines on stdout: one per grid value and epoch, a summary last).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..cli import REQUIRED, add_command, add_group, config_from_args, shared
from ..devices import resolve_device
from ..plotting import can_plot
from .models import DEFAULT_CENTER, MODEL_KINDS, QP_PARAMETERS, load_model
from .plots import plot_examples
from .train import TrainConfig, checkpoint_test_set, evaluate, train

_SIGNALS = {"batch_size": "signals per batch"}


def register(subparsers) -> None:
    """Add ``optnet denoise {train,eval,compare}``."""
    commands = add_group(
        subparsers, "denoise", help="total-variation denoising (paper sec. 5.3)",
        description="Total-variation denoising of piecewise-constant signals (OptNet paper, "
        "section 5.3): train fc, tv, optnet, optnet-tv or optnet-qp-tv (the general QP layer "
        "started at TV), evaluate or compare checkpoints.",
    )  # fmt: skip
    train = add_command(
        commands, "train", _cmd_train, help="train one model (tv: choose lambda on a grid)",
        parents=[
            shared(
                device="cpu", dtype="float64", seed=0, epochs=10, batch_size=100, lr=None,
                lr_schedule="constant", time_limit=None, max_iter=50, out=REQUIRED,
                help={
                    "dtype": "dtype of the QP models",
                    **_SIGNALS,
                    "seed": "model init and batch order",
                    "lr": "Adam learning rate (default: fc 1e-3, optnet 1e-2, optnet-tv 1e-4, "
                    "optnet-qp-tv 2e-4)",
                    "time_limit": "stop after the epoch that passes it (seconds; default: none)",
                },
            )
        ],
    )  # fmt: skip
    train.add_argument("--model", choices=MODEL_KINDS, required=True, help="model kind")
    train.add_argument("--data-seed", type=int, default=0, help="the data set (share it!)")
    train.add_argument("--n-train", type=int, default=9000, help="training signals")
    train.add_argument("--n-test", type=int, default=1000, help="test signals")
    train.add_argument(
        "--l1", type=float, default=None,
        help="weight of |D|_1 in the loss (default: 0.1 for optnet, else 0)",
    )  # fmt: skip
    train.add_argument(
        "--lam", type=float, default=None,
        help="TV weight of tv/optnet-tv/optnet-qp-tv (default: grid search on training data); "
        "optnet uses 1",
    )  # fmt: skip
    train.add_argument(
        "--learn", default=",".join(QP_PARAMETERS),
        help="optnet-qp-tv: the QP parameters learned, comma-separated (Q: its factor F, "
        "p: the affine map y -> p, G, h); the others stay at their TV values",
    )  # fmt: skip
    train.add_argument(
        "--center", type=float, default=DEFAULT_CENTER,
        help="optnet-qp-tv: the constant c signals are measured from (x = c + z_x, "
        "p = W (y - c) + p0); 0 for the plain variables",
    )  # fmt: skip
    train.add_argument(
        "--eps", type=float, default=0.0,
        help="optnet-qp-tv: the ridge of Q = F F' + eps I (0: the start is exactly TV)",
    )  # fmt: skip
    train.add_argument(
        "--lambda-grid", type=float, nargs=3, default=[0, 100, 1],
        metavar=("START", "STOP", "STEP"), help="grid (inclusive) for tv",
    )  # fmt: skip
    train.add_argument(
        "--grid-signals", type=int, default=None,
        help="training signals used by the grid search (default: all)",
    )  # fmt: skip

    ev = add_command(
        commands, "eval", _cmd_eval, help="test MSE of a checkpoint",
        parents=[shared(device="cpu", batch_size=100, json=False, help=_SIGNALS)],
    )  # fmt: skip
    ev.add_argument("--checkpoint", type=Path, required=True, help="model.pt or best.pt")

    cmp = add_command(
        commands, "compare", _cmd_compare, help="table and example plot of several checkpoints",
        parents=[shared(device="cpu", out=REQUIRED, help={"out": "folder of the table and plot"})],
    )  # fmt: skip
    cmp.add_argument("--checkpoint", type=Path, nargs="+", required=True, help="checkpoints")
    cmp.add_argument("--examples", type=int, default=4, help="test signals plotted")


def _cmd_train(args: argparse.Namespace) -> int:
    config = config_from_args(
        TrainConfig, args, out=str(args.out), lambda_grid=tuple(args.lambda_grid)
    )
    result = train(config, on_record=lambda r: print(json.dumps(r), flush=True))
    summary = {
        "model": args.model,
        "test_mse": result.records[-1]["test_mse"],
        "lambda": result.lam,
        "best_epoch": result.best_epoch,
        "seconds": result.seconds,
    }
    print(json.dumps(summary))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, config, checkpoint = load_model(args.checkpoint, device)
    clean, noisy = checkpoint_test_set(checkpoint)
    mse, unsolved = evaluate(model, clean, noisy, batch_size=args.batch_size, device=device)
    result = {"test_mse": mse, "n": len(clean), "model": config.kind, "unsolved": unsolved}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{config.kind}: test MSE {mse:.3f} on {len(clean)} signals ({unsolved} unsolved)")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    rows, outputs, clean, noisy = [], {}, None, None
    for path in args.checkpoint:
        model, config, checkpoint = load_model(path, device)
        clean, noisy = checkpoint_test_set(checkpoint)
        mse, unsolved = evaluate(model, clean, noisy, device=device)
        rows.append(
            {"model": config.kind, "checkpoint": str(path), "test_mse": mse, "unsolved": unsolved}
        )
        label = config.kind if config.kind not in outputs else f"{config.kind} ({path.parent.name})"
        with torch.no_grad():
            outputs[label] = model(noisy[: args.examples].to(device)).cpu()
    print(f"{'model':<14}{'test MSE':>10}")
    for row in rows:
        print(f"{row['model']:<14}{row['test_mse']:>10.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(rows, indent=1))
    if can_plot():
        plot_examples(clean[: args.examples], noisy[: args.examples], outputs, out / "examples.png")
    print(json.dumps({"results": rows}))
    return 0
