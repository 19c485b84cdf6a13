"""The autograd Functions behind ``solve_qp``: backward, jvp and vmap rules.

``QPFunction`` runs the custom op ``optnet::solve_qp`` (``_custom_op``) and differentiates its
solution z, lam, nu, lam_lb, lam_ub in all eight inputs; the same backward is registered on the
op itself, which is what ``solve_qp`` calls under torch.compile (Dynamo does not trace an
autograd.Function with a ``jvp``). Everything the derivatives read is saved with
``save_for_backward`` / ``save_for_forward``: the inputs, the differentiable outputs and the
polish's active-set factor (op outputs), so an in-place change of any of them after the forward
raises autograd's usual error, and torch.func sees no side channel.

Both derivatives are solves with the active-set KKT matrix K of the forward's factor
(``_implicit``): no factorization. ``ActiveSolve`` is that solve as a Function of K's data and
the right-hand side, so the backward is itself differentiable (its derivative is again a solve
with K): double backward, ``hessian`` and jacfwd-of-jacrev work. The vmap rules are generated
(``generate_vmap_rule``): the two ops have vmap rules and the rest is tensor operations. The
rules run outside torch.autocast, as the ops do: the solver keeps its dtypes.
"""

from __future__ import annotations

import functools

import torch

from . import _custom_op, _implicit
from ._custom_op import pack_args, unpack_args, unpack_outputs
from ._kkt import FACTOR_FIELDS, FactorTensors
from ._problem import INPUT_NAMES, Problem, batch_size, reduce_to_input
from ._solution import DIFFERENTIABLE_FIELDS, OUTPUT_FIELDS
from ._status import QPStatus

_N_IN, _N_FACTOR = len(INPUT_NAMES), len(FACTOR_FIELDS)


def solve(inputs, options, warm_active) -> tuple[torch.Tensor, ...]:
    """The op's outputs (``_custom_op.OUTPUTS``), differentiable in the eight inputs."""
    args = pack_args(inputs, options, warm_active)
    if torch.compiler.is_compiling():
        # Dynamo does not trace an autograd.Function with a jvp: call the op, whose registered
        # autograd is QPFunction's backward (torch.compile supports no forward mode anyway).
        return _custom_op.solve_qp_op(*args)
    return QPFunction.apply(*args)


def values_readable(x: torch.Tensor) -> bool:
    """Whether the host may read ``x``'s values: not under torch.compile, nor inside a
    torch.func transform (vmap's values cannot be read; under grad or jacrev nested in a vmap
    the outer wrapper is not vmap's, so any transform counts)."""
    if torch.compiler.is_compiling():
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(x)


def _outside_autocast(rule):
    """A derivative rule run in the solver's dtypes even where the caller runs torch.autocast."""

    @functools.wraps(rule)
    def run(ctx, *args):
        with torch.autocast(ctx.device_type, enabled=False):
            return rule(ctx, *args)

    return run


def _problem(inputs, dtype: torch.dtype, batch: int) -> tuple[Problem, list]:
    """The Problem of the eight inputs in ``dtype``, and the cast inputs (differentiable)."""
    cast = [None if x is None else x.to(dtype) for x in inputs]
    return Problem.from_inputs(*cast, batch), cast


