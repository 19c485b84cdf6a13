"""Batched primal-dual interior-point method (Mehrotra predictor-corrector). Pure tensors.

Solves ``min 1/2 z'Qz + p'z  s.t.  Cz + s = h_all, s >= 0, Az = b`` for a whole batch at once.
Problems that converge (or are proven infeasible) freeze while the others keep iterating.
Convergence is decided on the device; the host reads the flags every ``check_every``
iterations only, so an iteration has no host-device synchronization.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch

from . import _kkt
from ._options import SolverOptions
from ._problem import Problem, dot, inf_norm, matvec
from ._scaling import Scaling, equilibrate
from ._status import QPStatus

logger = logging.getLogger("optnet")

_RUNNING = -1
_STEP_FRACTION = 0.995  # fraction of the way to the boundary of the positive orthant
_MAX_REG_BUMPS = 6  # a problem whose matrix fails to factor this often is a numerical error
# Iterations after which the anti-cycling safeguard (see Iteration.__call__) may act: before
# that it mostly rejects good corrector steps and slows convergence (measured).
_SAFEGUARD_AFTER = 15


@dataclass(frozen=True)
class Residuals:
    r_dual: torch.Tensor  # Qz + p + C'lam + A'nu           (B, n)
    r_eq: torch.Tensor | None  # Az - b                     (B, neq)
    r_ineq: torch.Tensor  # Cz + s - h_all (masked)         (B, m_all)
    mu: torch.Tensor  # mean complementarity s'lam / m      (B,)
    primal: torch.Tensor  # max violation of Az = b, Cz <= h (B,)
    dual: torch.Tensor  # ||r_dual||_inf                     (B,)
    gap: torch.Tensor  # |z'Qz + p'z + h'lam + b'nu|        (B,)
    primal_scale: torch.Tensor
    dual_scale: torch.Tensor
    gap_scale: torch.Tensor
    # The products the residuals are made of, reused by the infeasibility certificates.
    Qz: torch.Tensor | None = None  # (B, n)
    Cz: torch.Tensor | None = None  # (B, m_all)
    Ct_lam: torch.Tensor | None = None  # (B, n)
    Az: torch.Tensor | None = None  # (B, neq)
    At_nu: torch.Tensor | None = None  # (B, n)


@dataclass(frozen=True)
class IPMResult:
    z: torch.Tensor
    s: torch.Tensor
    lam: torch.Tensor
    nu: torch.Tensor | None
    status: torch.Tensor
    iterations: torch.Tensor
    residuals: Residuals
    certificate_dual: torch.Tensor  # (B, m_all + neq) ray (lam, nu) for PRIMAL_INFEASIBLE
    certificate_primal: torch.Tensor  # (B, n) ray z for DUAL_INFEASIBLE
    regularization: torch.Tensor  # (B,) the regularization the factorizations ended with


def residuals(problem: Problem, z, s, lam, nu) -> Residuals:
    mask = problem.mask
    Qz = matvec(problem.Q, z)
    Ct_lam = problem.ineq_t(lam)
    r_dual = Qz + problem.p + Ct_lam
    h_all = problem.h_all
    Cz = problem.ineq(z)
    r_ineq = (Cz + s - h_all) * mask
    violation = inf_norm(((Cz - h_all) * mask).clamp_min(0))
    primal_scale = torch.maximum(inf_norm(Cz * mask), inf_norm(h_all * mask).expand_as(violation))
    zQz, pz, hlam = dot(z, Qz), dot(problem.p, z), dot(h_all, lam)
    gap = zQz + pz + hlam
    gap_scale = torch.maximum(torch.maximum(zQz.abs(), pz.abs()), hlam.abs())
    dual_scale = torch.maximum(inf_norm(Qz), inf_norm(problem.p).expand_as(violation))
    dual_scale = torch.maximum(dual_scale, inf_norm(Ct_lam))
    r_eq = Az = At_nu = None
    if problem.has_eq:
        At_nu = problem.eq_t(nu)
        r_dual = r_dual + At_nu
        Az = problem.eq(z)
        r_eq = Az - problem.b
        violation = torch.maximum(violation, inf_norm(r_eq))
        primal_scale = torch.maximum(primal_scale, torch.maximum(inf_norm(Az), inf_norm(problem.b)))
        bnu = dot(problem.b, nu)
        gap = gap + bnu
        gap_scale = torch.maximum(gap_scale, bnu.abs())
        dual_scale = torch.maximum(dual_scale, inf_norm(At_nu))
    count = mask.sum(-1).clamp_min(1)
    mu = dot(s * mask, lam) / count
    return Residuals(
        r_dual, r_eq, r_ineq, mu, violation, inf_norm(r_dual), gap.abs(),
        primal_scale, dual_scale, gap_scale, Qz, Cz, Ct_lam, Az, At_nu,
    )  # fmt: skip


def _newton_step(problem: Problem, f: _kkt.KKTFactor, s, lam, w, r_dual, r_eq, r_ineq, r_comp):
    """One reduced solve for the Newton system with right-hand side minus the residuals::

    Q dz + C'dlam + A'dnu = -r_dual,  A dz = -r_eq,  C dz + ds = -r_ineq,
    lam * ds + s * dlam = -r_comp

    ``w = lam / s`` (masked). Returns (dz, ds, dlam, dnu) and C dz.
    """
    mask = problem.mask
    r1 = -r_dual - problem.ineq_t(w * r_ineq - r_comp / s * mask)
    dz, dnu = _kkt.solve_regularized(f, r1, None if r_eq is None else -r_eq)
    C_dz = problem.ineq(dz)
    ds = (-r_ineq - C_dz) * mask
    dlam = (-r_comp - lam * ds) / s * mask
    return (dz, ds, dlam, dnu), C_dz


def _direction(problem: Problem, f: _kkt.KKTFactor, res: Residuals, s, lam, w, r_comp, refine: int):
    """Newton direction for the complementarity target ``s * lam -> s * lam - r_comp``.

    ``w = lam / s`` (masked) are the factor's weights. Iterative refinement runs on the full
    (unreduced) system: the reduced right-hand side carries terms of size 1/s that cancel, so
    only the full residual shows the lost accuracy; it also removes the bias of the
    regularization.
    """
    step, C_dz = _newton_step(problem, f, s, lam, w, res.r_dual, res.r_eq, res.r_ineq, r_comp)
    for k in range(refine):
        dz, ds, dlam, dnu = step
        e_dual = res.r_dual + matvec(problem.Q, dz) + problem.ineq_t(dlam)
        e_eq = None
        if dnu is not None:
            e_dual = e_dual + problem.eq_t(dnu)
            e_eq = res.r_eq + problem.eq(dz)
        e_ineq = (res.r_ineq + C_dz + ds) * problem.mask
        e_comp = (r_comp + lam * ds + s * dlam) * problem.mask
        fix, C_fix = _newton_step(problem, f, s, lam, w, e_dual, e_eq, e_ineq, e_comp)
        step = tuple(None if x is None else x + dx for x, dx in zip(step, fix))
        if k + 1 < refine:
            C_dz = C_dz + C_fix
    return step


def _max_step(x: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Largest alpha in [0, 1] with x + alpha dx >= 0 (masked rows have dx = 0: no limit)."""
    if x.shape[-1] == 0:
        return x.new_ones(x.shape[0])
    blocking = dx < 0
    ratio = torch.where(blocking, -x / torch.where(blocking, dx, -1.0), 1.0)
    return ratio.amin(-1).clamp(max=1.0)


