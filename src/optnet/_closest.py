"""The closest feasible problem: what ``SolverOptions(infeasible="closest")`` returns.

A problem whose constraints are inconsistent (status ``PRIMAL_INFEASIBLE``) is replaced by the
nearest problem that has a solution. Phase 1 finds the smallest shift of the right-hand sides
that makes the constraints consistent::

    minimize 1/2 ||u||^2 + 1/2 ||v||^2  over (z, u, v)  s.t.  C z - u <= d,  A z - v = b

with the inequality rows stacked as the solver stacks them, ``C = [G; -I; I]`` and
``d = [h; -lb; ub]`` (rows with an infinite right-hand side do not exist). It is itself a
convex QP, always feasible and bounded below; its Hessian is zero in z, which the solver's
static regularization handles as it does for linear programs. Its shift ``(u, v)`` is unique
(the shortest vector between the range of ``[C; A]`` and the box ``{y <= d} x {b}``) and equals
the phase's duals: a Farkas ray of the original constraints, ``C'u + A'v = 0`` and
``d'u + b'v = -||(u, v)||^2 < 0``. Phase 2 solves the original objective on the shifted
constraints ``Gz <= h + u_G, Az = b + v, lb - u_lb <= z <= ub + u_ub``, consistent by
construction. Both phases are ``solve_qp`` calls, so autograd differentiates the composition:
phase 2's solution in the data directly and through the shift.

On the shifted constraints every row that phase 1 moved (``u_i > 0``) holds with equality at
every feasible point (they are implicit equalities: the set has no interior), so phase 2's
duals are not unique: the returned ones are one element of an unbounded set, and only ``z``
(unique where Q is positive definite) has a meaningful derivative. The derivative of the shift
is exact where phase 1's solution in z is unique and strictly complementary; where the
original constraints leave z free along some direction, the shift can jump under a
perturbation of G or A (the constraints may become consistent), and the returned derivative
is that of the phase-1 point the solver picked.

Which problems are relaxed: those the default solve left without a solution that may be
infeasible, ``PRIMAL_INFEASIBLE`` and also ``MAX_ITER`` and ``NUMERICAL_ERROR`` (in float32 the
interior point often ends an infeasible problem so, without a certificate); a ``MAX_ITER`` or
``NUMERICAL_ERROR`` problem is relaxed only if phase 1 needs a shift beyond the primal
tolerance, else it was feasible and keeps its result. Solved problems are returned exactly as
the default solve returns them. In eager mode only the candidates (a sub-batch, after one host
read of the statuses) are solved twice more; under ``torch.compile`` and the torch.func
transforms (vmap cannot read the statuses) every problem goes through the two phases and the
candidates take the result. A relaxed problem's status is ``CLOSEST_FEASIBLE``, its
``primal_residual`` the violation of the original constraints, its certificate the normalized
shift.
"""

from __future__ import annotations

import dataclasses

import torch

from ._autograd import values_readable
from ._problem import select_inputs
from ._solution import ActiveSet, QPSolution
from ._status import QPStatus
from ._tree import map_tensors

_PHASE_2_FIELDS = ("z", "lam", "nu", "s", "lam_lb", "lam_ub", "dual_residual", "duality_gap")


def closest_feasible(solve, inputs: tuple, sol: QPSolution, options) -> QPSolution:
    """``sol`` with its infeasible problems replaced by their closest feasible one.

    ``solve``: ``solve_qp``; ``inputs``: its eight (Q, p, G, h, A, b, lb, ub); ``options``: the
    options of the phases (``infeasible="status"``). A problem whose phases do not both reach
    ``SOLVED`` keeps its default result.
    """
    # torch.compile and vmap cannot read the statuses: there (and under any torch.func
    # transform) every problem goes through the phases and the candidates take the result;
    # otherwise only the candidates do.
    every = not values_readable(sol.status)
    candidate = _candidates(sol.status)
    if not every and not bool(candidate.any()):
        return sol
    unbatched = sol.status.dim() == 0
    if unbatched:  # one problem: a batch of one (the other inputs stay shared)
        sol = map_tensors(sol, lambda x: x.unsqueeze(0))
        inputs = (inputs[0], inputs[1].unsqueeze(0), *inputs[2:])
        candidate = candidate.unsqueeze(0)
    infeasible = sol.status == int(QPStatus.PRIMAL_INFEASIBLE)
    rows = None
    if not every:
        rows = candidate.nonzero().squeeze(-1)
        inputs, infeasible = select_inputs(inputs, rows), infeasible[rows]
    dtype = inputs[1].dtype
    # The phases run in the compute dtype: the shifted constraints are consistent only to
    # the precision of the shift, which must be that of the solves.
    work = options.compute_dtype or dtype
    relaxed, ok, moved = _relax(solve, tuple(None if x is None else x.to(work) for x in inputs),
                                options)  # fmt: skip
    relaxed = {name: _cast(x, dtype) for name, x in relaxed.items()}
    # A problem that merely failed to converge is relaxed only if its constraints need a
    # shift beyond the primal tolerance: else it was feasible and keeps its status.
    take = ok & (infeasible | moved)
    if rows is None:
        take = take & candidate
    merged = _merge(sol, relaxed, rows, take)
    return map_tensors(merged, lambda x: x.squeeze(0)) if unbatched else merged


