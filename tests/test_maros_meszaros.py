"""Maros-Meszaros loader and qpbenchmark-style scoring; a data-marked subset solves for real."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
from scipy import sparse
from scipy.io import savemat

import optnet
from optnet_benchmarks import maros_meszaros as mm_cli
from optnet_benchmarks.maros_data import convert, load_problem, optimal_costs, problem_names
from optnet_benchmarks.maros_meszaros import MarosConfig, run_maros_meszaros
from optnet_benchmarks.qp_scoring import optimality
from optnet_experiments.data_paths import data_dir

BIG = 1e20


def _write_tiny(path, *, fixed=False):
    """n = 3; general rows: an equality, a two-sided range, a one-sided row, a free row."""
    n = 3
    general = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    l_gen = np.array([2.0, -1.0, -BIG, -BIG])
    u_gen = np.array([2.0, 4.0, 3.0, BIG])
    lb = np.array([0.0, -BIG, 1.0 if fixed else -2.0])
    ub = np.array([BIG, 5.0, 1.0 if fixed else 2.0])
    A = sparse.csc_matrix(np.vstack([general, np.eye(n)]))
    P = sparse.csc_matrix(np.diag([2.0, 1.0, 1.0]))
    savemat(
        path,
        {
            "n": np.array([[n]], dtype=np.uint8),
            "m": np.array([[A.shape[0]]], dtype=np.uint8),
            "P": P,
            "q": np.array([[1], [0], [255]], dtype=np.uint8),  # 255: negating uint8 would wrap
            "r": np.array([[7]], dtype=np.int16),
            "A": A,
            "l": np.concatenate([l_gen, lb]).reshape(-1, 1),
            "u": np.concatenate([u_gen, ub]).reshape(-1, 1),
        },
    )
    return path


def test_loader_casts_integers_and_splits_rows(tmp_path):
    problem = load_problem(_write_tiny(tmp_path / "TINY.mat"))
    assert problem.name == "TINY" and problem.n == 3
    np.testing.assert_array_equal(problem.q, [1.0, 0.0, 255.0])
    assert problem.r == 7.0 and problem.P.dtype == np.float64
    # the equality row
    np.testing.assert_array_equal(problem.A, [[1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(problem.b, [2.0])
    # upper sides first (range row, one-sided row), then the range row's lower side negated;
    # the free row and the infinite sides are gone
    np.testing.assert_array_equal(problem.G, [[1, -1, 0], [0, 1, 1], [-1, 1, 0]])
    np.testing.assert_array_equal(problem.h, [4.0, 3.0, 1.0])
    np.testing.assert_array_equal(problem.lb, [0.0, -np.inf, -2.0])
    np.testing.assert_array_equal(problem.ub, [np.inf, 5.0, 2.0])
    assert problem.n_fixed == 0


def test_fixed_variables_become_equalities_or_stay_bounds(tmp_path):
    path = _write_tiny(tmp_path / "FIX.mat", fixed=True)
    as_rows = load_problem(path)
    assert as_rows.n_fixed == 1 and as_rows.neq == 2
    np.testing.assert_array_equal(as_rows.A[1], [0.0, 0.0, 1.0])
    assert as_rows.b[1] == 1.0
    assert as_rows.lb[2] == -np.inf and as_rows.ub[2] == np.inf
    as_bounds = load_problem(path, fixed_as_equalities=False)
    assert as_bounds.neq == 1 and as_bounds.lb[2] == as_bounds.ub[2] == 1.0


def test_loader_rejects_files_without_identity_bound_rows():
    with pytest.raises(ValueError, match="identity"):
        convert("BAD", np.eye(2), [0, 0], 0, np.ones((2, 2)), [0, 0], [1, 1])


def test_unbounded_problem_has_no_bound_blocks():
    problem = convert("FREE", np.eye(2), [1, 1], 0, np.eye(2), [-BIG, -BIG], [BIG, BIG])
    assert problem.lb is None and problem.ub is None and problem.G is None and problem.A is None


def test_scoring_is_zero_at_a_kkt_point_and_sees_each_violation():
    # min 1/2 ||z||^2 - z_0  s.t.  z_0 <= 0.5, z_1 + z_2 = 1, z_2 >= 0.8
    P, q = np.eye(3), np.array([-1.0, 0.0, 0.0])
    G, h = np.array([[1.0, 0.0, 0.0]]), np.array([0.5])
    A, b = np.array([[0.0, 1.0, 1.0]]), np.array([1.0])
    lb, ub = np.array([-np.inf, -np.inf, 0.8]), np.full(3, np.inf)
    z = np.array([0.5, 0.2, 0.8])
    lam, nu = np.array([0.5]), np.array([-0.2])
    lam_lb, lam_ub = np.array([0.0, 0.0, 0.6]), np.zeros(3)
    kkt = dict(z=z, lam=lam, nu=nu, lam_lb=lam_lb, lam_ub=lam_ub)
    exact = optimality(P, q, G, h, A, b, lb, ub, **kkt)
    assert max(exact.primal_residual, exact.dual_residual, exact.duality_gap) < 1e-14
    assert exact.passes(1e-9)
    shifted = optimality(P, q, G, h, A, b, lb, ub, **{**kkt, "z": z + [0.1, 0.0, -0.1]})
    assert shifted.primal_residual == pytest.approx(0.1)
    assert "primal" in shifted.failing(1e-3)
    wrong_dual = optimality(P, q, G, h, A, b, lb, ub, **{**kkt, "lam": np.array([0.4])})
    assert wrong_dual.dual_residual == pytest.approx(0.1)
    assert wrong_dual.duality_gap == pytest.approx(0.05)
    assert not optimality(P, q, G, h, A, b, lb, ub, **{**kkt, "z": z * np.nan}).passes(1.0)


def _parse(argv):
    parser = argparse.ArgumentParser()
    mm_cli.register(parser.add_subparsers())
    return parser.parse_args(["maros-meszaros", *argv])


def test_cli_on_hand_made_folder(tmp_path, capsys):
    _write_tiny(tmp_path / "TINY.mat")
    (tmp_path / "opt_costs.json").write_text(json.dumps({"TINY": 0.0}))
    args = _parse(["--data", str(tmp_path), "--tiers", "mid,low", "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    records = [json.loads(x) for x in (tmp_path / "out/maros_cpu_float64.jsonl").open()]
    assert [r["tier"] for r in records] == ["mid", "low"]
    assert all(r["passed"] for r in records)
    assert "success rate: mid 100.0%, low 100.0%" in capsys.readouterr().out


def test_cli_scores_the_returned_point_not_the_solver_status(tmp_path, monkeypatch, capsys):
    # a solver that says SOLVED but returns z off by 1e-4 must fail the mid tier (1e-6)
    solve_qp = optnet.solve_qp

    def off_by_1e4(*args, **kwargs):
        sol = solve_qp(*args, **kwargs)
        return dataclasses.replace(sol, z=sol.z + 1e-4)

    monkeypatch.setattr(optnet, "solve_qp", off_by_1e4)
    _write_tiny(tmp_path / "TINY.mat")
    args = _parse(["--data", str(tmp_path), "--tiers", "mid", "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    (record,) = [json.loads(x) for x in (tmp_path / "out/maros_cpu_float64.jsonl").open()]
    assert record["status"] == "SOLVED" and record["solver_primal_residual"] < 1e-6
    # the equality row z_0 + z_1 = 2 alone is off by 2e-4
    assert record["primal_residual"] >= 2e-4 - 1e-12
    assert not record["passed"] and "primal" in record["failing"]
    assert "objective_error" not in record  # no opt_costs.json in the folder
    assert "success rate: mid 0.0%" in capsys.readouterr().out


def test_cli_data_folder_comes_from_optnet_data(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "data" / "maros_meszaros"
    folder.mkdir(parents=True)
    _write_tiny(folder / "T.mat")
    monkeypatch.setenv("OPTNET_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no ../shared/data from here
    assert _parse([]).data is None  # the default is resolved when the command runs
    args = _parse(["--tiers", "low", "--out", "out"])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "out/maros_cpu_float64.jsonl").read_text())["problem"] == "T"
    monkeypatch.setenv("OPTNET_DATA", str(tmp_path / "nowhere"))
    capsys.readouterr()
    assert args.func(args) == 2
    assert f"no Maros-Meszaros folder at {tmp_path / 'nowhere' / 'maros_meszaros'}" in (
        capsys.readouterr().err
    )


_SMALL = ("HS21", "HS35", "HS51", "HS76", "GENHS28", "QAFIRO")
DATA = data_dir("maros_meszaros")  # $OPTNET_DATA/maros_meszaros, else ../shared/data/...


@pytest.mark.data
@pytest.mark.skipif(not DATA.is_dir(), reason=f"no Maros-Meszaros data at {DATA}")
def test_small_problems_solve_at_mid_and_low_accuracy():
    assert set(_SMALL) <= set(problem_names(DATA))
    costs = optimal_costs(DATA)
    config = MarosConfig(data=DATA, problems=_SMALL, tiers=("mid", "low"), max_iter=100)
    for record in run_maros_meszaros(config):
        name = record["problem"]
        assert record["passed"], (name, record["tier"], record.get("failing"))
        assert record["objective_reference"] == costs[name]
        assert record["objective_error"] < 10 * record["tolerance"], name