def initial_point(
    problem: Problem, reg: torch.Tensor, refine_steps: int, buffers: _kkt.Buffers | None = None
):
    """Least-squares start (Mehrotra's heuristic, Nocedal & Wright eq. 16.60).

    Solves ``min 1/2 z'Qz + p'z + 1/2 ||Cz - h||^2  s.t.  Az = b``, then shifts slacks and
    duals into the positive orthant and balances them.
    """
    mask = problem.mask
    batch = problem.batch
    h_all = problem.h_all.expand(batch, -1)
    f = _kkt.factor(problem, mask.expand(batch, -1), reg, refine_steps, buffers)
    r2 = None if not problem.has_eq else problem.b.expand(batch, -1)
    z, nu = _kkt.solve(f, -problem.p + problem.ineq_t(h_all * mask), r2)
    if nu is None and problem.has_eq:
        nu = z.new_zeros(batch, problem.A.shape[-2])
    s = (h_all - problem.ineq(z)) * mask
    lam = -s
    big = torch.finfo(z.dtype).max
    if problem.m_all:
        s = s + (-1.5 * torch.where(mask > 0, s, big).amin(-1, keepdim=True)).clamp_min(0)
        lam = lam + (-1.5 * torch.where(mask > 0, lam, big).amin(-1, keepdim=True)).clamp_min(0)
        s, lam = s * mask, lam * mask
        sl = dot(s, lam).unsqueeze(-1)
        s_new = s + 0.5 * sl / lam.sum(-1, keepdim=True).clamp_min(1e-30)
        lam_new = lam + 0.5 * sl / s.sum(-1, keepdim=True).clamp_min(1e-30)
        # Degenerate starts (all slacks or duals zero) fall back to the unit point.
        degenerate = (sl <= 0) | ~torch.isfinite(s_new + lam_new).all(-1, keepdim=True)
        s = torch.where(degenerate, torch.ones_like(s), s_new.clamp_min(1e-8))
        lam = torch.where(degenerate, torch.ones_like(lam), lam_new.clamp_min(1e-8))
    # Masked rows (infinite rhs): slack 1, dual 0, never touched again.
    s = torch.where(mask > 0, s, torch.ones_like(s))
    lam = lam * mask
    return z, s, lam, nu


