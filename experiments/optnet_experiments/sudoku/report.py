"""Gather the runs of ``experiments/gpu_sudoku9.sh`` into its output folder (``optnet sudoku
report RUNS DATA OUT``), or redraw their plots (``optnet sudoku report --replot FILE DIR``).

``collect`` reads each run folder ``RUNS/NAME`` (what ``optnet sudoku train --out RUNS/NAME``
wrote) and writes into ``OUT``:

- ``sudoku9.jsonl``: every run's per-epoch records, each with ``"run": NAME`` added;
- ``sudoku9_error.png``: the validation and test errors of every run, one colour per run;
- ``summary.json``: per run, the test-split evaluation (``optnet sudoku eval --split test``)
  of its best checkpoint (lowest validation strict error) with that epoch and its validation
  error, and under ``"sudoku9.pt"`` the name of the run whose best checkpoint was copied to
  ``OUT/sudoku9.pt``: the OptNet run with the lowest validation strict error (ties: the
  earlier run).

``replot`` redraws the plots from the records alone (where the GPU machine had no
matplotlib): ``DIR/sudoku9_error.png`` and one ``DIR/<run>_error.png`` per run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..checkpoints import read_checkpoint
from ..json_lines import read_json_lines
from ..plotting import can_plot
from .plots import plot_errors, plot_runs
from .train import evaluate_checkpoint

DEFAULT_RUNS = ("optnet_solutions", "optnet_rand", "conv")


def _eval_test(checkpoint: Path, data: Path, device: str) -> dict[str, Any]:
    metrics = evaluate_checkpoint(checkpoint, data=data, split="test", device=device).metrics
    return {key: metrics[key] for key in ("strict_error", "paper_error", "n")}


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
