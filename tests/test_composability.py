"""solve_qp under PyTorch's transforms: the autograd contract, double backward, torch.func
(vmap, grad, jacrev, jacfwd, hessian), torch.compile, autocast and DDP (README, "Composability").
The tests taking ``tight_options`` or ``backend_options`` run on every backend (the conformance
suite, tests/test_conformance.py)."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from unittest import mock

import pytest
import torch
import torch._dynamo.testing
from torch import nn
from torch.func import grad, hessian, jacfwd, jacrev, vmap

import optnet
from optnet import _custom_op
from tests.support import GRADCHECK, TIGHT, assert_close_to, known_solution_problem

# torch's own forward-mode decompositions still call torch.jit.script on first use.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

F64 = torch.float64
DEFAULT_TIGHT = optnet.SolverOptions(**TIGHT)


def _general(batch=2):
    """(M, p, G, h, A, b) with Q = M M' of a strictly complementary known-solution problem."""
    (Q, p, G, h, A, b), _ = known_solution_problem(batch, 4, 4, 1, seed=0)
    return torch.linalg.cholesky(Q), p, G, h, A, b


def _box():
    """(M, p, lb, ub) of a problem with strictly active lower and upper bounds."""
    g = torch.Generator().manual_seed(1)
    M = torch.eye(4, dtype=F64) + 0.1 * torch.randn(2, 4, 4, generator=g, dtype=F64)
    p = torch.tensor([[3.0, -3.0, 0.2, -0.1], [-3.0, 0.1, 3.0, 0.3]], dtype=F64)
    return M, p, -torch.ones(2, 4, dtype=F64), torch.ones(2, 4, dtype=F64)


def _solve(M, p, G=None, h=None, A=None, b=None, lb=None, ub=None, options=DEFAULT_TIGHT):
    # Q is built from M inside the function, so that perturbations keep it symmetric.
    return optnet.solve_qp(M @ M.mT, p, G, h, A, b, lb=lb, ub=ub, options=options)


def _duals(sol):
    return tuple(x for x in (sol.z, sol.lam, sol.nu, sol.lam_lb, sol.lam_ub) if x is not None)


# --- the autograd contract ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["M", "p", "G", "h", "A", "b"])
def test_an_input_changed_in_place_after_the_forward_raises(name):
    inputs = dict(zip("M p G h A b".split(), (x.clone() for x in _general())))
    inputs["p"].requires_grad_()
    Q = inputs.pop("M")
    Q = Q @ Q.mT
    args = {"Q": Q, **inputs}
    sol = optnet.solve_qp(*args.values(), options=DEFAULT_TIGHT)
    with torch.no_grad():
        args["Q" if name == "M" else name].add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        sol.z.sum().backward()