def _certificates(problem: Problem, z, lam, nu, eps: float, res: Residuals | None = None):
    """Per-problem flags for rays proving primal or dual infeasibility.

    Primal: y = (lam, nu) / ||(lam, nu)||_inf with ||C'lam + A'nu|| <= eps and h'lam + b'nu < -eps
    (scaled by the data). Dual: d = z / ||z||_inf with Qd ~ 0, Ad ~ 0, Cd <= ~0 and p'd < -eps.
    ``res``, the residuals at (z, lam, nu), saves recomputing the products with the data.
    """
    if res is None or res.Qz is None:
        res = residuals(problem, z, torch.ones_like(lam), lam, nu)
    mask = problem.mask
    h_all = problem.h_all * mask
    t = inf_norm(lam)
    Aty = res.Ct_lam
    hy = dot(h_all, lam)
    if nu is not None:
        t = torch.maximum(t, inf_norm(nu))
        Aty = Aty + res.At_nu
        hy = hy + dot(problem.b, nu)
    t = t.clamp_min(torch.finfo(z.dtype).tiny)
    data_scale = torch.maximum(inf_norm(h_all), inf_norm(problem.p)).clamp_min(1.0)
    primal_infeasible = (inf_norm(Aty) <= eps * t) & (hy < -eps * t * data_scale) & (t > 1 / eps)

    # d = z / ||z||: the products with d are those with z, scaled.
    z_norm = inf_norm(z)
    inv_norm = 1 / z_norm.clamp_min(torch.finfo(z.dtype).tiny)
    # max |Q_ij| without a temporary of Q's size
    q_scale = torch.maximum(problem.Q.amax((-2, -1)), -problem.Q.amin((-2, -1))).clamp_min(1.0)
    ok = (inf_norm(res.Qz) * inv_norm <= eps * q_scale) & (
        dot(problem.p, z) * inv_norm < -eps * data_scale
    )
    if problem.m_all:
        ok = ok & ((res.Cz * mask).amax(-1) * inv_norm <= eps * data_scale)
    if problem.has_eq:
        ok = ok & (inf_norm(res.Az) * inv_norm <= eps * data_scale)
    dual_infeasible = ok & (z_norm > 1 / eps)
    return primal_infeasible, dual_infeasible


