"""QPFunction: the module-level autograd.Function behind ``solve_qp``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _backends, _implicit
from ._broadcast import reduce_to_batch_of_input
from ._ipm import IPMResult
from ._options import SolverOptions
from ._problem import Problem
from ._solution import DIFFERENTIABLE_FIELDS, OUTPUT_FIELDS
from ._status import QPStatus

_INPUT_NAMES = ("Q", "p", "G", "h", "A", "b", "lb", "ub")


@dataclass(frozen=True)
class _Internals:
    """What the forward hands to ``setup_context`` besides the outputs (not a tensor output)."""

    problem: Problem
    result: IPMResult


def _outputs(problem: Problem, r: IPMResult, dtype: torch.dtype) -> dict:
    """The Function's outputs by name (``OUTPUT_FIELDS``), floats in ``dtype``."""
    lam, lam_lb, lam_ub = problem.split_rows(r.lam)
    cert_lam, cert_lam_lb, cert_lam_ub = problem.split_rows(r.certificate_dual[:, : problem.m_all])
    cert_nu = r.certificate_dual[:, problem.m_all :] if problem.has_eq else None
    res = r.residuals
    out = {
        "z": r.z, "lam": lam, "nu": r.nu, "s": problem.split_rows(r.s)[0],
        "lam_lb": lam_lb, "lam_ub": lam_ub,
        "status": r.status, "iterations": r.iterations,
        "primal_residual": res.primal, "dual_residual": res.dual, "duality_gap": res.gap,
        "certificate_z": r.certificate_primal, "certificate_lam": cert_lam,
        "certificate_nu": cert_nu, "certificate_lam_lb": cert_lam_lb,
        "certificate_lam_ub": cert_lam_ub,
    }  # fmt: skip
    assert tuple(out) == OUTPUT_FIELDS
    return {
        name: x.to(dtype) if x is not None and x.is_floating_point() else x
        for name, x in out.items()
    }


class QPFunction(torch.autograd.Function):
    """Batched QP solve; differentiable in all eight inputs through z, lam, nu, lam_lb, lam_ub.

    Outputs: the tensors of ``OUTPUT_FIELDS`` (None for absent blocks), then an ``_Internals``
    for ``setup_context``. ``QPSolution.from_outputs`` turns the tensors into the solution.
    """

    @staticmethod
    def forward(Q, p, G, h, A, b, lb, ub, options: SolverOptions, batch: int):
        inputs = (Q, p, G, h, A, b, lb, ub)
        dtype = options.compute_dtype or p.dtype
        problem = Problem.from_inputs(*(None if x is None else x.to(dtype) for x in inputs), batch)
        result = _backends.solve(problem, options)
        return (*_outputs(problem, result, p.dtype).values(), _Internals(problem, result))

    @staticmethod
    def setup_context(ctx, inputs, output):
        internals: _Internals = output[-1]
        problem, r = internals.problem, internals.result
        # The polish's active-set factor: backward reuses it (and factors nothing itself).
        ctx.problem = problem
        ctx.factor = r.factor if any(ctx.needs_input_grad[:8]) else None
        ctx.input_dims = [None if x is None else x.dim() for x in inputs[:8]]
        ctx.input_dtype = inputs[1].dtype
        # The solver's own iterates (in the compute dtype), not the cast outputs.
        ctx.save_for_backward(r.z, r.nu, r.lam, r.status)
        ctx.set_materialize_grads(False)
        outputs = dict(zip(OUTPUT_FIELDS, output))
        ctx.mark_non_differentiable(
            *[
                x
                for name, x in outputs.items()
                if x is not None and name not in DIFFERENTIABLE_FIELDS
            ]
        )

    @staticmethod
    def backward(ctx, *grad_outputs):
        needed = dict(zip(_INPUT_NAMES, ctx.needs_input_grad[:8]))
        if not any(needed.values()) or ctx.factor is None:
            return (None,) * 10
        grads = dict(zip(OUTPUT_FIELDS, grad_outputs))
        problem, factor = ctx.problem, ctx.factor
        z, nu, lam_all, status = ctx.saved_tensors
        dtype = z.dtype
        # Unsolved problems (and failed factors) get zero gradients, not finite garbage.
        valid = ((status == QPStatus.SOLVED) & factor.ok).unsqueeze(-1)

        def cotangent(grad, like):
            return torch.zeros_like(like) if grad is None else grad.to(dtype) * valid

        g_z = cotangent(grads["z"], z)
        g_lam_all = lam_all
        if problem.m_all:
            parts = zip(
                problem.split_rows(lam_all), (grads["lam"], grads["lam_lb"], grads["lam_ub"])
            )
            g_lam_all = torch.cat([cotangent(g, part) for part, g in parts if part is not None], -1)
        g_nu = None if nu is None else cotangent(grads["nu"], nu)
        adj = _implicit.adjoint(factor, g_z, g_lam_all, g_nu)
        param_grads = _implicit.parameter_gradients(problem, adj, z, lam_all, nu, needed)
        out = [
            None
            if param_grads[name] is None
            else reduce_to_batch_of_input(param_grads[name], dim).to(ctx.input_dtype)
            for name, dim in zip(_INPUT_NAMES, ctx.input_dims)
        ]
        return (*out, None, None)
