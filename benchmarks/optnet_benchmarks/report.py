"""Human-readable output of the benchmarks: fixed-width tables and the time-vs-batch plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optnet_experiments.common import save_figure


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, fmt)
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table; ``columns`` holds (key, header, format spec for floats)."""
    cells = [[_cell(row.get(key), fmt) for key, _, fmt in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def format_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """The same table as GitHub markdown (for docs/benchmarks.md)."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    lines.append("|" + "|".join("---:" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k), f) for k, _, f in columns) + " |")
    return "\n".join(lines)


def plot_time_vs_batch(records: Sequence[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Median forward+backward (solid) and forward (dashed) time against B, a panel per n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in records if r.get("forward_backward_s") is not None]
    sizes = sorted({r["n"] for r in timed}) or [0]
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        series = sorted({(r["solver"], r["dtype"]) for r in timed if r["n"] == n})
        for i, (solver, dtype) in enumerate(series):
            points = sorted(
                (r["batch"], r["forward_backward_s"], r["forward_s"])
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
        ax.set_xlabel("batch size B")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("median time [s] (solid: fwd+bwd, dashed: fwd)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path, dpi=110)
