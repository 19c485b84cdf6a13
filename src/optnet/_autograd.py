"""QPFunction: the module-level autograd.Function behind ``solve_qp``."""

from __future__ import annotations

import torch

from . import _implicit, _pdipm
from ._broadcast import reduce_to_batch_of_input
from ._options import SolverOptions
from ._problem import Problem

_INPUT_NAMES = ("Q", "p", "G", "h", "A", "b", "lb", "ub")


def _fused_kernel(problem: Problem, options: SolverOptions):
    """The ``_fused`` module when this solve goes to the fused Triton kernel, else None."""
    if options.fused_kernel is False:
        return None
    try:
        from . import _fused
    except ImportError:
        if options.fused_kernel:
            raise ImportError("SolverOptions(fused_kernel=True) needs Triton installed") from None
        return None
    return _fused if _fused.usable(problem, options) else None


class QPFunction(torch.autograd.Function):
    """Batched QP solve; differentiable in all eight inputs through z, lam, nu, lam_lb, lam_ub.

    Outputs: (z, lam, nu, s, lam_lb, lam_ub, status, iterations, primal_residual,
    dual_residual, duality_gap, certificate_dual, certificate_primal, internals); the first six
    are batched tensors or None; internals carries the problem and raw iterates to setup_context.
    """

    @staticmethod
    def forward(Q, p, G, h, A, b, lb, ub, options, batch):
        inputs = (Q, p, G, h, A, b, lb, ub)
        dtype = options.compute_dtype or p.dtype
        problem = Problem.from_inputs(*(None if x is None else x.to(dtype) for x in inputs), batch)
        factor = None
        fused = _fused_kernel(problem, options)
        if fused is not None:
            want_factor = any(x is not None and x.requires_grad for x in inputs)
            r, factor = fused.solve(problem, options, want_factor)
        else:
            r = _pdipm.solve(problem, options)
        lam_g, lam_lb, lam_ub = problem.split_rows(r.lam)
        s_g = problem.split_rows(r.s)[0]
        res = r.residuals

        def out(x):  # results in the inputs' dtype
            return None if x is None else x.to(p.dtype)

        return (
            *map(out, (r.z, lam_g, r.nu, s_g, lam_lb, lam_ub)),
            r.status, r.iterations, *map(out, (res.primal, res.dual, res.gap)),
            *map(out, (r.certificate_dual, r.certificate_primal)),
            (problem, r, factor),
        )  # fmt: skip

    @staticmethod
    def setup_context(ctx, inputs, output):
        problem, r, factor = output[-1]
        ctx.problem, ctx.factor = problem, factor
        if any(ctx.needs_input_grad[:8]) and factor is None:
            # Factor once at the solution; backward reuses it (and factors nothing itself).
            with torch.no_grad():
                ctx.factor = _implicit.factor_at_solution(
                    problem, r.s, r.lam, r.regularization, inputs[8].refine_steps
                )
        ctx.input_dims = [None if x is None else x.dim() for x in inputs[:8]]
        ctx.input_dtype = inputs[1].dtype
        # The solver's own iterates (in the compute dtype), not the cast outputs.
        ctx.save_for_backward(r.z, r.nu, r.s, r.lam)
        ctx.set_materialize_grads(False)
        # Differentiable: z, lam, nu, lam_lb, lam_ub. Not: s and everything after lam_ub.
        ctx.mark_non_differentiable(
            *[t for t in (output[3], *output[6:13]) if isinstance(t, torch.Tensor)]
        )

    @staticmethod
    def backward(ctx, g_z, g_lam, g_nu, _g_s, g_lam_lb, g_lam_ub, *_):
        needed = dict(zip(_INPUT_NAMES, ctx.needs_input_grad[:8]))
        if not any(needed.values()) or ctx.factor is None:
            return (None,) * 10
        problem = ctx.problem
        z, nu, s_all, lam_all = ctx.saved_tensors
        dtype = z.dtype
        g_z = torch.zeros_like(z) if g_z is None else g_z.to(dtype)
        g_lam_all = torch.cat(
            [
                torch.zeros_like(part) if grad is None else grad.to(dtype)
                for part, grad in zip(problem.split_rows(lam_all), (g_lam, g_lam_lb, g_lam_ub))
                if part is not None
            ],
            -1,
        ) if problem.m_all else lam_all  # fmt: skip
        if nu is not None:
            g_nu = torch.zeros_like(nu) if g_nu is None else g_nu.to(dtype)
        adj = _implicit.adjoint(problem, ctx.factor, s_all, lam_all, g_z, g_lam_all, g_nu)
        grads = _implicit.parameter_gradients(problem, adj, z, lam_all, nu, needed)
        out = [
            None
            if grads[name] is None
            else reduce_to_batch_of_input(grads[name], dim).to(ctx.input_dtype)
            for name, dim in zip(_INPUT_NAMES, ctx.input_dims)
        ]
        return (*out, None, None)
