"""The randomized suite of every class of QP a user can pose (``tests/support/classes.py``),
in float32 and float64, with default options, against Clarabel in float64 on the float64 data.

Per (class, dtype) it counts: problems, SOLVED, right infeasibility statuses, unsolved (a
solvable problem not SOLVED), wrong answers (SOLVED with z, or the objective where z is not
unique, off the reference, or infeasible; or SOLVED on an infeasible/unbounded problem), NaN in
z or the duals, and the worst error. It asserts the done-when of "Float32 you can trust": 0
wrong SOLVED, 0 NaN, unsolved <= 0.1 % (float64) / 1 % (float32), infeasible and unbounded
problems given the right status >= 99 %. The short run is in the default suite; the long run
(``--runslow``, >= 10,000 problems per dtype) prints a table (``pytest -s``) and writes it as
markdown to ``$OPTNET_RANDOM_TABLE`` when set.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import numpy as np
import pytest
import torch

import optnet
from optnet import QPStatus
from tests.support import TOLERANCES, assert_farkas, assert_unbounded_ray, reference_solve
from tests.support.classes import CLASSES, DUAL_INFEASIBLE, PRIMAL_INFEASIBLE, SOLVABLE

DTYPES = {"float64": torch.float64, "float32": torch.float32}
UNSOLVED_MAX = {torch.float64: 1e-3, torch.float32: 1e-2}
RIGHT_STATUS_MIN = 0.99
EXPECTED = {
    PRIMAL_INFEASIBLE: QPStatus.PRIMAL_INFEASIBLE,
    DUAL_INFEASIBLE: QPStatus.DUAL_INFEASIBLE,
}
# Ill-conditioned class: z is accepted within ILL_FACTOR * cond(Q) * eps(dtype) (relative, floor
# 1), never below the well-conditioned tolerance: the rounding floor of a solve with cond(Q).
ILL_FACTOR = 10.0

SHORT_BATCH, SHORT_SEEDS = 16, (0, 1)
LONG_BATCH, LONG_SEEDS = 64, tuple(range(12))  # 15 classes x 12 x 64 = 11,520 per dtype

# (class, dtype) whose thresholds are not met: marked xfail(strict) with the measured figure
# (long run: 768 problems per class and dtype; docs/benchmarks.md has the table).
# (Fixed since: Q = 0 in float32 gave NONCONVEX for n <= 16, 384 of 768 LPs per class.)
# float32 at the default eps 1e-4: |dz| ~ eps * ||p|| / lambda_min(Q) reaches a few 1e-3.
F32_Z = "float32 z off the reference by more than 1e-3 at default options: {}"
XFAIL_LONG = {
    # float32's rounding of dependent equality rows makes them inconsistent by ~1e-7 (Clarabel
    # calls the rounded data AlmostPrimalInfeasible): the float32 answer, within float32's
    # tolerance, is off the float64 data's solution by a few 1e-3.
    ("rank_deficient_A", "float32"): F32_Z.format("4/768, worst 2.1e-3"),
    ("ill_conditioned", "float64"): "25/768 SOLVED with z off by > max(1e-6, 10 cond eps), "
    "worst 9.3e-5 (stopping at eps 1e-9 allows ~cond * 1e-9)",
    ("tiny_scale", "float64"): "data * 1e-4 vs absolute eps 1e-9: 37/768 SOLVED with z off by "
    "> 1e-6, worst 4.8e-4",
    ("tiny_scale", "float32"): "data * 1e-4 vs absolute eps 1e-4: 186/768 SOLVED with z off "
    "by > 1e-3, worst 0.13",
}
# The short run (default suite, 32 problems per class and dtype): those of XFAIL_LONG that its
# few problems do hit, with the short run's figures.
XFAIL_SHORT = {
    ("tiny_scale", "float64"): "data * 1e-4 vs absolute eps 1e-9: 2/32 off by > 1e-6 (3.5e-6)",
    ("tiny_scale", "float32"): "data * 1e-4 vs absolute eps 1e-4: 15/32 off by > 1e-3 (0.18)",
}


def _n(seed: int) -> int:
    return 5 + (7 * seed + 3) % 26  # 5..30


@functools.cache
def _batch_and_reference(name: str, batch: int, seed: int):
    """The batch (float64) and, per problem, the reference z (None if Clarabel fails on a
    solvable problem) or, for infeasible kinds, whether Clarabel too fails to solve it."""
    cb = CLASSES[name](batch, _n(seed), seed)
    refs = []
    for i in range(batch):
        if cb.z_exact is not None:  # built from its solution: no reference needed
            refs.append(cb.z_exact[i].numpy())
            continue
        try:
            z, _, _ = reference_solve(*cb.problem(i))
        except RuntimeError:
            z = None
        refs.append(z)
    return cb, refs


def _objective(Q, p, z):
    return 0.5 * z @ Q @ z + p @ z


def _violation(prob, z):
    """Largest constraint violation of z, relative to the right-hand sides' size (floor 1)."""
    Q, p, G, h, A, b, lb, ub = prob
    viol, scale = [0.0], [1.0]
    for M, rhs, eq in ((G, h, False), (A, b, True)):
        if M is not None:
            r = M @ z - rhs
            viol.append(float((r.abs() if eq else r.clamp(min=0)).max()))
            scale.append(float(rhs.abs().max()))
    for bound, sign in ((lb, 1), (ub, -1)):
        if bound is not None:
            fin = torch.isfinite(bound)
            if fin.any():
                viol.append(float((sign * (bound[fin] - z[fin])).clamp(min=0).max()))
                scale.append(float(bound[fin].abs().max()))
    return max(viol) / max(scale)


