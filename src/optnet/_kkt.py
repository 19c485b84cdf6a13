"""The one place that factors the Newton (KKT) system; forward iterations and backward reuse it.

Every Newton system of the interior-point method, and the adjoint system of the backward pass,
reduces by eliminating slacks and inequality duals to::

    [ H   A' ] [x]   [r1]
    [ A   0  ] [y] = [r2],      H = Q + C' diag(w) C

which is solved by block elimination with two batched Cholesky factorizations: of
``H + rho I`` and of the Schur complement ``A (H + rho I)^-1 A' + delta I``. The small static
regularizations ``rho, delta`` keep singular Q (linear programs) and redundant equality rows
factorable; iterative refinement against the unregularized matrix removes their bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from ._policy import CHOLESKY, INVERSE
from ._problem import Problem, matvec


@dataclass(frozen=True)
class SPDFactor:
    """Factor of a Jacobi-scaled SPD matrix: M + reg I = D (L L') D, D = diag(d).

    Its form is the backend's ``Policy.factor_form``. ``INVERSE`` (GPUs) keeps ``L^-1`` (one
    triangular solve with k right-hand sides per factorization) so
    that the many solves of an iteration are batched matrix-vector products: batched triangular
    solves with one right-hand side are latency-bound on GPUs. The inverse of a triangular
    factor is accurate to about cond(L) * eps, and the refinement of every Newton solve
    corrects what is lost. ``CHOLESKY`` (CPUs) keeps ``L`` and ``L_inv`` is None: there a
    triangular solve costs the same as a matrix-vector product while forming ``L^-1`` costs
    more than the Cholesky factorization itself (measured).
    """

    L_inv: torch.Tensor | None  # (B, k, k) lower triangular, or None when L is kept
    d: torch.Tensor  # (B, k)
    ok: torch.Tensor  # (B,) bool
    L: torch.Tensor | None = None  # (B, k, k) lower triangular Cholesky factor (CPU)

    def half_solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """L^-1 D^-1 rhs for rhs of shape (B, k) or (B, k, c)."""
        vector = rhs.dim() == self.d.dim()
        d = self.d if vector else self.d.unsqueeze(-1)
        if self.L_inv is not None:
            return matvec(self.L_inv, rhs / d) if vector else self.L_inv @ (rhs / d)
        rhs = (rhs / d).unsqueeze(-1) if vector else rhs / d
        out = torch.linalg.solve_triangular(self.L, rhs, upper=False)
        return out.squeeze(-1) if vector else out

    def half_solve_t(self, u: torch.Tensor) -> torch.Tensor:
        """D^-1 L^-T u for u of shape (B, k) or (B, k, c)."""
        vector = u.dim() == self.d.dim()
        d = self.d if vector else self.d.unsqueeze(-1)
        if self.L_inv is not None:
            return (matvec(self.L_inv.mT, u) if vector else self.L_inv.mT @ u) / d
        out = torch.linalg.solve_triangular(self.L.mT, u.unsqueeze(-1) if vector else u, upper=True)
        return (out.squeeze(-1) if vector else out) / d

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """M^-1 rhs for rhs of shape (B, k) or (B, k, c)."""
        return self.half_solve_t(self.half_solve(rhs))


class Buffers:
    """Memory reused by the factorizations of one solve (CPU).

    A fresh multi-megabyte tensor costs page faults on every allocation (the allocator returns
    freed memory to the OS), which measured as much as the arithmetic of a factorization. A
    factor made with buffers is valid until the next factorization with the same buffers.
    """

    def __init__(self):
        self._tensors: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape, like: torch.Tensor) -> torch.Tensor:
        """An uninitialized tensor of ``shape`` with ``like``'s dtype and device.

        A smaller batch (the leading dimension) gets the leading part of a larger buffer.
        """
        shape = torch.Size(shape)
        t = self._tensors.get(name)
        if (
            t is None
            or t.shape[1:] != shape[1:]
            or t.shape[0] < shape[0]
            or t.dtype != like.dtype
            or t.device != like.device
        ):
            t = self._tensors[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return t[: shape[0]]


def factor_spd(
    M: torch.Tensor,
    reg: torch.Tensor,
    form: str,
    buffers: Buffers | None = None,
    boost: torch.Tensor | None = None,
) -> SPDFactor:
    """Factor M + reg I (reg (B,) absolute) after symmetric diagonal scaling, in ``form``.

    Scaling to a unit diagonal first makes the round-off shift relative to each row's own
    size, so a huge weight of one active constraint does not perturb the other directions.
    """
    size = M.shape[-1]
    d = (M.diagonal(dim1=-2, dim2=-1) + reg.unsqueeze(-1)).clamp_min(torch.finfo(M.dtype).tiny)
    d = d.sqrt()
    inv_d = 1 / d
    scaled = U = info = None
    if buffers is not None:
        scaled = buffers.get("scaled", M.shape, M)
        U = buffers.get("L", M.shape, M).mT  # column-major, as LAPACK writes it
        info = buffers.get("info", M.shape[:-2], M.new_empty(0, dtype=torch.int32))
    scaled = torch.mul(M, inv_d.unsqueeze(-1), out=scaled)  # not M itself: safe to edit
    scaled.mul_(inv_d.unsqueeze(-2))
    roundoff = size**0.5 * torch.finfo(M.dtype).eps
    if boost is not None:
        roundoff = roundoff * boost.unsqueeze(-1)
    shift = reg.unsqueeze(-1) * inv_d.square() + roundoff
    scaled.diagonal(dim1=-2, dim2=-1).add_(shift)
    eye = torch.eye(size, dtype=M.dtype, device=M.device)
    if form == CHOLESKY:
        # The upper factor, whose transpose is a row-major L: zeroing the other triangle of a
        # column-major L (what the lower factor needs) costs a third of the factorization.
        U, info = torch.linalg.cholesky_ex(scaled, upper=True, out=None if U is None else (U, info))
        L, ok = U.mT, info == 0
        # A failed factor holds garbage; substitute identity so nothing non-finite spreads.
        # Reading ``ok`` is free on the CPU (this form's device), and all factors usually
        # succeed.
        if not bool(ok.all()):
            L = torch.where(ok[:, None, None], L, eye)
        return SPDFactor(None, d, ok, L)
    L_inv, info = _cholesky_inverse_factor(scaled)
    ok = (info == 0)[:, None, None]
    return SPDFactor(torch.where(ok, L_inv, eye), d, ok.flatten())  # no host sync on GPUs


# From this size on, GPUs factor in blocks of at most BLOCK (``_cholesky_inverse_factor``).
BLOCKED_FROM, BLOCK = 384, 128


def _cholesky_inverse_factor(M: torch.Tensor):
    """(L^-1, info) of the Cholesky factor L of SPD matrices M (B, k, k), on GPUs.

    ``info`` is ``cholesky_ex``'s. cuSOLVER's batched Cholesky and triangular inverse run at a
    few TFLOP/s for k = 500, while a 2 x 2 block recursion (L21 = M21 L11^-T, the Schur
    complement M22 - L21 L21' factored again, L^-1's lower block -L22^-1 L21 L11^-1) runs its
    products near the GEMM rate. H200, float64, with L: B = 128, k = 500: 4.3 -> 3.3 ms;
    B = 1024: 29.7 -> 14.7 ms; at k <= 256 the extra kernels cost more than they save; factor
    error ``|LL' - M| / |M|`` 1.1e-15 instead of 5.2e-16 (L21 from the explicit inverse),
    the inverse's the same (measured 2026-12-02).
    """
    return _blocks(M) if M.shape[-1] >= BLOCKED_FROM else _unblocked(M)


def _unblocked(M: torch.Tensor):
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
    L, info = torch.linalg.cholesky_ex(M)
    L = torch.where((info == 0)[:, None, None], L, eye)  # a failed factor holds garbage
    return torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False), info


def _blocks(M: torch.Tensor):
    size = M.shape[-1]
    if size <= BLOCK:
        return _unblocked(M)
    k = (size // 2 + 31) // 32 * 32
    inv11, info11 = _blocks(M[..., :k, :k])
    L21 = M[..., k:, :k] @ inv11.mT
    inv22, info22 = _blocks(torch.baddbmm(M[..., k:, k:], L21, L21.mT, alpha=-1))
    L_inv = M.new_zeros(M.shape)
    L_inv[..., :k, :k], L_inv[..., k:, k:] = inv11, inv22
    L_inv[..., k:, :k] = -(inv22 @ (L21 @ inv11))
    info = torch.where(info11 != 0, info11, torch.where(info22 != 0, info22 + k, 0))
    return L_inv, info


@dataclass(frozen=True)
class KKTFactor:
    """Factors of the reduced KKT matrix.

    With equalities, either ``Hinv_At`` = (H + rho I)^-1 A' is kept (``INVERSE`` form), or
    ``W`` = L^-1 D^-1 A' (``CHOLESKY`` form, from one triangular solve): then the Schur
    complement is W'W and a solve needs only the two triangular solves of H's factor.
    """

    H: torch.Tensor  # (B, n, n) unregularized reduced Hessian, for refinement
    H_factor: SPDFactor  # of H + rho I
    A: torch.Tensor | None  # (B|1, neq, n)
    Hinv_At: torch.Tensor | None  # (B, n, neq) (H + rho I)^-1 A', or None when W is kept
    S_factor: SPDFactor | None  # of A (H + rho I)^-1 A' + delta I
    refine_steps: int
    W: torch.Tensor | None = None  # (B, n, neq) L^-1 D^-1 A' of H's factor

    @property
    def ok(self) -> torch.Tensor:
        ok = self.H_factor.ok
        return ok if self.S_factor is None else ok & self.S_factor.ok


def factor(
    problem: Problem,
    w: torch.Tensor,
    reg: torch.Tensor,
    refine_steps: int,
    form: str,
    buffers: Buffers | None = None,
    boost: torch.Tensor | None = None,
    schur_boost: float | None = None,
) -> KKTFactor:
    """Factor the reduced KKT matrix for inequality weights ``w`` (B, m_all), in ``form``.

    ``reg`` (B,) is the static regularization (rho = delta) per problem. With ``buffers`` the
    factor lives in their memory (see ``Buffers``). ``boost`` (B,) multiplies the relative
    round-off shift of both factorizations, ``schur_boost`` that of the Schur complement's.
    """
    if schur_boost is not None:
        schur_boost = torch.full_like(reg, schur_boost) if boost is None else boost * schur_boost
    else:
        schur_boost = boost
    H = problem.reduced_hessian(w, buffers)
    H_factor = factor_spd(H, reg, form, buffers, boost)
    if not problem.has_eq:
        return KKTFactor(H, H_factor, None, None, None, refine_steps)
    A = problem.A
    At = A.mT.expand(H.shape[0], -1, -1)
    if H_factor.L_inv is None:
        W = H_factor.half_solve(At)
        S_factor = factor_spd(W.mT @ W, reg, form, boost=schur_boost)
        return KKTFactor(H, H_factor, A, None, S_factor, refine_steps, W)
    Hinv_At = H_factor.solve(At)
    S_factor = factor_spd(A @ Hinv_At, reg, form, boost=schur_boost)
    return KKTFactor(H, H_factor, A, Hinv_At, S_factor, refine_steps)


def solve_regularized(f: KKTFactor, r1: torch.Tensor, r2: torch.Tensor | None):
    if f.A is None:
        return f.H_factor.solve(r1), None
    if f.W is not None:
        # u = L^-1 D^-1 r1;  (W'W + delta I) y = W'u - r2;  x = D^-1 L^-T (u - W y)
        u = f.H_factor.half_solve(r1)
        y = f.S_factor.solve(matvec(f.W.mT, u) - r2)
        return f.H_factor.half_solve_t(u - matvec(f.W, y)), y
    # (A Hr^-1 A' + delta I) y = A Hr^-1 r1 - r2 ; x = Hr^-1 (r1 - A'y)
    x = f.H_factor.solve(r1)
    y = f.S_factor.solve(matvec(f.A, x) - r2)
    x = x - matvec(f.Hinv_At, y)
    return x, y


def solve(f: KKTFactor, r1: torch.Tensor, r2: torch.Tensor | None = None):
    """Solve ``[H A'; A 0] [x; y] = [r1; r2]`` with the factor ``f`` (no new factorization).

    Returns ``(x, y)``; ``y`` is None without equality constraints.
    """
    x, y = solve_regularized(f, r1, r2)
    for _ in range(f.refine_steps):
        e1 = r1 - matvec(f.H, x)
        e2 = None
        if f.A is not None:
            e1 = e1 - matvec(f.A.mT, y)
            e2 = r2 - matvec(f.A, x)
        dx, dy = solve_regularized(f, e1, e2)
        x = x + dx
        if y is not None:
            y = y + dy
    return x, y


@dataclass(frozen=True)
class ActiveSetFactor:
    """The KKT system with the ``active`` inequality rows held as equalities::

        [ Q    C_a'  A' ] [x  ]   [r1   ]
        [ C_a  0     0  ] [lam] = [r_lam]      (lam = 0 on the inactive rows)
        [ A    0     0  ] [y  ]   [r2   ]

    It is solved through ``reduced``, the factor of its penalized reduced form
    ``Q + C' diag(w) C`` (``w`` large on the active rows, 0 on the others: the system with
    ``-1/w`` in place of the zero block), and iterative refinement against the exact system,
    with residuals in ``exact``'s dtype (float64 for float32 data: mixed precision). The
    penalty ``w_i = max(1, |Q|) / (sqrt(eps) ||C_i||^2)`` balances the two errors of a
    refinement step, the factor's round-off (~ w eps) and the penalty's bias (~ 1 / w), so
    each step gains about half the dtype's digits.
    """

    reduced: KKTFactor
    w: torch.Tensor  # (B, m_all) penalty weights, 0 on inactive rows
    active: torch.Tensor  # (B, m_all) 1.0 on active rows
    refine_steps: int
    problem: Problem  # the data, in the factor's dtype
    exact: Problem  # the data in the dtype of the residuals (may be ``problem`` itself)

    @property
    def ok(self) -> torch.Tensor:
        return self.reduced.ok

    def tensors(self) -> FactorTensors:
        """The factor as tensors, contiguous: what the custom op returns and autograd saves
        (``from_tensors`` rebuilds it)."""
        reduced = self.reduced
        H, S = reduced.H_factor, reduced.S_factor
        batch, n = H.d.shape
        X = reduced.W if reduced.W is not None else reduced.Hinv_At
        if X is None:  # no equality constraints
            X, S_tri, S_d = (H.d.new_zeros(batch, *shape) for shape in ((n, 0), (0, 0), (0,)))
        else:
            S_tri, S_d = (S.L if S.L_inv is None else S.L_inv), S.d
        H_tri = H.L if H.L_inv is None else H.L_inv
        # Contiguous, as the op's fake implementation says (LAPACK writes L column-major).
        tensors = (H_tri, H.d, X, S_tri, S_d, self.w, self.active, self.ok)
        return FactorTensors(*(x.contiguous() for x in tensors))

    @classmethod
    def from_tensors(cls, problem: Problem, tensors, form: str) -> ActiveSetFactor:
        """The factor of ``problem`` (made in ``residual_problem(problem)``'s dtype) from
        ``tensors()``, made in ``form`` (the ``Policy.factor_form`` of the backend that made
        it)."""
        H_tri, H_d, X, S_tri, S_d, w, active, ok = FactorTensors(*tensors)
        steps = ACTIVE_SET_REFINE_STEPS[problem.p.dtype]
        problem = residual_problem(problem)
        inverse = form == INVERSE

        def spd(tri, d):
            return SPDFactor(tri, d, ok) if inverse else SPDFactor(None, d, ok, tri)

        S = spd(S_tri, S_d) if problem.has_eq else None
        W, Hinv_At = (None, X) if inverse else (X, None)
        A = problem.A if problem.has_eq else None
        # H (the unregularized matrix) serves the refinement of ``solve``, never used here.
        reduced = KKTFactor(None, spd(H_tri, H_d), A, Hinv_At, S, 0, W)
        return cls(reduced, w, active, steps, problem, problem)

    @staticmethod
    def fake_tensors(like: torch.Tensor, batch, n, neq, m_all, dtype) -> FactorTensors:
        """Empty tensors shaped as ``tensors()`` (for torch.compile's fake kernels)."""
        shapes = ((n, n), (n,), (n, neq), (neq, neq), (neq,), (m_all,), (m_all,))
        floats = [like.new_empty(batch, *shape, dtype=dtype) for shape in shapes]
        return FactorTensors(*floats, like.new_empty(batch, dtype=torch.bool))


class FactorTensors(NamedTuple):
    """``ActiveSetFactor`` as tensors, each with the batch dimension first."""

    H_tri: torch.Tensor  # (B, n, n) L or L^-1 of H + rho I (by the form), H = Q + C' diag(w) C
    H_d: torch.Tensor  # (B, n) its Jacobi scaling
    X: torch.Tensor  # (B, n, neq) W = L^-1 D^-1 A' or (H + rho I)^-1 A' (by the form)
    S_tri: torch.Tensor  # (B, neq, neq) L or L^-1 of the Schur complement
    S_d: torch.Tensor  # (B, neq) its Jacobi scaling
    w: torch.Tensor  # (B, m_all) penalty weights, 0 on inactive rows
    active: torch.Tensor  # (B, m_all) 1.0 on active rows
    ok: torch.Tensor  # (B,) bool: the factorization succeeded


FACTOR_FIELDS = FactorTensors._fields


def factor_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the active-set factor (the polish's, which the backward reuses) of data in
    ``dtype``: float64 for float32 data.

    The penalized reduced matrix ``Q + C' diag(w) C`` has condition ~ cond(Q) / sqrt(eps): in
    float32 its refinement stops converging once cond(Q) passes ~1e3 (the paper's OptNetLayer
    at its initialization, cond(Q) ~ 1e6: gradients 30-80 % off float64's, 2026-12-02), while
    one float64 factorization costs about what a float32 interior-point iteration does.
    """
    return torch.float64 if dtype == torch.float32 else dtype


def residual_problem(problem: Problem) -> Problem:
    """The data in the active-set factor's dtype (``factor_dtype``): the refinement's exact
    system, and the matrix factored."""
    dtype = factor_dtype(problem.p.dtype)
    return problem if dtype == problem.p.dtype else problem.to(dtype)


def active_set_penalty(problem: Problem) -> torch.Tensor:
    """(B|1, m_all): each row's penalty weight ``w_i`` when active (see ``ActiveSetFactor``).

    ``eps`` is the data's (float32's for float32 data, though the factor is float64): a
    penalty of 1/sqrt(eps64) leaves the multipliers of dependent active rows (degenerate
    vertices, weakly active rows), which are not unique, nearly unregularized, and the
    polish's pick among them then had negative entries where float32's was nonnegative.
    """
    eps = torch.finfo(problem.p.dtype).eps
    return problem.q_scale().unsqueeze(-1) / (eps**0.5 * problem.row_norms_sq())


def factor_active(
    problem: Problem,
    active: torch.Tensor,
    reg: torch.Tensor,
    exact: Problem,
    penalty: torch.Tensor,
    form: str,
    buffers: Buffers | None = None,
) -> ActiveSetFactor:
    """Factor the active-set KKT system (``active`` (B, m_all) bool) of ``problem``, in
    ``form``.

    ``exact`` is ``residual_problem(problem)`` and ``penalty`` ``active_set_penalty(problem)``,
    made once by the caller for all its factors. With ``buffers`` the factor lives in their
    memory (see ``Buffers``).
    """
    # Factored in ``exact``'s dtype: float64 for float32 data (see ``factor_dtype``).
    dtype = exact.p.dtype
    active = active.to(dtype) * exact.mask
    if dtype != problem.p.dtype:
        buffers = None  # the interior point's, in its dtype
    w = active * penalty.to(dtype)
    # Equality rows dependent in the data but made inconsistent by its rounding (~eps of the
    # data) are regularized at the data's precision, as a factor in its dtype would be: else
    # the float64 factor resolves the 1e-7 inconsistency with a large move of z (rank-deficient
    # A rounded to float32: z 1e-3..4e-3 off on 22 of 768 problems, against 4 in float32).
    schur_boost = torch.finfo(problem.p.dtype).eps / torch.finfo(dtype).eps
    reduced = factor(exact, w, reg.to(dtype), 0, form, buffers, schur_boost=schur_boost)
    steps = ACTIVE_SET_REFINE_STEPS[problem.p.dtype]
    return ActiveSetFactor(reduced, w, active, steps, exact, exact)


# Refinement steps of an active-set solve, by the data's dtype (the penalty's, see
# ``active_set_penalty``): each gains ~8 digits with float64 data, ~3 with float32 data.
# float32: 7 gave the same Maros-Meszaros scores as 10 (low and mid tiers, CPU), 5 lost one
# problem at mid (QAFIRO's primal residual 2.9e-7 -> 1.5e-6).
ACTIVE_SET_REFINE_STEPS = {torch.float64: 3, torch.float32: 7}


def solve_active(
    f: ActiveSetFactor, r1: torch.Tensor, r_lam: torch.Tensor, r2: torch.Tensor | None
):
    """(x, lam, y) of the active-set system (``y`` None without equalities), in ``r1``'s dtype.

    ``r_lam`` (B, m_all) is read on the active rows only.
    """
    problem, exact, reduced, w = f.problem, f.exact, f.reduced, f.w
    out_dtype, work = r1.dtype, exact.p.dtype
    r1, r_lam = r1.to(work), r_lam.to(work)
    r2 = None if r2 is None else r2.to(work)
    active = f.active.to(work)
    x = torch.zeros_like(r1)
    lam = torch.zeros_like(r_lam)
    y = None if r2 is None else torch.zeros_like(r2)
    for step in range(f.refine_steps + 1):
        if step == 0:
            e1, e_lam, e2 = r1, r_lam * active, r2
        else:  # residuals of the exact system
            e1 = r1 - matvec(exact.Q, x) - exact.ineq_t(lam)
            e_lam = (r_lam - exact.ineq(x)) * active
            e2 = None
            if y is not None:
                e1 = e1 - exact.eq_t(y)
                e2 = r2 - exact.eq(x)
        # One solve of the penalized system: dlam = w (C dx - e_lam) eliminated.
        e1, e_lam = e1.to(w.dtype), e_lam.to(w.dtype)
        e2 = None if e2 is None else e2.to(w.dtype)
        dx, dy = solve_regularized(reduced, e1 + problem.ineq_t(w * e_lam), e2)
        dlam = w * (problem.ineq(dx) - e_lam)
        x, lam = x + dx.to(work), lam + dlam.to(work)
        if y is not None:
            y = y + dy.to(work)
    return x.to(out_dtype), lam.to(out_dtype), None if y is None else y.to(out_dtype)