@dataclass(frozen=True)
class IPMState:
    """Everything one iteration reads and writes; all tensors, so a chunk can be graph-captured.

    ``best_*`` keep each problem's iterate with the smallest normalized residual so far: when
    the tolerance is out of reach, late iterations can drift away from a nearly optimal
    point, and an unsolved problem then returns its best point (still with its honest status).
    """

    z: torch.Tensor
    s: torch.Tensor
    lam: torch.Tensor
    nu: torch.Tensor | None
    status: torch.Tensor  # (B,) int64: _RUNNING or a final QPStatus
    iterations: torch.Tensor  # (B,) int64
    bumps: torch.Tensor  # (B,) int64: times the regularization was raised after a failed factor
    best_z: torch.Tensor
    best_s: torch.Tensor
    best_lam: torch.Tensor
    best_nu: torch.Tensor | None
    best_merit: torch.Tensor  # (B,) max of residual / tolerance at the best iterate

    def iterate(self, best: torch.Tensor | None = None):
        """(z, s, lam, nu): the current iterate, or per problem the best one where ``best``."""
        current = (self.z, self.s, self.lam, self.nu)
        if best is None:
            return current
        kept = (self.best_z, self.best_s, self.best_lam, self.best_nu)
        pick = best.unsqueeze(-1)
        return tuple(None if c is None else torch.where(pick, k, c) for c, k in zip(current, kept))