def _bad_certificate(kind, cert, i, data):
    """None if the certificate of problem i proves its status (tests/support/certificates.py,
    on the data in the solve's dtype), else the failed condition."""
    one = {f.name: None if getattr(cert, f.name) is None else getattr(cert, f.name)[i]
           for f in dataclasses.fields(cert)}  # fmt: skip
    one = type(cert)(**one)
    names = ("Q", "p", "G", "h", "A", "b", "lb", "ub")
    prob = {k: None if x is None else x[i] for k, x in zip(names, data, strict=True)}
    check = assert_farkas if kind == PRIMAL_INFEASIBLE else assert_unbounded_ray
    try:
        check(one, **prob)
    except AssertionError as err:
        return str(err).splitlines()[0][:80]
    return None


def _tolerance(cb, i, dtype):
    """Relative tolerance on z (or the objective) of problem i."""
    base = TOLERANCES[("random_z", dtype)]
    if cb.cond is None:
        return base
    return max(base, ILL_FACTOR * float(cb.cond[i]) * torch.finfo(dtype).eps)


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max()) / max(1.0, float(np.abs(b).max()))


def run_class(name: str, dtype: torch.dtype, batch: int, seeds) -> dict:
    row = dict.fromkeys(
        (
            "problems",
            "solved",
            "right_status",
            "bad_certificate",
            "unsolved",
            "wrong",
            "nan",
            "ref_failed",
        ),
        0,
    )
    row["worst"], row["examples"], row["statuses"] = 0.0, [], {}
    for seed in seeds:
        cb, refs = _batch_and_reference(name, batch, seed)
        data = [None if x is None else x.to(dtype) for x in cb.data]
        Q, p, G, h, A, b, lb, ub = data
        sol = optnet.solve_qp(Q, p, G, h, A, b, lb=lb, ub=ub)
        outs = [sol.z, sol.lam, sol.nu, sol.lam_lb, sol.lam_ub]
        nan = torch.zeros(batch, dtype=torch.bool)
        for x in outs:
            if x is not None:
                nan |= x.isnan().flatten(1).any(1)
        for i in range(batch):
            row["problems"] += 1
            status = QPStatus(int(sol.status[i]))
            row["statuses"][status.name] = row["statuses"].get(status.name, 0) + 1
            where = f"seed={seed} i={i} n={_n(seed)} status={status.name}"
            if nan[i]:  # in z or the duals, whatever the status
                row["nan"] += 1
                row["examples"].append(f"NaN {where}")
            if status == QPStatus.SOLVED:
                row["solved"] += 1
            if cb.kind != SOLVABLE:
                if status == EXPECTED[cb.kind]:
                    row["right_status"] += 1
                    bad = _bad_certificate(cb.kind, sol.certificate, i, data)
                    if bad:
                        row["bad_certificate"] += 1
                        row["examples"].append(f"certificate: {bad} {where}")
                elif status == QPStatus.SOLVED:
                    row["wrong"] += 1
                    row["examples"].append(f"SOLVED on {cb.kind} {where}")
                else:
                    row["examples"].append(f"not {cb.kind} {where}")
                if refs[i] is not None:  # Clarabel solved a problem built infeasible
                    row["ref_failed"] += 1
                continue
            if refs[i] is None:
                row["ref_failed"] += 1
                continue
            if status != QPStatus.SOLVED:
                row["unsolved"] += 1
                row["examples"].append(f"unsolved {where}")
                continue
            prob = cb.problem(i)
            z = sol.z[i].detach().to(torch.float64)
            zref = torch.from_numpy(refs[i])
            tol = _tolerance(cb, i, dtype)
            if cb.compare == "z":
                err = _rel(z, zref)
            else:
                err = _rel(_objective(prob[0], prob[1], z), _objective(prob[0], prob[1], zref))
            err = max(err, _violation(prob, z))
            row["worst"] = max(row["worst"], err / tol)  # in units of the tolerance
            if err > tol:
                row["wrong"] += 1
                row["examples"].append(f"wrong err={err:.2e} tol={tol:.1e} {where}")
    return row


