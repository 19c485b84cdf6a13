"""Gather the runs of ``experiments/gpu_sudoku9.sh`` into its output folder.

``python -m optnet_experiments.sudoku.report RUNS DATA OUT [--device D] [--runs NAME ...]``
reads each run folder ``RUNS/NAME`` (what ``optnet sudoku train --out RUNS/NAME`` wrote) and
writes into ``OUT``:

- ``sudoku9.jsonl``: every run's per-epoch records, each with ``"run": NAME`` added;
- ``sudoku9_error.png``: the validation and test errors of every run, one colour per run;
- ``summary.json``: per run, ``optnet sudoku eval --split test --json`` of its best checkpoint
  (lowest validation strict error) with that epoch and its validation error, and under
  ``"sudoku9.pt"`` the name of the run whose best checkpoint was copied to ``OUT/sudoku9.pt``:
  the OptNet run with the lowest validation strict error (ties: the earlier run).

``python -m optnet_experiments.sudoku.report --replot OUT/sudoku9.jsonl DIR`` redraws the plots
from the records alone (where the GPU machine had no matplotlib): ``DIR/sudoku9_error.png``
and one ``DIR/<run>_error.png`` per run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from ..common import can_plot, read_checkpoint, read_json_lines
from .plots import plot_errors, plot_runs

DEFAULT_RUNS = ("optnet_solutions", "optnet_rand", "conv")


def _eval_test(checkpoint: Path, data: Path, device: str) -> dict[str, Any]:
    from .cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(
            ["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--split", "test",
             "--device", device, "--json"]
        )  # fmt: skip
    if status != 0:
        raise RuntimeError(f"optnet sudoku eval exited with {status}")
    return json.loads(printed.getvalue().strip().splitlines()[-1])


def collect(
    runs: Path, data: Path, out: Path, *, device: str = "cpu", names=DEFAULT_RUNS
) -> dict[str, Any]:
    """Write ``sudoku9.jsonl``, ``sudoku9_error.png``, ``summary.json`` and ``sudoku9.pt``
    into ``out`` (see the module's docstring); returns the summary. A run without a log or a
    checkpoint (it did not start, or was cut before its first epoch) is skipped and named in
    the summary's ``"missing"``."""
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict[str, Any]]] = {}
    summary: dict[str, Any] = {"missing": []}
    best: tuple[str, float, Path] | None = None
    with (out / "sudoku9.jsonl").open("w") as log:
        for name in names:
            logs = sorted((runs / name).glob("*.jsonl"))
            checkpoints = sorted((runs / name).glob("*.best.pt"))
            if not logs or not checkpoints:
                summary["missing"].append(name)
                continue
            records[name] = read_json_lines(logs[0])
            for record in records[name]:
                log.write(json.dumps({"run": name, **record}) + "\n")
            meta = read_checkpoint(checkpoints[0]).metadata
            val = meta.get("metrics", {}).get("val_strict_error")
            result = {
                **_eval_test(checkpoints[0], data, device),
                "best_epoch": meta.get("epoch"),
                "val_strict_error": val,
                "epochs_logged": len(records[name]),
            }
            summary[name] = result
            print(f"=== {name}: best epoch by validation, on the test split: {json.dumps(result)}")
            is_optnet = records[name][0].get("model") == "optnet"
            if is_optnet and val is not None and (best is None or val < best[1]):
                best = (name, val, checkpoints[0])
    if best is not None:
        shutil.copyfile(best[2], out / "sudoku9.pt")
        summary["sudoku9.pt"] = best[0]
        print(f"=== sudoku9.pt: {best[0]}'s best checkpoint (validation strict error {best[1]})")
    if records and can_plot():
        plot_runs(records, out / "sudoku9_error.png", title="Sudoku 9x9: boards wrong per epoch")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def replot(jsonl: Path, out: Path) -> list[Path]:
    """Draw ``out/sudoku9_error.png`` and ``out/<run>_error.png`` from a ``sudoku9.jsonl``."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for record in read_json_lines(jsonl):
        runs.setdefault(record["run"], []).append(record)
    paths = [plot_runs(runs, out / "sudoku9_error.png", title="Sudoku 9x9: boards wrong per epoch")]
    for name, records in runs.items():
        paths.append(plot_errors(records, out / f"{name}_error.png", title=f"Sudoku 9x9: {name}"))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m optnet_experiments.sudoku.report",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("paths", type=Path, nargs="+", help="RUNS DATA OUT, or with --replot OUT")
    parser.add_argument("--device", default="cpu", help="device of the test evaluations")
    parser.add_argument("--runs", dest="names", nargs="+", default=list(DEFAULT_RUNS))
    parser.add_argument("--replot", type=Path, default=None, help="a sudoku9.jsonl to redraw")
    args = parser.parse_args(argv)
    if args.replot is not None:
        if len(args.paths) != 1:
            parser.error("--replot takes one output folder")
        for path in replot(args.replot, args.paths[0]):
            print(path)
        return 0
    if len(args.paths) != 3:
        parser.error("give RUNS DATA OUT")
    runs, data, out = args.paths
    collect(runs, data, out, device=args.device, names=args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