class QPFunction(torch.autograd.Function):
    """Batched QP solve; differentiable in all eight inputs through z, lam, nu, lam_lb, lam_ub.

    Arguments and outputs: the op's (``_custom_op.pack_args``, ``_custom_op.OUTPUTS``). The
    backward receives the code of the backend that ran and its factor. A warm-started problem
    carries the factor of the solve that produced it (the guess's or, where that failed, the
    interior point's), so the derivatives are the same either way.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(*args):
        return _custom_op.solve_qp_op(*args)

    @staticmethod
    def setup_context(ctx, inputs, output):
        tensors, options, _ = unpack_args(inputs)
        fields, backend, factor = unpack_outputs(output)
        ctx.dtype = options.compute_dtype or tensors[1].dtype
        ctx.device_type = tensors[1].device.type
        ctx.batch = batch_size(tensors)
        ctx.input_dims = [None if x is None else x.dim() for x in tensors]
        differentiable = [fields[name] for name in DIFFERENTIABLE_FIELDS]
        saved = (*tensors, *differentiable, fields["status"], backend, *factor)
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)
        ctx.set_materialize_grads(False)
        other = [x for name, x in fields.items() if name not in DIFFERENTIABLE_FIELDS]
        ctx.mark_non_differentiable(*other, backend, *factor)

    @staticmethod
    @_outside_autocast
    def backward(ctx, *grad_outputs):
        needed = dict(zip(INPUT_NAMES, ctx.needs_input_grad[:_N_IN]))
        nothing = (None,) * (len(ctx.needs_input_grad) - _N_IN)  # options, warm start
        if not any(needed.values()):
            return (None,) * _N_IN + nothing
        inputs, outputs, status, backend, factor = _unpack(ctx.saved_tensors)
        problem, cast = _problem(inputs, ctx.dtype, ctx.batch)
        z, lam, nu = _solution(problem, outputs, ctx.dtype)
        valid = _valid(status, factor)
        grads = dict(zip(OUTPUT_FIELDS, grad_outputs))

        # Unsolved problems (and failed factors) get zero gradients, not finite garbage.
        def cotangent(name, like):
            return _or_zeros(grads[name], like).to(ctx.dtype) * valid

        g_z = cotangent("z", z)
        parts = zip(("lam", "lam_lb", "lam_ub"), problem.split_rows(lam))
        g_lam = problem.stack_rows([None if x is None else cotangent(f, x) for f, x in parts], z)
        g_nu = None if nu is None else cotangent("nu", nu)
        d_z, y, d_nu = ActiveSolve.apply(ctx.batch, *cast, *factor, backend, g_z, g_lam, g_nu)
        adj = _implicit.Adjoint(d_z, y, None if nu is None else d_nu)
        param = _implicit.parameter_gradients(problem, adj, z, lam, nu, needed)
        out = [
            None if param[name] is None else reduce_to_input(param[name], dim).to(x.dtype)
            for name, dim, x in zip(INPUT_NAMES, ctx.input_dims, inputs)
        ]
        return (*out, *nothing)

    @staticmethod
    @_outside_autocast
    def jvp(ctx, *tangents):
        inputs, outputs, status, backend, factor = _unpack(ctx.saved_tensors)
        problem, _ = _problem(inputs, ctx.dtype, ctx.batch)
        z, lam, nu = _solution(problem, outputs, ctx.dtype)
        t = {name: None if x is None else x.to(ctx.dtype) for name, x in zip(INPUT_NAMES, tangents)}
        # The right-hand side [-p; h_all; b] of the active-set system, h_all = [h; -lb; ub].
        r1 = -_or_zeros(t["p"], z)
        r_lam = problem.stack_rows([t["h"], None if t["lb"] is None else -t["lb"], t["ub"]], z)
        r2 = None if nu is None else _or_zeros(t["b"], nu)
        f = _custom_op.active_factor(problem, factor, backend)
        dz, dlam, dnu = _implicit.tangent(
            problem, f, z, lam, nu, t["Q"], t["G"], t["A"], r1, r_lam, r2
        )
        valid = _valid(status, factor)
        out = dict(zip(("lam", "lam_lb", "lam_ub"), problem.split_rows(dlam * valid)))
        out["z"], out["nu"] = dz * valid, None if dnu is None else dnu * valid

        # A tensor for each differentiable output (autograd rejects None there; an absent
        # block's is empty), None for the others (marked non-differentiable).
        def tangent(name):
            if name not in DIFFERENTIABLE_FIELDS:
                return None
            return _or_zeros(out[name], outputs[name]).to(outputs[name].dtype)

        return (*map(tangent, OUTPUT_FIELDS), *(None,) * (1 + _N_FACTOR))


class ActiveSolve(torch.autograd.Function):
    """(x, lam, y) = K^-1 (r1, r_lam, r2) with the forward's factor of the active-set matrix K.

    K = [Q C_a' A'; C_a 0 0; A 0 0] depends on Q, G and A (``_kkt.solve_active``); ``y`` is
    empty without equality constraints. Its backward and jvp are solves with the same factor,
    so derivatives of any order cost no factorization.

    Arguments: the batch size, the eight inputs, the factor's tensors, the backend code (see
    ``_custom_op``), then r1, r_lam, r2 (``_split_active``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(batch, *args):
        data, factor, backend, rhs = _split_active(args)
        return _custom_op.solve_active_op(*data, list(factor), backend, *rhs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        data, factor, backend, rhs = _split_active(inputs[1:])
        ctx.batch = inputs[0]
        ctx.device_type = data[1].device.type
        ctx.input_dims = [None if x is None else x.dim() for x in data]
        ctx.has_eq = rhs[2] is not None
        saved = (*data, *factor, backend, *output)
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)
        ctx.set_materialize_grads(False)

    @staticmethod
    @_outside_autocast
    def backward(ctx, g_x, g_lam, g_y):
        data, factor, backend, solution, problem = _unpack_solve(ctx)
        x, lam, y = solution
        y = y if ctx.has_eq else None
        g_y = None if y is None else _or_zeros(g_y, y)
        # K is symmetric: the adjoint is a solve with K, itself differentiable.
        rhs = (_or_zeros(g_x, x), _or_zeros(g_lam, lam), g_y)
        a_x, a_lam, a_y = ActiveSolve.apply(ctx.batch, *data, *factor, backend, *rhs)
        a_y = None if y is None else a_y
        # Of the data, K depends on Q, G and A only: their gradients are the QP's formulas.
        needs = dict(zip(INPUT_NAMES, ctx.needs_input_grad[1 : 1 + _N_IN]))
        needed = {name: needs[name] and name in ("Q", "G", "A") for name in INPUT_NAMES}
        adj = _implicit.Adjoint(a_x, a_lam, a_y)
        param = _implicit.parameter_gradients(problem, adj, x, lam, y, needed)
        grads = [
            None if param[name] is None else reduce_to_input(param[name], dim)
            for name, dim in zip(INPUT_NAMES, ctx.input_dims)
        ]
        return (None, *grads, *(None,) * (_N_FACTOR + 1), a_x, a_lam, a_y)

    @staticmethod
    @_outside_autocast
    def jvp(ctx, *tangents):
        data, factor, backend, (x, lam, y), problem = _unpack_solve(ctx)
        t = dict(zip(INPUT_NAMES, tangents[1 : 1 + _N_IN]))
        r1, r_lam, r2 = _split_active(tangents[1:])[3]
        y = y if ctx.has_eq else None
        r2 = None if y is None else _or_zeros(r2, y)
        f = _custom_op.active_factor(problem, factor, backend)
        dx, dlam, dy = _implicit.tangent(
            problem, f, x, lam, y, t["Q"], t["G"], t["A"], _or_zeros(r1, x),
            _or_zeros(r_lam, lam), r2,
        )  # fmt: skip
        return dx, dlam, torch.zeros_like(x[..., :0]) if dy is None else dy


def _split_active(args):
    """(the eight inputs, the factor's tensors, the backend code, (r1, r_lam, r2)) of
    ``ActiveSolve``'s arguments after the batch size."""
    data, rest = args[:_N_IN], args[_N_IN:]
    return data, rest[:_N_FACTOR], rest[_N_FACTOR], tuple(rest[_N_FACTOR + 1 :])


def _unpack(saved):
    """(inputs, differentiable outputs, status, backend code, factor tensors) of
    ``QPFunction``'s saved tensors."""
    n_diff = len(DIFFERENTIABLE_FIELDS)
    inputs, rest = saved[:_N_IN], saved[_N_IN:]
    outputs = dict(zip(DIFFERENTIABLE_FIELDS, rest[:n_diff]))
    return inputs, outputs, rest[n_diff], rest[n_diff + 1], rest[n_diff + 2 :]


def _unpack_solve(ctx):
    """(data, factor tensors, backend code, (x, lam, y), problem) of ``ActiveSolve``'s saved
    tensors."""
    saved = ctx.saved_tensors
    data, factor = saved[:_N_IN], saved[_N_IN : _N_IN + _N_FACTOR]
    backend, solution = saved[_N_IN + _N_FACTOR], saved[_N_IN + _N_FACTOR + 1 :]
    return data, factor, backend, solution, Problem.from_inputs(*data, ctx.batch)


def _solution(problem: Problem, outputs: dict, dtype):
    """(z, lam (B, m_all), nu or None) from the differentiable outputs, in ``dtype``."""
    z = outputs["z"].to(dtype)
    parts = [outputs[name].to(dtype) for name in ("lam", "lam_lb", "lam_ub")]
    lam = problem.stack_rows(parts, z)
    nu = outputs["nu"].to(dtype) if problem.has_eq else None
    return z, lam, nu


def _valid(status, factor) -> torch.Tensor:
    """(B, 1): 1 for problems whose derivative exists (solved, factor fine), 0 otherwise."""
    factor = FactorTensors(*factor)
    return ((status == QPStatus.SOLVED) & factor.ok).unsqueeze(-1).to(factor.w.dtype)


def _or_zeros(x, like: torch.Tensor) -> torch.Tensor:
    """``x`` (None: zero) with ``like``'s shape."""
    return torch.zeros_like(like) if x is None else x.expand_as(like)


# Under torch.compile ``solve_qp`` calls the op itself: the same derivative, minus the jvp.
torch.library.register_autograd(
    "optnet::solve_qp", QPFunction.backward, setup_context=QPFunction.setup_context
)
