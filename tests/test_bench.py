"""The benchmark harnesses: generator, references, peers, ratios, accuracy columns, the speed
tables and plot, and the `optnet bench` command with its benchmarks."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

from optnet import SolverOptions, solve_qp
from optnet.cli import main as optnet_main
from optnet.testing import reference_solve
from optnet_benchmarks import cli as bench_cli
from optnet_benchmarks import measure, reference
from optnet_benchmarks.peers import PEERS, Peer, PeerRun, dense_csr
from optnet_benchmarks.problems import random_feasible_qp
from optnet_benchmarks.report import format_markdown, format_table, speed_tables
from optnet_benchmarks.speed import Case, SpeedBenchmark, SpeedConfig, case_data, grid

CPU = torch.device("cpu")
CASE = Case(torch.float64, 6, 6, 2, 2)


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


def _known_problem():
    """min 1/2 ||z||^2 - z_0  s.t.  z_1 <= inf (dropped), z_0 <= 0.5, z_1 + z_2 = 1, z_2 >= 0.8.

    Solution z = (0.5, 0.2, 0.8), lam = (0, 0.5), nu = -0.2 (the bound's dual is 0.6).
    """
    Q, p = np.eye(3), np.array([-1.0, 0.0, 0.0])
    G, h = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), np.array([np.inf, 0.5])
    A, b = np.array([[0.0, 1.0, 1.0]]), np.array([1.0])
    lb = np.array([-np.inf, -np.inf, 0.8])
    return Q, p, G, h, A, b, lb


def test_clarabel_solve_returns_z_and_duals_in_optnet_conventions():
    Q, p, G, h, A, b, lb = _known_problem()
    z, lam, nu = reference_solve(Q, p, G, h, A, b, lb=lb, ub=np.full(3, np.inf))
    np.testing.assert_allclose(z, [0.5, 0.2, 0.8], atol=1e-9)
    assert lam.shape == (2,) and lam[0] == 0.0  # the row with h = inf keeps its place
    np.testing.assert_allclose(lam, [0.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(nu, [-0.2], atol=1e-9)
    # absent blocks give None duals; torch tensors are accepted
    z_free, lam_free, nu_free = reference_solve(torch.eye(2), torch.tensor([1.0, -2.0]))
    np.testing.assert_allclose(z_free, [-1.0, 2.0], atol=1e-9)
    assert lam_free is None and nu_free is None


def test_clarabel_solve_raises_on_an_infeasible_problem():
    G, h = np.array([[1.0], [-1.0]]), np.array([-1.0, -1.0])  # z <= -1 and z >= 1
    with pytest.raises(RuntimeError, match="Clarabel did not solve"):
        reference_solve(np.eye(1), np.zeros(1), G, h)


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


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_limit_threads_reaches_torch_every_blas_pool_and_the_affinity():
    from threadpoolctl import threadpool_info

    before, cores = torch.get_num_threads(), os.sched_getaffinity(0)
    limiter = measure.limit_threads(1)
    try:
        assert torch.get_num_threads() == 1
        pools = threadpool_info()
        assert any(pool["user_api"] == "blas" for pool in pools)  # numpy, SciPy (Moreau)
        assert all(pool["num_threads"] == 1 for pool in pools)
        assert len(os.sched_getaffinity(0)) == 1  # pools that count cores see one
    finally:
        limiter.restore_original_limits()
        os.sched_setaffinity(0, cores)
        torch.set_num_threads(before)


def test_missing_peer_reports_its_modules(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    reason = PEERS["qpth"]().unavailable_reason(CPU, torch.float64)
    assert reason == "not installed (qpth): pip install --no-deps qpth==0.0.18"
    assert PEERS["optnet"]().unavailable_reason(CPU, torch.float64) is None  # needs nothing


def test_cpu_only_peer_refuses_cuda_when_installed(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    qplayer = PEERS["qplayer"]()
    assert qplayer.unavailable_reason(torch.device("cuda"), torch.float64) == "CPU-only solver"
    assert qplayer.unavailable_reason(CPU, torch.float64) is None
    assert PEERS["optnet"]().unavailable_reason(torch.device("cuda"), torch.float64) is None


def test_optnet_peers_solve_with_their_backends():
    # the fused kernel and the torch.compile'd iteration are retired
    assert "optnet-fused" not in PEERS and "optnet-compiled" not in PEERS
    for name, backend in (("optnet", "auto"), ("optnet-batched", "batched")):
        options = PEERS[name](max_iter=7).options(1e-6)
        assert options.backend == backend, name
        assert (options.eps_abs, options.eps_rel, options.max_iter) == (1e-6, 1e-6, 7)


def _config(**kw):
    base = dict(device=CPU, cases=(CASE,), solvers=("optnet",), repeats=2, clarabel_checks=1)
    base.update(kw)
    return SpeedConfig(**base)


def test_speed_benchmark_records_optnet_accuracy_and_times():
    (record,) = SpeedBenchmark(_config(optnet_max_iter=40)).records()
    assert record["skipped"] is None and record["version"] is not None
    assert record["forward_s"] > 0 and record["forward_backward_s"] > 0
    assert record["repeats"] == 2 and record["eps"] == 1e-8
    assert record["z_error"] < 1e-6 and record["z_error_clarabel"] < 1e-6
    assert record["grad_p_error"] < 1e-5
    assert 1 <= record["iterations_max"] <= 40 and record["unsolved"] == 0
    assert record["reference_vs_clarabel"] < 1e-8 and record["reference_unsolved"] == 0


class _Clock:
    now = 0.0


class _TimedPeer(Peer):
    """optnet's z, but each forward costs ``forward_s`` and each backward ``backward_s`` on a
    fake clock; ``per_problem`` multiplies both by B. ``shift`` is added to z's values and
    ``grad_scale`` multiplies its gradient (deliberate defects for the accuracy columns)."""

    forward_s = backward_s = 1e-3
    per_problem = False
    shift = 0.0
    grad_scale = 1.0
    clock = _Clock()

    def prepare(self, qp, eps):
        scale = qp.sizes[0] if self.per_problem else 1

        def solve():
            z = solve_qp(*qp.inputs(), options=SolverOptions(eps_abs=eps, eps_rel=eps)).z
            self.clock.now += self.forward_s * scale
            z = z.detach() + self.grad_scale * (z - z.detach()) + self.shift
            if z.requires_grad:
                z.register_hook(lambda g: setattr(self.clock, "now", self.clock.now
                                                  + self.backward_s * scale))  # fmt: skip
            return z

        return PeerRun(solve)


def _fake_time_call(clock):
    def time_call(fn, device):
        start = clock.now
        fn()
        return clock.now - start

    return time_call


def _peer(name, **attrs):
    return type(name, (_TimedPeer,), {"name": name, **attrs})


def test_ratios_divide_each_peer_by_optnet_in_the_same_case(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(measure, "time_call", _fake_time_call(clock))
    # optnet's time grows with B, the peer's does not: the ratios differ between the cases
    monkeypatch.setitem(PEERS, "optnet", _peer("optnet", forward_s=1e-3, backward_s=2e-3,
                                                per_problem=True, clock=clock))  # fmt: skip
    monkeypatch.setitem(PEERS, "flat", _peer("flat", forward_s=6e-3, backward_s=6e-3, clock=clock))
    cases = (Case(torch.float64, 6, 6, 0, 2), Case(torch.float64, 6, 6, 0, 4))
    records = list(SpeedBenchmark(_config(cases=cases, solvers=("optnet", "flat"))).records())
    assert [(r["solver"], r["batch"]) for r in records] == [
        ("optnet", 2), ("flat", 2), ("optnet", 4), ("flat", 4)
    ]  # fmt: skip
    times = [(r["forward_s"], r["forward_backward_s"]) for r in records]
    np.testing.assert_allclose(times, [(2e-3, 6e-3), (6e-3, 12e-3), (4e-3, 12e-3), (6e-3, 12e-3)])
    ratios = [(r["ratio_forward"], r["ratio_forward_backward"]) for r in records]
    np.testing.assert_allclose(ratios, [(1, 1), (3, 2), (1, 1), (1.5, 1)])
    # without optnet in the run there is nothing to divide by
    (alone,) = SpeedBenchmark(_config(cases=cases[:1], solvers=("flat",))).records()
    assert alone["forward_s"] == pytest.approx(6e-3) and alone["ratio_forward"] is None


def test_accuracy_columns_flag_a_wrong_solution_and_a_wrong_gradient(monkeypatch):
    shift = 1e-3
    monkeypatch.setitem(PEERS, "shifted", _peer("shifted", shift=shift))
    monkeypatch.setitem(PEERS, "bad-grad", _peer("bad-grad", grad_scale=2.0))
    solvers = ("optnet", "shifted", "bad-grad")
    config = _config(solvers=solvers, clarabel_checks=2)
    good, shifted, bad_grad = SpeedBenchmark(config).records()
    assert [r["skipped"] for r in (good, shifted, bad_grad)] == [None, None, None]

    # the columns' expected values from an independent solve of the same data by Clarabel
    qp = case_data(CASE, config.seed)
    one = lambda x, i: None if x is None else x[i].numpy()  # noqa: E731
    z_cl = np.stack([reference_solve(*(one(x, i) for x in qp.inputs()))[0]
                     for i in range(CASE.batch)])  # fmt: skip
    expected_z_error = max(shift / (1 + np.abs(z_cl).max(-1)))
    assert good["z_error"] < 1e-7 and good["z_error_clarabel"] < 1e-7
    assert shifted["z_error"] == pytest.approx(expected_z_error, rel=1e-4)
    assert shifted["z_error_clarabel"] == pytest.approx(expected_z_error, rel=1e-4)
    assert shifted["grad_p_error"] < 1e-6  # its gradient is right

    # a doubled gradient is off by |g| per problem: ||g|| / (1 + ||g||) in the column
    _, grad_ref, _ = reference.optnet_reference(qp, CPU)
    g = grad_ref.abs().amax(-1).numpy()
    assert good["grad_p_error"] < 1e-6
    assert bad_grad["grad_p_error"] == pytest.approx(max(g / (1 + g)), rel=1e-4)
    assert bad_grad["z_error"] < 1e-7  # its solution is right


class _ScriptedPeer(Peer):
    """optnet's z; the k-th call of solve() costs ``script[k]`` on a fake clock and is logged.

    The calls, in order: the warm-up forward+backward, then per repetition one forward and one
    forward+backward, then the untimed forward+backward of the memory and accuracy run.
    """

    script: tuple[float, ...] = ()
    clock = _Clock()
    log: list[str] = []

    def prepare(self, qp, eps):
        costs = iter(self.script)

        def solve():
            self.clock.now += next(costs)
            self.log.append(self.name)
            return solve_qp(*qp.inputs()).z

        return PeerRun(solve)


def _scripted(name, times, clock, log):
    """A _ScriptedPeer whose repetitions cost ``times`` (forward and forward+backward alike)."""
    script = (1.0, *(x for t in times for x in (t, t)), 1.0)
    return type(name, (_ScriptedPeer,), {"name": name, "script": script, "clock": clock,
                                         "log": log})  # fmt: skip


def test_repetitions_interleave_and_ratios_are_medians_of_per_repetition_ratios(monkeypatch):
    clock, log = _Clock(), []
    monkeypatch.setattr(measure, "time_call", _fake_time_call(clock))
    # repetition 2 is slow for optnet, repetition 1 for the peer: per repetition the peer takes
    # 2x, 8x and 1x optnet's time (median 2x) while its median time is 4x optnet's
    ours, theirs = (1.0, 1.0, 4.0), (2.0, 8.0, 4.0)
    monkeypatch.setitem(PEERS, "optnet", _scripted("optnet", ours, clock, log))
    monkeypatch.setitem(PEERS, "peer", _scripted("peer", theirs, clock, log))
    optnet, peer = SpeedBenchmark(_config(solvers=("optnet", "peer"), repeats=3)).records()
    o, q = ["optnet"] * 2, ["peer"] * 2  # one repetition: a forward and a forward+backward
    # warm-ups, then the repetitions (the order rotates by one each time), then accuracy runs
    assert log == ["optnet", "peer", *o, *q, *q, *o, *o, *q, "optnet", "peer"]
    assert optnet["forward_times_s"] == list(ours) and peer["forward_times_s"] == list(theirs)
    assert (optnet["forward_s"], peer["forward_s"]) == (1.0, 4.0)
    assert optnet["ratio_forward"] == 1.0
    assert peer["ratio_forward"] == peer["ratio_forward_backward"] == 2.0


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


_NO_MOREAU = importlib.util.find_spec("moreau") is None


def test_dense_csr_pattern_reads_row_major_values():
    offsets, columns = dense_csr(2, 3)
    assert offsets.tolist() == [0, 3, 6] and columns.tolist() == [0, 1, 2, 0, 1, 2]
    M, values, dense = torch.arange(6.0).reshape(2, 3), torch.arange(6.0), torch.zeros(2, 3)
    for row in range(2):
        start, stop = offsets[row], offsets[row + 1]
        dense[row, columns[start:stop]] = values[start:stop]
    assert dense.equal(M)


def test_moreau_peers_refuse_float32_and_cuda(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    for name in ("moreau", "moreau-active-set"):
        assert PEERS[name]().unavailable_reason(CPU, torch.float32) == "float64 only"
        assert PEERS[name]().unavailable_reason(torch.device("cuda"), torch.float64) is not None
        assert PEERS[name]().unavailable_reason(CPU, torch.float64) is None


@pytest.mark.skipif(_NO_MOREAU, reason="moreau not installed")
@pytest.mark.parametrize("neq", [2, 0])
def test_moreau_peers_solve_the_same_problems(neq):
    case = Case(torch.float64, 6, 6, neq, 3)
    config = _config(cases=(case,), solvers=("optnet", "moreau", "moreau-active-set"))
    _, ipm, active_set = SpeedBenchmark(config).records()
    for r in (ipm, active_set):
        assert r["skipped"] is None and r["version"] == "0.4.1"
        assert r["z_error"] < 1e-6 and r["z_error_clarabel"] < 1e-6 and r["unsolved"] == 0
        assert r["iterations_max"] >= 1 and r["ratio_forward_backward"] > 0
    assert active_set["grad_p_error"] < 1e-9  # exact on the active set
    assert ipm["grad_p_error"] < 1e-3  # its backward is ~1e-6 off even at tight tolerances


@pytest.mark.skipif(_NO_MOREAU, reason="moreau not installed")
def test_moreau_conic_form_gives_all_six_gradients():
    """The mapping Q -> P, [A; G] -> K, [b; h] -> c: Moreau's active-set gradients of every
    input agree with optnet's at a tight tolerance (Moreau's IPM backward is ~1e-5 off)."""
    qp = random_feasible_qp(3, 6, 6, 2, seed=5)

    def gradients(z_of):
        x = qp.leaves(requires_grad=True)
        (z_of(x) * qp.loss_weights).sum().backward()
        return [t.grad for t in x.inputs()]

    tight = SolverOptions(eps_abs=1e-12, eps_rel=1e-13, max_iter=100)
    expected = gradients(lambda x: solve_qp(*x.inputs(), options=tight).z)
    peer = PEERS["moreau-active-set"]()
    got = gradients(lambda x: peer.prepare(x, 1e-10).solve())
    for name, g, e in zip("QpGhAb", got, expected):
        torch.testing.assert_close(g, e, rtol=1e-8, atol=1e-9, msg=f"d/d{name}")


def test_tables_render_every_row():
    rows = [{"a": 1.23456, "b": None}, {"a": 2.0, "b": "x"}]
    columns = (("a", "A", ".2f"), ("b", "B", ""))
    text = format_table(rows, columns)
    assert "1.23" in text and text.count("\n") == 3
    assert format_markdown(rows, columns).splitlines()[2] == "| 1.23 | - |"


def test_cli_defaults_are_the_documented_grid(capsys):
    args = bench_cli.parse([])
    assert (args.sizes, args.batches) == ([10, 50, 100, 500], [1, 128, 1024])
    assert args.dtype == ["float64"]
    assert args.solvers == ["optnet", "qpth", "qplayer", "cvxpylayers"]
    assert bench_cli.parse(["speed"]).sizes == args.sizes  # `optnet bench` is `... bench speed`
    wrong = bench_cli.parse(["--solvers", "optnet-fused"])  # retired with the fused kernel
    assert wrong.func(wrong) == 2
    assert "optnet bench: error: unknown solvers ['optnet-fused']" in capsys.readouterr().err


def test_cli_writes_json_lines_tables_and_plot(tmp_path, capsys):
    argv = ["bench", "--sizes", "5", "--batches", "1,3", "--neq", "1", "--solvers", "optnet"]
    argv += ["--repeats", "1", "--clarabel-checks", "1", "--out", str(tmp_path)]
    assert optnet_main(argv) == 0
    lines = (tmp_path / "bench_cpu.jsonl").read_text().splitlines()
    assert [json.loads(line)["batch"] for line in lines] == [1, 3]
    assert (tmp_path / "bench_cpu.png").stat().st_size > 0
    assert "f+b ms" in capsys.readouterr().out


def test_speed_tables_fit_100_columns_and_say_how_to_install_a_peer():
    records = [
        {"solver": "optnet", "dtype": "float64", "n": 500, "m": 500, "neq": 100, "batch": 1024,
         "forward_s": 12.3456, "forward_backward_s": 23.4567, "ratio_forward": 1.0,
         "ratio_forward_backward": 1.0, "iterations_max": 50, "peak_memory_bytes": 2**40,
         "z_error": 1e-10, "z_error_median": 1e-11, "grad_p_error": 1e-9,
         "grad_p_error_median": 1e-10, "z_error_clarabel": 1e-9},
        {"solver": "moreau-active-set", "dtype": "float64", "n": 500, "m": 500, "neq": 100,
         "batch": 1024, "skipped": PEERS["moreau-active-set"]().unavailable_reason(CPU, None)},
    ]  # fmt: skip
    text = speed_tables(records)
    assert max(len(line) for line in text.splitlines() if not line.startswith("[")) <= 100
    assert "[1] moreau-active-set: not installed" in text and "pip install moreau==" in text


@pytest.mark.parametrize("name", list(bench_cli.BENCHMARKS))
def test_every_benchmark_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        optnet_main(["bench", name, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: optnet bench {name}" in capsys.readouterr().out


def test_sudoku_step_times_both_forms_of_the_bound(capsys):
    argv = ["--device", "cpu", "--solvers", "optnet,optnet-G", "--boards", "2", "--repeats", "1"]
    assert optnet_main(["bench", "sudoku-step", *argv]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    assert [(r["board"], r["n"], r["batch"], r["solver"]) for r in rows] == [
        ("4x4", 64, 150, "optnet"), ("4x4", 64, 150, "optnet-G")
    ]  # fmt: skip
    assert all(r["ms"] > 0 and r["ratio"] is None for r in rows)  # no qpth: no ratio