def _candidates(status: torch.Tensor) -> torch.Tensor:
    """Problems without a solution that may be infeasible: PRIMAL_INFEASIBLE, and MAX_ITER or
    NUMERICAL_ERROR (in float32 infeasibility often ends as one of these)."""
    codes = (QPStatus.PRIMAL_INFEASIBLE, QPStatus.MAX_ITER, QPStatus.NUMERICAL_ERROR)
    candidate = torch.zeros_like(status, dtype=torch.bool)
    for code in codes:
        candidate = candidate | (status == int(code))
    return candidate


def _cast(x, dtype):
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(dtype)
    return x


def _relax(solve, inputs, options):
    """(phase 2's fields for the merge, both phases solved, shift beyond the tolerance)."""
    Q, p, G, h, A, b, lb, ub = inputs
    n, dtype, device = p.shape[-1], p.dtype, p.device
    eye = torch.eye(n, dtype=dtype, device=device)
    blocks = {"ineq": (G, h), "lb": (None, None), "ub": (None, None)}
    if lb is not None:
        blocks["lb"] = (-eye, -lb)
    if ub is not None:
        blocks["ub"] = (eye, ub)
    present = [(block, rhs) for block, rhs in blocks.values() if block is not None]
    m_all = sum(block.shape[-2] for block, _ in present)
    neq = 0 if A is None else A.shape[-2]

    # Phase 1 over (z, u, v): min 1/2 ||u||^2 + 1/2 ||v||^2  s.t.  C z - u <= d,  A z - v = b.
    weights = torch.cat([eye.new_zeros(n), eye.new_ones(m_all + neq)])
    Q1, p1 = torch.diag(weights), weights.new_zeros(n + m_all + neq)
    C = d = G1 = A1 = None
    if m_all:
        C = _cat_rows([block for block, _ in present], 2)
        d = _cat_rows([rhs for _, rhs in present], 1)
        minus = -torch.eye(m_all, dtype=dtype, device=device).expand(*C.shape[:-2], -1, -1)
        G1 = torch.cat([C, minus, C.new_zeros(*C.shape[:-1], neq)], -1)
    if neq:
        minus = -torch.eye(neq, dtype=dtype, device=device).expand(*A.shape[:-2], -1, -1)
        A1 = torch.cat([A, A.new_zeros(*A.shape[:-1], m_all), minus], -1)
    phase1 = solve(Q1, p1, G1, d, A1, b, options=options)
    u, v = phase1.z[..., n : n + m_all], phase1.z[..., n + m_all :]

    # Phase 2: the shifted constraints. Rows that phase 1 moved (u_i > 0) hold with equality
    # at every point of the shifted set (module docstring), so they are passed as equalities
    # (the unmoved rows' equality rows are 0 = 0) and dropped from the inequalities: an
    # inequality without interior would have unbounded duals and an active set that the
    # polish cannot read off its iterate.
    A2, b2 = A, None if b is None else b + v
    moved = None
    if m_all:
        scale = phase1.z[..., n:].abs().amax(-1, keepdim=True)
        moved = phase1.active_set.ineq & (u > torch.finfo(dtype).eps ** 0.75 * scale)
        rows = moved.unsqueeze(-1).to(dtype)
        A2 = _cat_rows([x for x in (A, rows * C) if x is not None], 2)
        b2 = _cat_rows([x for x in (b2, torch.where(moved, d + u, 0)) if x is not None], 1)
    shifted, start = {}, 0
    for name, (block, rhs) in blocks.items():
        if block is None:
            shifted[name] = (None, None)
            continue
        size = block.shape[-2]
        u_i, moved_i = u[..., start : start + size], moved[..., start : start + size]
        start += size
        sign = -1.0 if name == "lb" else 1.0  # the row's right-hand side is -lb
        value = (rhs if name != "lb" else lb) + sign * u_i
        shifted[name] = (torch.where(moved_i, sign * float("inf"), value), moved_i)
    (h2, moved_G), (lb2, moved_lb), (ub2, moved_ub) = shifted.values()
    phase2 = solve(Q, p, G, h2, A2, b2, lb=lb2, ub=ub2, options=options)

    fields = {name: getattr(phase2, name) for name in _PHASE_2_FIELDS}
    nu = phase2.nu
    if m_all:  # the moved rows' duals are those of their equality rows
        fields["nu"] = None if A is None else nu[..., :neq]
        extra, start = nu[..., neq:], 0
        for name, moved_i in (("lam", moved_G), ("lam_lb", moved_lb), ("lam_ub", moved_ub)):
            if moved_i is None:
                continue
            size = moved_i.shape[-1]
            fields[name] = torch.where(moved_i, extra[..., start : start + size], fields[name])
            start += size
        if moved_G is not None:
            fields["s"] = torch.where(moved_G, 0.0, fields["s"])
    active = phase2.active_set
    fields["active_set"] = ActiveSet(**{
        name: None if mask is None else mask | moved_i
        for (name, mask), moved_i in zip(active.blocks(), (moved_G, moved_lb, moved_ub))
    })  # fmt: skip
    fields["iterations"] = phase1.iterations + phase2.iterations
    with torch.no_grad():
        fields["primal_residual"] = _violation(phase2.z, inputs)
        ray = phase1.z[..., n:].expand(*phase2.z.shape[:-1], -1)
        shift = ray.abs().amax(-1)
        fields["certificate"] = ray / shift.clamp_min(torch.finfo(dtype).tiny).unsqueeze(-1)
        eps_abs, eps_rel = options.tolerances(dtype)
        rhs = [x for x in (d, b) if x is not None]
        scale = torch.stack([torch.where(x.isfinite(), x, 0).abs().amax(-1).expand(shift.shape)
                             for x in rhs]).amax(0)  # fmt: skip
        moved_any = shift > eps_abs + eps_rel * scale
    solved = int(QPStatus.SOLVED)  # an int: under torch.compile, == QPStatus gave a Python bool
    ok = (phase1.status == solved) & (phase2.status == solved)
    return fields, ok.expand(phase2.status.shape), moved_any


