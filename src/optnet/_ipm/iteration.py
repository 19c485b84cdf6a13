"""One interior-point iteration (assess, then step) and the final assessment of a solve."""

from __future__ import annotations

import dataclasses

import torch

from .. import _kkt
from .._options import SolverOptions
from .._policy import Policy
from .._problem import Problem, dot, inf_norm
from .._scaling import Scaling
from .._status import QPStatus
from .certificates import infeasibility_flags, rays
from .polish import polish
from .residuals import Residuals, residuals
from .state import RUNNING, IPMResult, IPMState
from .step import SAFEGUARD_AFTER, STEP_FRACTION, direction, max_step
from .stopping import (
    MAX_REG_BUMPS,
    SHIFT_GROWTH_PER_FAILURE,
    Tolerances,
    convergence,
    still_running,
)


class Iteration:
    """One interior-point iteration as a pure function of (problem, state); no host syncs."""

    def __init__(
        self,
        problem: Problem,
        options: SolverOptions,
        policy: Policy,
        original: Problem | None = None,
        scaling: Scaling | None = None,
        handoff: bool = True,
    ):
        # ``problem`` is what the Newton steps see (maybe equilibrated); convergence and
        # certificates are always judged on the ``original`` data.
        self.problem = problem
        self.original = problem if original is None else original
        self.scaling = scaling
        self.options = options
        self.policy = policy
        dtype = problem.p.dtype
        self.tol = Tolerances.of(options, dtype)
        # Stop early and let the polish finish (``Tolerances.handoff``); not for equilibrated
        # data, whose interior point could not resume on the unscaled problem, nor where the
        # host may not read flags: there every polish round runs, and the interior point goes
        # to the full tolerance, where the polish rarely needs a second round.
        self.handoff = handoff and scaling is None and policy.may_read
        self.tiny = torch.finfo(dtype).tiny
        # In float32, mu near the tolerance floor is mostly rounding, and the safeguard below
        # then rejects good corrector steps (measured: more MAX_ITER on random QPs).
        self.safeguard = dtype == torch.float64
        self.mask = problem.mask.expand(problem.batch, -1)
        # A factor made with buffers does not outlive its iteration (see _kkt.Buffers).
        self.buffers = _kkt.Buffers() if policy.reuse_buffers else None

    def unscaled(self, state: IPMState):
        """(z, s, lam, nu) of the original problem."""
        if self.scaling is None:
            return state.z, state.s, state.lam, state.nu
        return self.scaling.unscale(self.problem, state.z, state.s, state.lam, state.nu)

    def assess(self, state: IPMState, check_certificates: bool, res: Residuals | None = None):
        """Statuses on the original data: (status, running, gap tolerance, merit).

        ``merit`` is the largest ratio of a residual to its tolerance (<= 1 means converged).

        ``res`` are the residuals of ``state`` when no scaling is in use (saves recomputing).
        """
        z, s, lam, nu = self.unscaled(state)
        if res is None or self.scaling is not None:
            res = residuals(self.original, z, s, lam, nu)
        status, running = state.status, state.status == RUNNING
        converged, merit, gap_tolerance = convergence(res, self.tol)
        stop = converged
        if self.handoff:
            stop = convergence(res, self.tol.handoff())[0]
        reads_free = self.policy.reads_free
        if check_certificates and (not reads_free or self._may_be_infeasible(z, lam, nu)):
            p_inf, d_inf = infeasibility_flags(
                self.original, z, lam, nu, self.tol.eps_infeasible, res
            )
            status = torch.where(running & d_inf, int(QPStatus.DUAL_INFEASIBLE), status)
            status = torch.where(running & p_inf, int(QPStatus.PRIMAL_INFEASIBLE), status)
        status = torch.where(running & stop, int(QPStatus.SOLVED), status)
        status = torch.where(state.bumps > MAX_REG_BUMPS, int(QPStatus.NUMERICAL_ERROR), status)
        return status, self.running_after(status, state.iterations), gap_tolerance, merit

    def _may_be_infeasible(self, z, lam, nu) -> bool:
        """Whether any certificate can hold: each needs a ray longer than 1 / its tolerance.

        A host read, so only where reads are free: it spares the certificates' work.
        """
        longest = torch.maximum(inf_norm(z), inf_norm(lam))
        if nu is not None:
            longest = torch.maximum(longest, inf_norm(nu))
        return bool((longest > self.tol.shortest_ray).any())

    def __call__(self, state: IPMState, check_certificates: bool) -> IPMState:
        problem, mask = self.problem, self.mask
        # From the mask each call: a replayed CUDA graph sees new data in the same buffers.
        count = mask.sum(-1).clamp_min(1)
        z, s, lam, nu = state.z, state.s, state.lam, state.nu
        res = residuals(problem, z, s, lam, nu)
        status, running, gap_tolerance, merit = self.assess(state, check_certificates, res)
        if self.policy.reads_free and not bool(running.any()):
            # Where reading a flag is free: nothing left to move, skip the Newton step
            # (the result is the same: no problem moves and no best iterate changes).
            return dataclasses.replace(state, status=status)
        better = (running & (merit < state.best_merit)).unsqueeze(-1)
        best = [
            None if x is None else torch.where(better, x, kept)
            for x, kept in zip(
                (z, s, lam, nu), (state.best_z, state.best_s, state.best_lam, state.best_nu)
            )
        ]
        best_merit = torch.where(better.squeeze(-1), merit, state.best_merit)
        if self.scaling is not None:
            gap_tolerance = gap_tolerance * self.scaling.c.squeeze(-1)  # gap in scaled units

        reg = self.options.regularization * 100.0**state.bumps
        w = lam / s * mask
        form = self.policy.factor_form
        # After a failed factorization the round-off shift grows too: a regularization
        # relative to the diagonal, which reg alone is not where lam/s makes it huge.
        boost = SHIFT_GROWTH_PER_FAILURE ** state.bumps.to(w.dtype)
        f = _kkt.factor(problem, w, reg, self.options.refine_steps, form, self.buffers, boost)
        # Predictor (affine-scaling) direction: used only to choose the centering, so unrefined.
        predictor = direction(problem, f, res, s, lam, w, s * lam, 0)
        dz, ds, dlam, dnu = predictor
        alpha_aff = torch.minimum(max_step(s, ds), max_step(lam, dlam))
        a = alpha_aff.unsqueeze(-1)
        mu_aff = dot((s + a * ds) * mask, lam + a * dlam) / count
        sigma = (mu_aff / res.mu.clamp_min(self.tiny)).clamp(0, 1) ** 3
        # Corrector with Mehrotra's second-order term. Aim no lower than the complementarity
        # the gap tolerance needs: slacks at round-off level only make the matrix ill-conditioned.
        mu_target = torch.maximum(sigma * res.mu, 0.1 * gap_tolerance / count)
        r_comp = (s * lam + ds * dlam - mu_target.unsqueeze(-1)) * mask
        dz, ds, dlam, dnu = direction(problem, f, res, s, lam, w, r_comp, self.options.refine_steps)
        alpha = torch.minimum(max_step(s, ds), max_step(lam, dlam))
        alpha = (STEP_FRACTION * alpha).clamp(max=1.0)
        # Safeguard: near the solution Mehrotra's second-order term can make complementarity
        # rise and the iterates cycle; after SAFEGUARD_AFTER iterations, where the corrected
        # step increases mu and the (damped) predictor step would not, take the predictor step.
        # (Where reading a flag is free, skipped while no problem is that far.)
        if self.safeguard and (
            not self.policy.reads_free or bool((state.iterations >= SAFEGUARD_AFTER).any())
        ):
            a, a_aff = alpha.unsqueeze(-1), (STEP_FRACTION * alpha_aff).unsqueeze(-1)
            mu_corr = dot((s + a * ds) * mask, lam + a * dlam)
            mu_pred = dot((s + a_aff * predictor[1]) * mask, lam + a_aff * predictor[2])
            use_pred = (mu_corr > res.mu * count) & (mu_pred < mu_corr)
            use_pred &= state.iterations >= SAFEGUARD_AFTER
            pick = use_pred.unsqueeze(-1)
            dz, ds, dlam = (torch.where(pick, p, c) for p, c in zip(predictor[:3], (dz, ds, dlam)))
            if dnu is not None:
                dnu = torch.where(pick, predictor[3], dnu)
            alpha = torch.where(use_pred, STEP_FRACTION * alpha_aff, alpha)

        move = running & f.ok
        a = torch.where(move, alpha, torch.zeros_like(alpha)).unsqueeze(-1)
        z_new, s_new, lam_new = z + a * dz, s + a * ds, lam + a * dlam
        nu_new = None if nu is None else nu + a * dnu
        # A sum is finite only when all its terms are (or overflows past 1e308: as fatal).
        total = z_new.sum(-1) + s_new.sum(-1) + lam_new.sum(-1)
        if nu_new is not None:
            total = total + nu_new.sum(-1)
        finite = torch.isfinite(total)
        status = torch.where(running & ~finite, int(QPStatus.NUMERICAL_ERROR), status)
        keep = (move & finite).unsqueeze(-1)
        z = torch.where(keep, z_new, z)
        s = torch.where(keep & (mask > 0), s_new.clamp_min(self.tiny), s)
        lam = torch.where(keep, lam_new.clamp_min(0), lam)
        if nu is not None:
            nu = torch.where(keep, nu_new, nu)
        return IPMState(
            z, s, lam, nu, status,
            state.iterations + running.long(),
            state.bumps + (running & ~f.ok).long(),
            *best, best_merit,
        )  # fmt: skip

    def running_after(self, status: torch.Tensor, iterations: torch.Tensor) -> torch.Tensor:
        return still_running(status, iterations, self.options.max_iter)

    def running(self, state: IPMState) -> torch.Tensor:
        return self.running_after(state.status, state.iterations)