def check_row(name: str, dtype: torch.dtype, row: dict):
    kind = CLASSES[name](1, 5, 0).kind
    msg = f"{name} {dtype}: {row}"
    assert row["nan"] == 0, msg
    assert row["wrong"] == 0, msg
    if kind == SOLVABLE:
        considered = row["problems"] - row["ref_failed"]
        assert considered > 0, msg
        assert row["unsolved"] <= UNSOLVED_MAX[dtype] * considered, msg
    else:
        assert row["ref_failed"] == 0, f"Clarabel solved a problem built infeasible: {msg}"
        assert row["bad_certificate"] == 0, msg
        assert row["right_status"] >= RIGHT_STATUS_MIN * row["problems"], msg


def _params(xfails):
    out = []
    for name in CLASSES:
        for dname in DTYPES:
            marks = []
            if (name, dname) in xfails:
                marks = [pytest.mark.xfail(strict=True, reason=xfails[(name, dname)])]
            out.append(pytest.param(name, dname, marks=marks, id=f"{name}-{dname}"))
    return out


@pytest.mark.parametrize("name,dname", _params(XFAIL_SHORT))
def test_class_short(name, dname):
    dtype = DTYPES[dname]
    check_row(name, dtype, run_class(name, dtype, SHORT_BATCH, SHORT_SEEDS))


@pytest.fixture(scope="module")
def long_table():
    rows = {}
    yield rows
    if not rows:
        return
    head = (
        "| class | dtype | problems | SOLVED | right infeasible status | unsolved | "
        "wrong SOLVED | NaN | bad certificate | ref. failed | worst error / tol | seconds |"
    )
    lines = [head, "|" + "---|" * 12]
    for (name, dname), r in rows.items():
        lines.append(
            f"| {name} | {dname} | {r['problems']} | {r['solved']} | {r['right_status']} | "
            f"{r['unsolved']} | {r['wrong']} | {r['nan']} | {r['bad_certificate']} | "
            f"{r['ref_failed']} | "
            f"{r['worst']:.2e} | {r['seconds']:.1f} |"
        )
    for dname in DTYPES:
        total = sum(r["problems"] for (_, d), r in rows.items() if d == dname)
        lines.append(f"\n{dname}: {total} problems")
    table = "\n".join(lines)
    print("\n" + table)
    for (name, dname), r in rows.items():
        if r["examples"]:
            print(f"{name} {dname} statuses={r['statuses']} e.g. {r['examples'][:5]}")
    path = os.environ.get("OPTNET_RANDOM_TABLE")
    if path:
        with open(path, "w") as f:
            f.write(table + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("name,dname", _params(XFAIL_LONG))
def test_class_long(name, dname, long_table):
    dtype = DTYPES[dname]
    start = time.perf_counter()
    row = run_class(name, dtype, LONG_BATCH, LONG_SEEDS)
    row["seconds"] = time.perf_counter() - start
    long_table[(name, dname)] = row
    check_row(name, dtype, row)