def _violation(z, inputs) -> torch.Tensor:
    """(B,) infinity norm of the original constraints' violation at z (the shift's size)."""
    Q, p, G, h, A, b, lb, ub = inputs
    parts = []
    if G is not None:
        parts.append(((G @ z.unsqueeze(-1)).squeeze(-1) - h).clamp_min(0))
    if A is not None:
        parts.append(((A @ z.unsqueeze(-1)).squeeze(-1) - b).abs())
    if lb is not None:
        parts.append((lb - z).clamp_min(0))
    if ub is not None:
        parts.append((z - ub).clamp_min(0))
    return torch.cat([x.expand(z.shape[0], -1) for x in parts], -1).amax(-1)


def _merge(sol: QPSolution, relaxed: dict, rows, take) -> QPSolution:
    """``sol`` with the problems ``rows[take]`` (all where ``rows`` is None) from ``relaxed``."""

    def pick(old, new):
        if old is None:
            return None
        mask = take.view(-1, *([1] * (new.dim() - 1)))
        if rows is None:
            return torch.where(mask, new, old)
        return old.index_copy(0, rows, torch.where(mask, new, old[rows]))

    status = torch.full_like(take, int(QPStatus.CLOSEST_FEASIBLE), dtype=sol.status.dtype)
    changes = {name: pick(getattr(sol, name), relaxed[name]) for name in _PHASE_2_FIELDS}
    changes["primal_residual"] = pick(sol.primal_residual, relaxed["primal_residual"])
    changes["status"] = pick(sol.status, status)
    before = sol.iterations if rows is None else sol.iterations[rows]
    changes["iterations"] = pick(sol.iterations, before + relaxed["iterations"])
    active = {name: pick(old, new) for (name, old), (_, new) in
              zip(sol.active_set.blocks(), relaxed["active_set"].blocks())}  # fmt: skip
    changes["active_set"] = ActiveSet(**active)
    # The certificate: phase 1's shift (u, v), normalized, a Farkas ray of the constraints.
    cert, ray = sol.certificate, relaxed["certificate"]
    u, v = ray[..., : ray.shape[-1] - _size(cert.nu)], ray[..., ray.shape[-1] - _size(cert.nu) :]
    parts, start = {}, 0
    for name in ("lam", "lam_lb", "lam_ub"):
        old = getattr(cert, name)
        parts[name] = None if old is None else pick(old, u[..., start : start + old.shape[-1]])
        start += _size(old)
    parts["nu"] = None if cert.nu is None else pick(cert.nu, v)
    parts["z"] = pick(cert.z, cert.z.new_zeros(len(take), cert.z.shape[-1]))
    changes["certificate"] = dataclasses.replace(cert, **parts)
    return dataclasses.replace(sol, **changes)


def _size(x) -> int:
    return 0 if x is None else x.shape[-1]


def _cat_rows(parts: list[torch.Tensor], core: int) -> torch.Tensor:
    """Concatenate row blocks of ``core`` dimensions (2: matrices, 1: vectors) along their
    rows, batched ``(B, rows, ...)`` if any block is, else shared."""
    lead = next((x.shape[0] for x in parts if x.dim() == core + 1), None)
    if lead is not None:
        parts = [x if x.dim() == core + 1 else x.expand(lead, *x.shape) for x in parts]
    return torch.cat(parts, -core)