def finish(iteration: Iteration, state: IPMState) -> IPMResult:
    """Final assessment on the original data: statuses, the polish, certificates."""
    problem, options = iteration.original, iteration.options
    status, _, _, merit = iteration.assess(state, check_certificates=True)
    status = torch.where(status == RUNNING, int(QPStatus.MAX_ITER), status)
    unsolved = (status == QPStatus.MAX_ITER) | (status == QPStatus.NUMERICAL_ERROR)
    use_best = unsolved & (state.best_merit < merit)
    merit = torch.where(use_best, state.best_merit, merit)
    z, s, lam, nu = state.iterate(use_best)
    z, s, lam, nu = iteration.unscaled(dataclasses.replace(state, z=z, s=s, lam=lam, nu=nu))
    # A nonconvex problem was never solved: zeros, not its starting point.
    keep = (status != QPStatus.NONCONVEX).unsqueeze(-1)
    z, lam = torch.where(keep, z, 0), torch.where(keep, lam, 0)
    s = torch.where(keep, s, 1)
    nu = None if nu is None else torch.where(keep, nu, 0)
    cert_dual, cert_primal = rays(problem, z, lam, nu, status)
    # The base regularization: a bumped one (after failed factorizations of the barrier
    # system) would bias the better-conditioned active-set system.
    reg = torch.full_like(merit, options.regularization)
    z, s, lam, nu, status, res, factor, polished = polish(
        problem,
        z,
        s,
        lam,
        nu,
        status,
        merit,
        reg,
        iteration.tol,
        iteration.policy,
        buffers=iteration.buffers,
    )
    # Stopped at the handoff tolerance and not polished: the interior point must resume. (Only
    # where it could have stopped there: else SOLVED was judged at the full tolerance, and the
    # merit recomputed here may differ from that judgment in the last bit.)
    if iteration.handoff:
        handed_off = (status == QPStatus.SOLVED) & ~polished & (merit > 1)
        status = torch.where(handed_off, RUNNING, status)
    return IPMResult(
        z, s, lam, nu, status, state.iterations, res, cert_dual, cert_primal, factor, polished
    )