class Iteration:
    """One interior-point iteration as a pure function of (problem, state); no host syncs."""

    def __init__(
        self,
        problem: Problem,
        options: SolverOptions,
        original: Problem | None = None,
        scaling: Scaling | None = None,
    ):
        # ``problem`` is what the Newton steps see (maybe equilibrated); convergence and
        # certificates are always judged on the ``original`` data.
        self.problem = problem
        self.original = problem if original is None else original
        self.scaling = scaling
        self.options = options
        dtype = problem.p.dtype
        self.eps_abs, self.eps_rel = options.tolerances(dtype)
        self.tiny = torch.finfo(dtype).tiny
        # In float32, mu near the tolerance floor is mostly rounding, and the safeguard below
        # then rejects good corrector steps (measured: more MAX_ITER on random QPs).
        self.safeguard = dtype == torch.float64
        self.mask = problem.mask.expand(problem.batch, -1)
        # On CPU the factorizations reuse their memory (see _kkt.Buffers); a factor does not
        # outlive its iteration.
        self.sync_free = problem.p.device.type == "cpu"  # reading a flag costs no sync
        self.buffers = _kkt.Buffers() if self.sync_free else None

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
        status, running = state.status, state.status == _RUNNING
        gap_tolerance = self.eps_abs + self.eps_rel * res.gap_scale
        converged = (
            (res.primal <= self.eps_abs + self.eps_rel * res.primal_scale)
            & (res.dual <= self.eps_abs + self.eps_rel * res.dual_scale)
            & (res.gap <= gap_tolerance)
        )
        if check_certificates and (not self.sync_free or self._may_be_infeasible(z, lam, nu)):
            p_inf, d_inf = _certificates(
                self.original, z, lam, nu, self.options.eps_infeasible, res
            )
            status = torch.where(running & d_inf, int(QPStatus.DUAL_INFEASIBLE), status)
            status = torch.where(running & p_inf, int(QPStatus.PRIMAL_INFEASIBLE), status)
        status = torch.where(running & converged, int(QPStatus.SOLVED), status)
        status = torch.where(state.bumps > _MAX_REG_BUMPS, int(QPStatus.NUMERICAL_ERROR), status)
        running = (status == _RUNNING) & (state.iterations < self.options.max_iter)
        merit = torch.maximum(
            res.primal / (self.eps_abs + self.eps_rel * res.primal_scale),
            res.dual / (self.eps_abs + self.eps_rel * res.dual_scale),
        )
        merit = torch.maximum(merit, res.gap / gap_tolerance)
        merit = torch.where(torch.isfinite(merit), merit, torch.full_like(merit, float("inf")))
        return status, running, gap_tolerance, merit

    def _may_be_infeasible(self, z, lam, nu) -> bool:
        """Whether any certificate can hold: both need a ray longer than 1 / eps_infeasible.

        A host read, so only where it is free (CPU): it spares the certificates' work.
        """
        eps = self.options.eps_infeasible
        longest = torch.maximum(inf_norm(z), inf_norm(lam))
        if nu is not None:
            longest = torch.maximum(longest, inf_norm(nu))
        return bool((longest * eps > 1).any())

    def __call__(self, state: IPMState, check_certificates: bool) -> IPMState:
        problem, mask = self.problem, self.mask
        # From the mask each call: a replayed CUDA graph sees new data in the same buffers.
        count = mask.sum(-1).clamp_min(1)
        z, s, lam, nu = state.z, state.s, state.lam, state.nu
        res = residuals(problem, z, s, lam, nu)
        status, running, gap_tolerance, merit = self.assess(state, check_certificates, res)
        if self.sync_free and not bool(running.any()):
            # CPU, where reading a flag is free: nothing left to move, skip the Newton step
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
        f = _kkt.factor(problem, w, reg, self.options.refine_steps, self.buffers)
        # Predictor (affine-scaling) direction: used only to choose the centering, so unrefined.
        predictor = _direction(problem, f, res, s, lam, w, s * lam, 0)
        dz, ds, dlam, dnu = predictor
        alpha_aff = torch.minimum(_max_step(s, ds), _max_step(lam, dlam))
        a = alpha_aff.unsqueeze(-1)
        mu_aff = dot((s + a * ds) * mask, lam + a * dlam) / count
        sigma = (mu_aff / res.mu.clamp_min(self.tiny)).clamp(0, 1) ** 3
        # Corrector with Mehrotra's second-order term. Aim no lower than the complementarity
        # the gap tolerance needs: slacks at round-off level only make the matrix ill-conditioned.
        mu_target = torch.maximum(sigma * res.mu, 0.1 * gap_tolerance / count)
        r_comp = (s * lam + ds * dlam - mu_target.unsqueeze(-1)) * mask
        dz, ds, dlam, dnu = _direction(
            problem, f, res, s, lam, w, r_comp, self.options.refine_steps
        )
        alpha = torch.minimum(_max_step(s, ds), _max_step(lam, dlam))
        alpha = (_STEP_FRACTION * alpha).clamp(max=1.0)
        # Safeguard: near the solution Mehrotra's second-order term can make complementarity
        # rise and the iterates cycle; after _SAFEGUARD_AFTER iterations, where the corrected
        # step increases mu and the (damped) predictor step would not, take the predictor step.
        # (On CPU, where reading a flag is free, skipped while no problem is that far.)
        if self.safeguard and (
            not self.sync_free or bool((state.iterations >= _SAFEGUARD_AFTER).any())
        ):
            a, a_aff = alpha.unsqueeze(-1), (_STEP_FRACTION * alpha_aff).unsqueeze(-1)
            mu_corr = dot((s + a * ds) * mask, lam + a * dlam)
            mu_pred = dot((s + a_aff * predictor[1]) * mask, lam + a_aff * predictor[2])
            use_pred = (mu_corr > res.mu * count) & (mu_pred < mu_corr)
            use_pred &= state.iterations >= _SAFEGUARD_AFTER
            pick = use_pred.unsqueeze(-1)
            dz, ds, dlam = (torch.where(pick, p, c) for p, c in zip(predictor[:3], (dz, ds, dlam)))
            if dnu is not None:
                dnu = torch.where(pick, predictor[3], dnu)
            alpha = torch.where(use_pred, _STEP_FRACTION * alpha_aff, alpha)

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

    def running(self, state: IPMState) -> torch.Tensor:
        return (state.status == _RUNNING) & (state.iterations < self.options.max_iter)