def test_an_output_changed_in_place_after_the_forward_raises():
    M, p, G, h, A, b = _general()
    sol = _solve(M, p.clone().requires_grad_(), G, h, A, b)
    loss = sol.z.sum() + sol.lam.sum()
    with torch.no_grad():
        sol.lam.clamp_(min=0.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# --- double backward ------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["z", "lam", "nu"])
def test_gradgradcheck_all_inputs(tight_options, output):
    inputs = [x.clone().requires_grad_() for x in _general()]
    assert torch.autograd.gradgradcheck(
        lambda *a: getattr(_solve(*a, options=tight_options), output), inputs, **GRADCHECK
    )


def test_gradgradcheck_bounds(tight_options):
    M, p, lb, ub = (x.clone().requires_grad_() for x in _box())

    def f(M, p, lb, ub):
        sol = _solve(M, p, lb=lb, ub=ub, options=tight_options)
        return sol.z, sol.lam_lb, sol.lam_ub

    assert torch.autograd.gradgradcheck(f, (M, p, lb, ub), **GRADCHECK)


def test_double_backward_performs_no_factorization(tight_options):
    inputs = [x.clone().requires_grad_() for x in _general()]
    sol = _solve(*inputs, options=tight_options)
    with mock.patch("torch.linalg.cholesky_ex", side_effect=AssertionError("refactored")):
        grads = torch.autograd.grad(sol.z.square().sum(), inputs, create_graph=True)
        sum(g.square().sum() for g in grads).backward()
    assert all(x.grad is not None for x in inputs)


# --- torch.func -----------------------------------------------------------------------------


def test_vmap_over_some_inputs_matches_the_batched_solve(tight_options):
    M, p, G, h, A, b = _general(batch=3)
    Q = M @ M.mT
    # p and h vmapped, the rest shared by every sample (in_dims None).
    in_dims = (None, 0, None, 0, None, None)

    def z(Q, p, G, h, A, b):
        return optnet.solve_qp(Q, p, G, h, A, b, options=tight_options).z

    expected = optnet.solve_qp(Q[0], p, G[0], h, A[0], b[0], options=tight_options).z
    actual = vmap(z, in_dims)(Q[0], p, G[0], h, A[0], b[0])
    assert_close_to(actual, expected, "z", F64)


def test_vmap_nested_and_over_batched_problems(tight_options):
    M, p, G, h, A, b = _general(batch=6)
    Q = M @ M.mT
    expected = optnet.solve_qp(Q, p, G, h, A, b, options=tight_options)

    def solve(*args):
        return _duals(optnet.solve_qp(*args, options=tight_options))

    # Each vmapped sample is itself a batch of 2 problems; then vmap of vmap.
    shaped = [x.reshape(3, 2, *x.shape[1:]) for x in (Q, p, G, h, A, b)]
    once = vmap(solve)(*shaped)
    twice = vmap(vmap(solve))(*[x.reshape(3, 2, 1, *x.shape[2:]) for x in shaped])
    for a, c, e in zip(once, twice, _duals(expected)):
        assert_close_to(a.reshape(e.shape), e, "dual", F64)
        assert_close_to(c.reshape(e.shape), e, "dual", F64)


def test_vmap_checks_values_too():
    M, p, G, h, A, b = _general()
    p = p.clone()
    p[1, 0] = float("nan")
    with pytest.raises(ValueError, match="p contains NaN"):
        vmap(lambda p: optnet.solve_qp(M[0] @ M[0].mT, p, G[0], h[0], A[0], b[0]).z)(p)


def _unbatched(problem):
    return [x[0] for x in problem]


@pytest.mark.parametrize("problem", ["general", "box"])
def test_jacfwd_jacrev_and_finite_differences_agree(tight_options, problem):
    data = _unbatched(_general() if problem == "general" else _box())
    names = "M p G h A b".split() if problem == "general" else "M p lb ub".split()

    def z(*args):
        kwargs = dict(zip(names, args))
        return _solve(**kwargs, options=tight_options).z

    for i, x in enumerate(data):
        forward = jacfwd(z, argnums=i)(*data)
        reverse = jacrev(z, argnums=i)(*data)
        assert_close_to(forward, reverse, "grad", F64)
        # One central difference per input, along its first entry.
        e = torch.zeros(x.numel(), dtype=F64)
        e[0] = 1e-6
        e = e.reshape(x.shape)
        plus, minus = (z(*data[:i], x + s * e, *data[i + 1 :]) for s in (1, -1))
        assert_close_to((plus - minus) / 2e-6, reverse.reshape(-1, x.numel())[:, 0], "grad", F64)


def test_grad_matches_backward(tight_options):
    M, p, G, h, A, b = _unbatched(_general())

    def loss(p, h):
        sol = _solve(M, p, G, h, A, b, options=tight_options)
        return sol.z.square().sum() + sol.lam.sum()

    g_p, g_h = grad(loss, argnums=(0, 1))(p, h)
    p_, h_ = p.clone().requires_grad_(), h.clone().requires_grad_()
    loss(p_, h_).backward()
    assert_close_to(g_p, p_.grad, "grad", F64)
    assert_close_to(g_h, h_.grad, "grad", F64)


def test_hessian_forward_over_reverse_matches_reverse_over_reverse(tight_options):
    M, p, G, h, A, b = _unbatched(_general())

    def loss(p, h):
        sol = _solve(M, p, G, h, A, b, options=tight_options)
        return sol.z.square().sum() + sol.lam.square().sum()

    for argnums in (0, 1):
        fwd_rev = hessian(loss, argnums=argnums)(p, h)  # jacfwd(jacrev)
        rev_rev = jacrev(jacrev(loss, argnums=argnums), argnums=argnums)(p, h)
        assert_close_to(fwd_rev, rev_rev, "grad", F64)
        assert fwd_rev.abs().max() > 1e-3


def test_jvp_performs_no_factorization_beyond_the_forward():
    M, p, G, h, A, b = _unbatched(_general())

    def z(p):
        return _solve(M, p, G, h, A, b).z

    with mock.patch("optnet._kkt.factor_spd", wraps=optnet._kkt.factor_spd) as factor:
        z(p)
        forward_only = factor.call_count
    with mock.patch("optnet._kkt.factor_spd", wraps=optnet._kkt.factor_spd) as factor:
        torch.func.jvp(z, (p,), (torch.ones_like(p),))
        assert factor.call_count == forward_only


def test_unsolved_problems_get_zero_tangents(tight_options):
    from tests.support import random_qp

    Q, p, G, h, A, b = random_qp(None, 15, 20, 3, seed=6)
    # One iteration does not solve this one.
    unreachable = dataclasses.replace(tight_options, eps_abs=1e-9, eps_rel=1e-9, max_iter=1)

    def z(p, options):
        return optnet.solve_qp(Q, p, G, h, A, b, options=options).z

    status = optnet.solve_qp(Q, p, G, h, A, b, options=unreachable).status
    assert int(status) == optnet.QPStatus.MAX_ITER
    assert not jacfwd(z)(p, unreachable).any() and not jacrev(z)(p, unreachable).any()
    assert jacfwd(z)(p, tight_options).any()


# --- the custom ops -------------------------------------------------------------------------


@pytest.mark.parametrize("blocks", ["G", "A", "lb", "G A lb ub"])
def test_the_ops_fake_implementations_match(blocks):
    M, p, G, h, A, b = _general()
    lb, ub = -3 * torch.ones(4, dtype=F64), 3 * torch.ones(4, dtype=F64)
    given = {"G": (G, h), "A": (A, b), "lb": (lb,), "ub": (ub,)}
    present = {name: given[name] for name in blocks.split()}
    G, h = present.get("G", (None, None))
    A, b = present.get("A", (None, None))
    lb, ub = present.get("lb", (None,))[0], present.get("ub", (None,))[0]
    inputs = (M @ M.mT, p, G, h, A, b, lb, ub)
    args = _custom_op.pack_args(inputs, DEFAULT_TIGHT, None)
    checks = ("test_schema", "test_faketensor")
    torch.library.opcheck(_custom_op.solve_qp_op, args, test_utils=checks)
    fields, backend, factor = _custom_op.unpack_outputs(_custom_op.solve_qp_op(*args))
    rhs = (torch.randn_like(fields["z"]), torch.randn_like(factor.w))
    rhs = (*rhs, None if A is None else fields["nu"])
    active_args = (*inputs, list(factor), backend, *rhs)
    torch.library.opcheck(_custom_op.solve_active_op, active_args, test_utils=checks)
    # With a warm start: the guessed active set (the solution's own) as a bool tensor.
    warm_args = _custom_op.pack_args(inputs, DEFAULT_TIGHT, factor.active > 0)
    torch.library.opcheck(_custom_op.solve_qp_op, warm_args, test_utils=checks)


# --- torch.compile --------------------------------------------------------------------------


def _compiled(fn):
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    return torch.compile(fn, fullgraph=True, dynamic=True, backend=counter), counter


def test_compile_fullgraph_no_recompile_on_new_batch_size(tight_options):
    torch._dynamo.reset()

    def loss(Q, p, G, h, A, b):
        sol = optnet.solve_qp(Q, p, G, h, A, b, options=tight_options)
        return sol.z.square().sum() + sol.lam.sum() + sol.nu.sum()

    compiled, counter = _compiled(loss)
    compiles = None
    for batch in (2, 3, 5):
        M, p, G, h, A, b = _general(batch)
        p1, p2 = p.clone().requires_grad_(), p.clone().requires_grad_()
        actual, expected = compiled(M @ M.mT, p1, G, h, A, b), loss(M @ M.mT, p2, G, h, A, b)
        actual.backward()
        expected.backward()
        assert_close_to(actual.detach(), expected.detach(), "z", F64)
        assert_close_to(p1.grad, p2.grad, "grad", F64)
        compiles = compiles or counter.frame_count
        assert counter.frame_count == compiles  # no recompilation for a new batch size
    assert torch._dynamo.explain(loss)(M @ M.mT, p, G, h, A, b).graph_break_count == 0


def test_compile_a_training_step_with_an_optnet_layer():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4, dtype=F64), optnet.nn.OptNetLayer(4, 6, 1, dtype=F64))
    x, y = torch.randn(8, 5, dtype=F64), torch.randn(8, 4, dtype=F64)

    def loss(x):
        return (model(x) - y).square().mean()

    compiled, _ = _compiled(loss)
    compiled(x).backward()
    actual = [q.grad.clone() for q in model.parameters()]
    model.zero_grad()
    loss(x).backward()
    for a, e in zip(actual, (q.grad for q in model.parameters())):
        assert_close_to(a, e, "grad", F64)


