"""Human-readable output of the benchmarks: fixed-width and markdown tables, the speed
benchmark's tables and its time-vs-batch plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optnet_experiments.plotting import plain_log_ticks, pyplot, save_figure

Columns = Sequence[tuple[str, str, str]]  # (record key, header, format spec for floats)

# The speed records' columns: the case, the times, the errors.
_CASE = (
    ("solver", "solver", ""),
    ("dtype", "dtype", ""),
    ("n", "n", ""),
    ("m", "m", ""),
    ("neq", "neq", ""),
    ("batch", "B", ""),
)
_TIMES = (
    ("forward_ms", "fwd ms", ".2f"),
    ("forward_backward_ms", "f+b ms", ".2f"),
    ("ratio_forward", "fwd/opt", ".2f"),  # the peer's time over optnet's
    ("ratio_forward_backward", "f+b/opt", ".2f"),
    ("iterations_max", "iters", ""),
    ("peak_mib", "MiB", ".1f"),
)
_ERRORS = (
    ("z_error", "z err", ".1e"),
    ("z_error_median", "z med", ".1e"),
    ("grad_p_error", "dp err", ".1e"),
    ("grad_p_error_median", "dp med", ".1e"),
    ("z_error_clarabel", "z vs Clarabel", ".1e"),
)
# Every column, for the markdown tables of docs/benchmarks.md.
SPEED_COLUMNS = (*_CASE, *_TIMES, *_ERRORS, ("skipped", "note", ""))
# The same as two tables that fit a terminal of 100 columns (m and neq, which follow from n,
# only in the second); a skipped row's reason is a numbered note under them.
TIME_COLUMNS = (*_CASE[:3], _CASE[5], *_TIMES, ("note", "note", ""))
ACCURACY_COLUMNS = (*_CASE, *_ERRORS)


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, fmt)
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Columns) -> str:
    """A plain-text table; ``columns`` holds (key, header, format spec for floats)."""
    cells = [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def format_markdown(rows: Sequence[dict[str, Any]], columns: Columns) -> str:
    """The same table as GitHub markdown (for docs/benchmarks.md)."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    lines.append("|" + "|".join("---:" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), f) for k, _, f in columns) + " |")
    return "\n".join(lines)


def table_rows(records: list[dict]) -> list[dict]:
    """Speed records with milliseconds and MiB added, for the tables."""
    rows = []
    for r in records:
        row = dict(r)
        for key in ("forward", "forward_backward"):
            seconds = r.get(f"{key}_s")
            row[f"{key}_ms"] = None if seconds is None else 1e3 * seconds
        peak = r.get("peak_memory_bytes")
        row["peak_mib"] = None if peak is None else peak / 2**20
        rows.append(row)
    return rows


def speed_tables(records: list[dict]) -> str:
    """Speed records as a time table and an accuracy table (of the rows measured), then the
    notes: why a solver was skipped (each reason once, numbered; the rows name their note)."""
    rows, notes = table_rows(records), {}
    for row in rows:
        if row.get("skipped"):
            reason = f"{row['solver']}: {row['skipped']}"
            row["note"] = f"[{notes.setdefault(reason, len(notes) + 1)}]"
    text = format_table(rows, TIME_COLUMNS)
    measured = [row for row in rows if row.get("z_error") is not None]
    if measured:
        text += "\n\n" + format_table(measured, ACCURACY_COLUMNS)
    if notes:
        text += "\n\n" + "\n".join(f"[{i}] {reason}" for reason, i in notes.items())
    return text


def plot_time_vs_batch(records: Sequence[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Median forward+backward (solid) and forward (dashed) time against B, a panel per n;
    log scales, the x ticks at the batch sizes measured."""
    from matplotlib.ticker import FixedLocator, NullLocator

    timed = [r for r in records if r.get("forward_backward_s") is not None]
    sizes = sorted({r["n"] for r in timed}) or [0]
    fig, axes = pyplot().subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        series = sorted({(r["solver"], r["dtype"]) for r in timed if r["n"] == n})
        for i, (solver, dtype) in enumerate(series):
            points = sorted(
                (r["batch"], 1e3 * r["forward_backward_s"], 1e3 * r["forward_s"])
                for r in timed
                if r["n"] == n and r["solver"] == solver and r["dtype"] == dtype
            )
            batches, fb, fwd = zip(*points, strict=True)
            color = f"C{i}"
            ax.plot(batches, fb, marker="o", color=color, label=f"{solver} {dtype}")
            ax.plot(batches, fwd, marker=".", linestyle="--", color=color, alpha=0.6)
        m = next((r["m"] for r in timed if r["n"] == n), "?")
        neq = next((r["neq"] for r in timed if r["n"] == n), "?")
        ax.set_title(f"n={n}, m={m}, neq={neq}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax)
        measured = sorted({r["batch"] for r in timed if r["n"] == n})
        ax.xaxis.set_major_locator(FixedLocator(measured))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(b) for b in measured])
        ax.set_xlabel("batch size B (log scale)")
        ax.set_ylabel("median time (ms, log scale)")
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=7, title="solid: fwd+bwd, dashed: fwd", title_fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path, dpi=110)