def initial_state(
    problem: Problem, options: SolverOptions, buffers: _kkt.Buffers | None = None
) -> IPMState:
    batch, device = problem.batch, problem.p.device
    reg = torch.full((batch,), options.regularization, dtype=problem.p.dtype, device=device)
    z, s, lam, nu = initial_point(problem, reg, options.refine_steps, buffers)
    status = torch.full((batch,), _RUNNING, dtype=torch.int64, device=device)
    status = _bounds_infeasible(problem, status)
    zeros = torch.zeros(batch, dtype=torch.int64, device=device)
    best = [None if x is None else x.clone() for x in (z, s, lam, nu)]
    no_merit = torch.full((batch,), float("inf"), dtype=z.dtype, device=device)
    return IPMState(z, s, lam, nu, status, zeros, zeros.clone(), *best, no_merit)


def run_eager(iteration: Iteration, state: IPMState, check_period: int) -> IPMState:
    if check_period == 1 and iteration.scaling is None and iteration.problem.batch > 1:
        return _run_compacting(iteration, state)
    for k in range(iteration.options.max_iter):
        state = iteration(state, check_certificates=k % check_period == 0)
        if (k + 1) % check_period == 0 and not bool(iteration.running(state).any()):
            break
    return state


# Gather the running problems into a smaller batch once this share of the batch has stopped.
_COMPACT_WHEN_STOPPED = 0.25


def _run_compacting(iteration: Iteration, state: IPMState) -> IPMState:
    """``run_eager`` that iterates only the problems still running (host checks every step).

    Problems stop at different iterations, while an iteration costs in proportion to its batch.
    Once a quarter of the current batch has stopped, the running problems' data and states are
    gathered into a smaller batch; their states are scattered back at the end.
    """
    full_problem, options = iteration.problem, iteration.options
    full_state, rows = state, None  # rows: the full batch's indices that ``state`` holds
    for _ in range(options.max_iter):
        state = iteration(state, check_certificates=True)
        running = iteration.running(state)
        stopped = int((~running).sum())
        if stopped == running.numel():
            break
        if stopped >= _COMPACT_WHEN_STOPPED * running.numel():
            full_state = _scatter_state(full_state, state, rows)
            keep = running.nonzero().squeeze(-1)
            rows = keep if rows is None else rows[keep]
            state = _map_state(state, lambda x, keep=keep: x[keep])
            buffers = iteration.buffers
            iteration = Iteration(full_problem.select(rows), options)
            iteration.buffers = buffers  # the smaller batch reuses the memory
    return _scatter_state(full_state, state, rows)


def _map_state(state: IPMState, fn) -> IPMState:
    changes = {
        f.name: None if getattr(state, f.name) is None else fn(getattr(state, f.name))
        for f in dataclasses.fields(state)
    }
    return IPMState(**changes)


def _scatter_state(full: IPMState, part: IPMState, rows: torch.Tensor | None) -> IPMState:
    """``full`` with the problems ``rows`` replaced by ``part`` (all of it when rows is None)."""
    if rows is None:
        return part
    changes = {
        f.name: None
        if getattr(full, f.name) is None
        else getattr(full, f.name).index_copy(0, rows, getattr(part, f.name))
        for f in dataclasses.fields(full)
    }
    return IPMState(**changes)


def solve(problem: Problem, options: SolverOptions) -> IPMResult:
    """Run the interior-point loop on a validated, batched problem."""
    result = _solve(problem, options)
    if logger.isEnabledFor(logging.DEBUG):  # a host sync: only when asked for
        counts = {QPStatus(c).name: int(k) for c, k in enumerate(result.status.bincount()) if k}
        logger.debug("interior point: %d problems, statuses %s", problem.batch, counts)
    return result