def test_compiled_double_backward_is_a_clear_error():
    torch._dynamo.reset()
    M, p, G, h, A, b = _general()
    compiled, _ = _compiled(lambda p: optnet.solve_qp(M @ M.mT, p, G, h, A, b).z.square().sum())
    p = p.clone().requires_grad_()
    # PyTorch refuses: "does not currently support double backward", or about donated buffers.
    with pytest.raises(RuntimeError, match="double backward|create_graph=False"):
        (g,) = torch.autograd.grad(compiled(p), p, create_graph=True)
        g.sum().backward()


@pytest.mark.slow
def test_compile_with_inductor():
    torch._dynamo.reset()
    M, p, G, h, A, b = _general()
    Q = M @ M.mT
    compiled = torch.compile(lambda p: optnet.solve_qp(Q, p, G, h, A, b).z, fullgraph=True)
    assert_close_to(compiled(p), optnet.solve_qp(Q, p, G, h, A, b).z, "z", F64)


# --- warm start and the closest feasible problem under the transforms -----------------------


def test_warm_start_under_vmap_and_compile(tight_options):
    M, p, G, h, A, b = _general(batch=3)
    Q = M @ M.mT
    previous = optnet.solve_qp(Q, p, G, h, A, b, options=tight_options)
    guess = previous.active_set.ineq

    def loss(p, guess):
        sol = optnet.solve_qp(Q, p, G, h, A, b, options=tight_options,
                              warm_start=optnet.ActiveSet(ineq=guess))  # fmt: skip
        return sol.z.square().sum(), sol.iterations

    torch._dynamo.reset()
    compiled, _ = _compiled(loss)
    p1, p2 = (p.clone().requires_grad_() for _ in range(2))
    (actual, iterations), (expected, _) = compiled(p1, guess), loss(p2, guess)
    actual.backward()
    expected.backward()
    assert int(iterations.sum()) == 0
    assert_close_to(actual.detach(), expected.detach(), "z", F64)
    assert_close_to(p1.grad, p2.grad, "grad", F64)

    def one(Q, p, G, h, A, b, guess):
        sol = optnet.solve_qp(Q, p, G, h, A, b, options=tight_options,
                              warm_start=optnet.ActiveSet(ineq=guess))  # fmt: skip
        return sol.z, sol.iterations

    z, iterations = vmap(one)(Q, p, G, h, A, b, guess)
    assert int(iterations.sum()) == 0
    assert_close_to(z, previous.z, "z", F64)


