"""Every bad input raises a clear error before any work; inputs are never modified."""

from __future__ import annotations

import pytest
import torch

import optnet
from optnet._problem import Problem

d = torch.float64


def problem(batch=3, n=4, m=5, neq=2):
    lead = (batch,)
    return dict(
        Q=torch.eye(n, dtype=d).expand(*lead, n, n).clone(),
        p=torch.randn(*lead, n, dtype=d),
        G=torch.randn(*lead, m, n, dtype=d),
        h=torch.ones(*lead, m, dtype=d),
        A=torch.randn(*lead, neq, n, dtype=d),
        b=torch.zeros(*lead, neq, dtype=d),
    )


def solve(**kw):
    return optnet.solve_qp(**kw)


@pytest.mark.parametrize(
    "name,bad,message",
    [
        ("Q", torch.eye(3, dtype=d), r"Q must have shape \(n, n\).*got \(3, 3\)"),
        ("p", torch.randn(3, 4, 1, dtype=d), r"p must have shape"),
        ("G", torch.randn(3, 5, 6, dtype=d), r"G must have shape \(m, n\).*got \(3, 5, 6\)"),
        ("h", torch.randn(3, 4, dtype=d), r"h must have shape \(m,\)"),
        ("A", torch.randn(3, 2, 3, dtype=d), r"A must have shape"),
        ("b", torch.randn(3, 3, dtype=d), r"b must have shape"),
    ],
)
def test_wrong_shapes_name_the_argument(name, bad, message):
    kw = problem()
    kw[name] = bad
    with pytest.raises(ValueError, match=message):
        solve(**kw)


@pytest.mark.parametrize("batched", [False, True])
def test_p_of_the_wrong_length_is_blamed_on_p(batched):
    lead = (3,) if batched else ()
    Q, p = torch.eye(4, dtype=d), torch.zeros(*lead, 5, dtype=d)
    with pytest.raises(ValueError, match=r"p must have shape \(n,\) = \(4,\).*got \("):
        optnet.solve_qp(Q, p)
    with pytest.raises(ValueError, match=r"p must have shape \(n,\) = \(4,\)"):
        optnet.solve_qp(Q, p, torch.ones(2, 4, dtype=d), torch.ones(2, dtype=d))


def test_disagreeing_batch_sizes():
    kw = problem()
    kw["h"] = torch.ones(2, 5, dtype=d)
    with pytest.raises(ValueError, match="batch sizes disagree: h has batch size 2"):
        solve(**kw)


@pytest.mark.parametrize("name", ["Q", "p", "G", "A", "b"])
def test_non_finite_entries(name):
    kw = problem()
    kw[name] = kw[name].clone()
    kw[name].view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match=f"{name} contains NaN or infinite"):
        solve(**kw)


def test_nan_or_minus_inf_in_h():
    kw = problem()
    kw["h"] = kw["h"].clone()
    kw["h"][0, 0] = -float("inf")
    with pytest.raises(ValueError, match="h contains NaN or -inf"):
        solve(**kw)


def test_lb_rejects_plus_inf():
    kw = problem()
    with pytest.raises(ValueError, match="lb contains NaN or inf"):
        solve(**kw, lb=torch.full((3, 4), float("inf"), dtype=d))


def test_dtype_mismatch():
    kw = problem()
    kw["G"] = kw["G"].float()
    with pytest.raises(TypeError, match="one dtype: p is torch.float64 but G is torch.float32"):
        solve(**kw)


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.bool])
def test_unsupported_dtypes(dtype):
    kw = problem()
    kw["Q"] = kw["Q"].to(dtype)
    with pytest.raises(TypeError, match="Q must be float32 or float64"):
        solve(**kw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_device_mismatch():
    kw = problem()
    kw["G"] = kw["G"].cuda()
    with pytest.raises(ValueError, match="one device"):
        solve(**kw)


def test_device_mismatch_with_meta_device():
    kw = problem()
    kw["h"] = torch.ones(3, 5, dtype=d, device="meta")
    with pytest.raises(ValueError, match="one device: p is on cpu but h is on meta"):
        solve(**kw)


def test_non_symmetric_Q():
    kw = problem()
    kw["Q"] = kw["Q"].clone()
    kw["Q"][1, 0, 1] = 0.5
    with pytest.raises(ValueError, match="Q must be symmetric"):
        solve(**kw)


@pytest.mark.parametrize("given,missing", [("G", "h"), ("h", "G"), ("A", "b"), ("b", "A")])
def test_half_a_constraint_block(given, missing):
    kw = problem()
    kw[missing] = None
    with pytest.raises(ValueError, match=f"{given} was given without {missing}"):
        solve(**kw)


def test_non_tensor_input():
    kw = problem()
    kw["p"] = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(TypeError, match="p must be a torch.Tensor or None, got list"):
        solve(**kw)


def test_options_type_and_values():
    with pytest.raises(TypeError, match="options must be a SolverOptions"):
        solve(**problem(), options={"max_iter": 3})
    with pytest.raises(ValueError, match="max_iter must be an int >= 1"):
        optnet.SolverOptions(max_iter=0)
    with pytest.raises(ValueError, match="eps_abs must be a float >= 0"):
        optnet.SolverOptions(eps_abs=-1.0)
    with pytest.raises(ValueError, match="compute_dtype"):
        optnet.SolverOptions(compute_dtype=torch.int32)
    with pytest.raises(ValueError, match=r"eps_infeasible must be in \(0, 1\)"):
        optnet.SolverOptions(eps_infeasible=0)
    with pytest.raises(ValueError, match=r"regularization must be in \[0, 1\)"):
        optnet.SolverOptions(regularization=1.5)
    with pytest.raises(ValueError, match="infeasible must be one of 'status', 'closest'"):
        optnet.SolverOptions(infeasible="relax")


def test_validation_runs_before_any_work(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the solver ran")

    monkeypatch.setattr(optnet._backends, "solve", fail)
    kw = problem()
    kw["b"] = torch.zeros(3, 7, dtype=d)
    with pytest.raises(ValueError, match="b must have shape"):
        solve(**kw)


def test_inputs_are_not_modified():
    kw = problem()
    kw["h"][0, 1] = float("inf")
    before = {k: v.clone() for k, v in kw.items()}
    lb = torch.full((4,), -float("inf"), dtype=d)
    solve(**kw, lb=lb)
    for k, v in kw.items():
        assert torch.equal(v, before[k]), k
    assert torch.isinf(lb).all()


def test_backend_names_are_checked_and_equilibration_picks_batched():
    from optnet import _backends

    with pytest.raises(ValueError, match=r"backend must be one of 'auto', 'batched', 'graphed'"):
        optnet.SolverOptions(backend="fused")
    problem = Problem.from_inputs(torch.eye(2, dtype=d), torch.ones(2, dtype=d), *[None] * 6, 1)
    assert _backends.select(problem, optnet.SolverOptions()) == "batched"  # CPU
    assert _backends.select(problem, optnet.SolverOptions(backend="graphed")) == "graphed"
    equilibrate = optnet.SolverOptions(equilibrate=True)
    assert _backends.select(problem, equilibrate) == "batched"
    with pytest.raises(ValueError, match="equilibrate=True.*'batched' backend only"):
        _backends.select(problem, optnet.SolverOptions(equilibrate=True, backend="graphed"))