def _solve(problem: Problem, options: SolverOptions) -> IPMResult:
    check_period = options.host_check_period(problem.p.device)
    if options.equilibrate:  # runs eagerly: meant for large, badly scaled problems
        scaled, scaling = equilibrate(problem, options.ruiz_iters)
        iteration = Iteration(scaled, options, problem, scaling)
        state = run_eager(iteration, initial_state(scaled, options), check_period)
        return finish(iteration, state)
    if problem.p.device.type == "cuda" and options.cuda_graphs:
        from ._cuda_graph import solve_captured, worth_capturing

        result = (
            solve_captured(problem, options, check_period) if worth_capturing(problem) else None
        )
        if result is not None:
            return result
    iteration = Iteration(problem, options)
    state = run_eager(iteration, initial_state(problem, options, iteration.buffers), check_period)
    return finish(iteration, state)


def finish(iteration: Iteration, state: IPMState) -> IPMResult:
    """Final assessment of the last iterate, statuses, certificates, on the original data."""
    problem, options = iteration.original, iteration.options
    status, _, _, merit = iteration.assess(state, check_certificates=True)
    status = torch.where(status == _RUNNING, int(QPStatus.MAX_ITER), status)
    unsolved = (status == QPStatus.MAX_ITER) | (status == QPStatus.NUMERICAL_ERROR)
    use_best = unsolved & (state.best_merit < merit)
    z, s, lam, nu = state.iterate(use_best)
    z, s, lam, nu = iteration.unscaled(dataclasses.replace(state, z=z, s=s, lam=lam, nu=nu))
    res = residuals(problem, z, s, lam, nu)
    tiny = iteration.tiny
    cert_dual = torch.cat([lam] + ([nu] if nu is not None else []), -1)
    cert_dual = cert_dual / inf_norm(cert_dual).clamp_min(tiny).unsqueeze(-1)
    cert_dual = cert_dual * (status == QPStatus.PRIMAL_INFEASIBLE).unsqueeze(-1)
    crossed = _crossed_bounds(problem)
    if crossed is not None:
        # lam_lb = lam_ub = 1 on a crossed coordinate: -lb + ub < 0 with a zero combination.
        ray = crossed.to(z.dtype).expand(z.shape[0], -1)
        m_g = 0 if problem.G is None else problem.G.shape[-2]
        n = problem.n
        unit = torch.cat([torch.zeros_like(cert_dual[:, :m_g]), ray, ray], -1)
        unit = torch.cat([unit, torch.zeros_like(cert_dual[:, m_g + 2 * n :])], -1)
        cert_dual = torch.where(crossed.any(-1, keepdim=True), unit, cert_dual)
    cert_primal = z / inf_norm(z).clamp_min(tiny).unsqueeze(-1)
    cert_primal = cert_primal * (status == QPStatus.DUAL_INFEASIBLE).unsqueeze(-1)
    reg = options.regularization * 100.0**state.bumps
    return IPMResult(
        z, s, lam, nu, status, state.iterations, res, cert_dual, cert_primal,
        reg.to(z.dtype),
    )  # fmt: skip


def _crossed_bounds(problem: Problem) -> torch.Tensor | None:
    """(B, n) bool: coordinates with lb > ub (both finite), or None without both bounds."""
    if problem.lb is None or problem.ub is None:
        return None
    lb_mask, ub_mask = problem.split_rows(problem.mask)[1:]
    return (problem.lb > problem.ub) & (lb_mask > 0) & (ub_mask > 0)


def _bounds_infeasible(problem: Problem, status: torch.Tensor) -> torch.Tensor:
    """lb > ub is infeasible before any iteration."""
    crossed = _crossed_bounds(problem)
    if crossed is None:
        return status
    return torch.where(crossed.any(-1), int(QPStatus.PRIMAL_INFEASIBLE), status)