def test_closest_feasible_under_vmap_jacfwd_and_compile(backend_options):
    # z1 <= h1 and -z1 <= h2: infeasible where h1 + h2 < 0, with z1 = (h1 - h2) / 2 there.
    Q, G = torch.eye(2, dtype=F64), torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64)
    p = torch.tensor([0.3, -1.0], dtype=F64)
    H = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [-1.0, 0.0], [2.0, 2.0]], dtype=F64)
    closest = dataclasses.replace(backend_options, infeasible="closest")

    def z(h):
        return optnet.solve_qp(Q, p, G, h, options=closest).z

    eager = torch.stack([z(h) for h in H])
    assert_close_to(eager[:, 0], torch.tensor([-0.3, 0.0, -0.5, -0.3], dtype=F64), "z", F64)
    assert_close_to(vmap(z)(H), eager, "z", F64)
    expected = torch.tensor([[0.0, 0.0], [0.5, -0.5], [0.5, -0.5], [0.0, 0.0]], dtype=F64)
    assert_close_to(vmap(jacrev(lambda h: z(h)[0]))(H), expected, "grad", F64)
    for i in (0, 2):  # a feasible and a relaxed problem
        assert_close_to(jacfwd(z)(H[i])[0], expected[i], "grad", F64)
    torch._dynamo.reset()  # static shapes: compiling the three solves dynamically takes 5 s
    compiled = torch.compile(lambda h: z(h)[..., 0].sum(), fullgraph=True, backend="aot_eager")
    h = H.clone().requires_grad_()
    compiled(h).backward()
    assert_close_to(h.grad, expected, "grad", F64)


# --- autocast and DDP -----------------------------------------------------------------------


def test_autocast_solves_in_the_inputs_dtype():
    M, p, G, h, A, b = (x.float() for x in _general())
    Q = M @ M.mT
    G1, G2 = G.clone().requires_grad_(), G.clone().requires_grad_()
    expected = optnet.solve_qp(Q, p, G1, h, A, b)
    expected.z.sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        actual = optnet.solve_qp(Q, p, G2, h, A, b)
        actual.z.sum().backward()
        with pytest.raises(TypeError, match="float32 or float64"):
            optnet.solve_qp(Q.bfloat16(), p.bfloat16())
    assert actual.z.dtype == torch.float32 and bool(actual.solved.all())
    assert torch.equal(actual.z, expected.z)
    assert torch.equal(G2.grad, G1.grad)


def test_ddp_gradients_equal_the_single_process_ones(tmp_path, monkeypatch):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("no gloo")
    torch.manual_seed(0)
    model = optnet.nn.OptNetLayer(4, 6, 1, dtype=F64)
    x = torch.randn(8, 4, dtype=F64)
    model(x).square().sum().backward()
    expected = [q.grad.clone() for q in model.parameters()]
    model.zero_grad()
    store = dist.FileStore(os.fspath(tmp_path / "store"), 1)
    dist.init_process_group(
        "gloo", store=store, rank=0, world_size=1, timeout=timedelta(seconds=60)
    )
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        ddp(x).square().sum().backward()
    finally:
        dist.destroy_process_group()
    for a, e in zip((q.grad for q in model.parameters()), expected):
        assert_close_to(a, e, "grad", F64)
