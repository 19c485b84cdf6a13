"""The speed-benchmark harness: problem generator, references, peers, timing cap and CLI."""

from __future__ import annotations

import argparse
import importlib.util
import json

import pytest
import torch

from optnet import SolverOptions, solve_qp
from optnet import bench as bench_cli
from optnet.benchmarking import measure, reference
from optnet.benchmarking.peers import PEERS
from optnet.benchmarking.problems import random_feasible_qp
from optnet.benchmarking.report import format_markdown, format_table
from optnet.benchmarking.speed import Case, SpeedBenchmark, SpeedConfig, grid

CPU = torch.device("cpu")


def test_random_qp_is_strictly_feasible_and_strongly_convex():
    qp = random_feasible_qp(4, 6, 5, 2, seed=3)
    assert qp.sizes == (4, 6, 5, 2)
    assert torch.linalg.eigvalsh(qp.Q).min() >= 1e-3 - 1e-12
    sol = solve_qp(*qp.inputs())
    assert bool(sol.solved.all())
    assert random_feasible_qp(4, 6, 5, 2, seed=3).Q.equal(qp.Q)  # reproducible


def test_random_qp_rejects_too_many_equalities():
    with pytest.raises(ValueError, match="neq"):
        random_feasible_qp(1, 3, 3, 3)


def test_grid_orders_batches_and_resolves_relative_neq():
    cases = grid([torch.float64, torch.float32], [10, 20], [128, 1], 1.0, "0.2n")
    assert cases[0] == Case(torch.float64, 10, 10, 2, 1)
    assert cases[1] == Case(torch.float32, 10, 10, 2, 1)
    assert [c.batch for c in cases[:4]] == [1, 1, 128, 128]
    assert cases[-1].neq == 4
    assert grid([torch.float64], [5], [1], 2.0, "10")[0] == Case(torch.float64, 5, 10, 4, 1)


def test_active_set_gradient_matches_finite_differences():
    qp = random_feasible_qp(2, 6, 6, 2, seed=1)
    z, grad, unsolved = reference.optnet_reference(qp, CPU)
    assert unsolved == 0
    step = 1e-6
    opts = SolverOptions(eps_abs=1e-12, eps_rel=1e-14, max_iter=100)
    for i, j in ((0, 0), (1, 2)):
        p_plus, p_minus = qp.p.clone(), qp.p.clone()
        p_plus[i, j] += step
        p_minus[i, j] -= step
        z_plus = solve_qp(qp.Q, p_plus, qp.G, qp.h, qp.A, qp.b, options=opts).z
        z_minus = solve_qp(qp.Q, p_minus, qp.G, qp.h, qp.A, qp.b, options=opts).z
        fd = ((z_plus - z_minus)[i] @ qp.loss_weights[i]) / (2 * step)
        assert abs(float(fd) - float(grad[i, j])) < 1e-5 * (1 + abs(float(fd)))


def test_clarabel_reference_agrees_with_optnet_reference():
    qp = random_feasible_qp(3, 8, 8, 3, seed=2)
    z, _, _ = reference.optnet_reference(qp, CPU)
    z_clarabel = reference.clarabel_reference(qp, 2)
    assert z_clarabel.shape == (2, 8)
    assert reference.relative_error(z[:2], z_clarabel) < 1e-7


def test_relative_error_is_max_over_batch():
    ref = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    x = ref.clone()
    x[1, 1] += 0.4
    assert reference.relative_error(x, ref) == pytest.approx(0.1)


def test_peak_memory_sees_a_large_allocation():
    _, peak = measure.peak_memory_bytes(lambda: torch.ones(4_000_000, dtype=torch.float64), CPU)
    if peak is None:
        pytest.skip("peak RSS not readable on this platform")
    assert peak >= 25e6  # the tensor holds 32 MB


def test_missing_or_cpu_only_peers_report_a_reason(monkeypatch):
    assert PEERS["optnet"]().unavailable_reason(CPU, torch.float64) is None
    reason = PEERS["qplayer"]().unavailable_reason(torch.device("cuda"), torch.float64)
    assert reason == "CPU-only solver" or reason.startswith("not installed")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "not installed" in PEERS["qpth"]().unavailable_reason(CPU, torch.float64)


def _config(**kw):
    base = dict(device=CPU, cases=(Case(torch.float64, 6, 6, 2, 2),), solvers=("optnet",),
                repeats=2, clarabel_checks=1)  # fmt: skip
    base.update(kw)
    return SpeedConfig(**base)


def test_speed_benchmark_records_optnet_accuracy_and_times():
    (record,) = SpeedBenchmark(_config()).records()
    assert record["skipped"] is None
    assert record["forward_s"] > 0 and record["forward_backward_s"] > 0
    assert record["ratio_forward"] == pytest.approx(1.0)
    assert record["z_error"] < 1e-6 and record["z_error_clarabel"] < 1e-6
    assert record["grad_p_error"] < 1e-5
    assert record["iterations_max"] >= 1 and record["unsolved"] == 0
    assert record["reference_vs_clarabel"] < 1e-8 and record["reference_unsolved"] == 0


def test_speed_benchmark_skips_over_the_cap_and_extrapolates():
    cases = (Case(torch.float64, 6, 6, 0, 32), Case(torch.float64, 6, 6, 0, 10**6))
    # a cap of 0 s: the first case is skipped after its warm-up, the second by prediction
    first, second = SpeedBenchmark(_config(cases=cases, cap_s=0.0)).records()
    assert first["skipped"].startswith("warm-up") and first["cold_forward_backward_s"] > 0
    assert first["forward_s"] is None
    assert second["skipped"].startswith("predicted")


@pytest.mark.slow  # importing qpth imports cvxpy: seconds
@pytest.mark.skipif(importlib.util.find_spec("qpth") is None, reason="qpth not installed")
def test_qpth_peer_solves_the_same_problems():
    records = list(SpeedBenchmark(_config(solvers=("optnet", "qpth"))).records())
    qpth = records[1]
    assert qpth["solver"] == "qpth" and qpth["skipped"] is None
    assert qpth["z_error"] < 1e-5 and qpth["ratio_forward_backward"] > 0


def test_tables_render_every_row():
    rows = [{"a": 1.23456, "b": None}, {"a": 2.0, "b": "x"}]
    columns = (("a", "A", ".2f"), ("b", "B", ""))
    text = format_table(rows, columns)
    assert "1.23" in text and text.count("\n") == 3
    assert format_markdown(rows, columns).splitlines()[2] == "| 1.23 | - |"


def test_cli_writes_json_lines_table_and_plot(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["bench", "--sizes", "5", "--batches", "1,3", "--neq", "1", "--solvers", "optnet",
         "--repeats", "1", "--clarabel-checks", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    assert args.func(args) == 0
    lines = (tmp_path / "bench_cpu.jsonl").read_text().splitlines()
    assert [json.loads(line)["batch"] for line in lines] == [1, 3]
    assert (tmp_path / "bench_cpu.png").stat().st_size > 0
    assert "fwd+bwd ms" in capsys.readouterr().out
