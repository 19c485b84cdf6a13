"""``optnet classify {train,eval}``: digits classification with an FC or an OptNet head
(OptNet paper, appendix; scikit-learn's digits instead of MNIST, which cannot be downloaded
here).

The code is in ``data``, ``models`` and ``train``; this module parses arguments and prints
for people (one JSON line per epoch, a summary last).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..cli import REQUIRED, add_command, add_group, shared
from ..devices import resolve_device
from .data import load_digits_split
from .models import MODEL_KINDS, load_model
from .train import summarize, test_error, train_one_seed


def register(subparsers) -> None:
    """Add ``optnet classify {train,eval}``."""
    commands = add_group(
        subparsers, "classify", help="digits classification (paper appendix)",
        description="Digits classification with an FC or an OptNet head (OptNet paper, "
        "appendix; scikit-learn's digits): train over seeds, evaluate a checkpoint.",
    )  # fmt: skip
    train = add_command(
        commands, "train", _cmd_train, help="train one model kind for one or more seeds",
        parents=[
            shared(
                device="cpu", epochs=25, lr=3e-3, batch_size=64, out=REQUIRED,
                help={"batch_size": "images per batch"},
            )
        ],
    )  # fmt: skip
    train.add_argument("--model", choices=MODEL_KINDS, required=True, help="model kind")
    train.add_argument(
        "--seeds", type=int, nargs="+", default=[0],
        help="one run per seed (split and init); writes summary.json",
    )  # fmt: skip
    train.add_argument("--n-ineq", type=int, default=50, help="inequalities of the OptNet layer")
    ev = add_command(
        commands, "eval", _cmd_eval, help="test error of a checkpoint",
        parents=[shared(device="cpu", json=False)],
    )  # fmt: skip
    ev.add_argument("--checkpoint", type=Path, required=True, help="model.pt or best.pt")


def _cmd_train(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    start = time.perf_counter()
    results = []
    for seed in args.seeds:
        final = train_one_seed(
            args.model,
            seed,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            out=Path(args.out) / f"seed{seed}",
            device=device,
            n_ineq=args.n_ineq,
            on_record=lambda r: print(json.dumps(r), flush=True),
        )
        results.append(final)
    summary = {
        "model": args.model,
        **summarize(results),
        "epochs": args.epochs,
        "seconds": time.perf_counter() - start,
        "device": str(device),
    }
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{args.model}: test error {100 * summary['test_error_mean']:.2f}% "
        f"+- {100 * summary['test_error_std']:.2f}% over {len(results)} seeds"
    )
    print(json.dumps(summary))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    model, config, checkpoint = load_model(args.checkpoint, device)
    seed = checkpoint.metadata["seed"]
    split = load_digits_split(seed)
    error = test_error(model, split.test_x, split.test_y, device=device)
    result = {"test_error": error, "n": len(split.test_y), "model": config.kind, "seed": seed}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{config.kind} (seed {seed}): test error {100 * error:.2f}% "
            f"on {len(split.test_y)} images"
        )
    return 0
