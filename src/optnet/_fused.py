"""Fused interior-point solve for small problems: one Triton program solves one problem.

The batched solver of ``_pdipm`` runs an iteration as a few hundred tensor operations over the
whole batch; for small problems each is a kernel launch that costs more than its arithmetic
(launch- and latency-bound: docs/performance.md). Here a single kernel launch solves the whole
batch, one program per problem, holding the problem and its iterate in registers from the
starting point to the final status. It is the same algorithm as ``_pdipm``, step for step: the
least-squares start, Mehrotra's predictor-corrector with the same centering, step rule,
iterative refinement, regularization bumps and anti-cycling safeguard, the same stopping rules
and infeasibility certificates (checked every iteration) and the best-iterate fallback.

The reduced Newton matrix ``H = Q + C' diag(w) C`` (and, with equalities, the Schur complement
``A H^-1 A'``) is factored in-program as ``_kkt.factor_spd`` does: Jacobi scaling, Cholesky, the
inverse of the factor. At the end each program factors ``H`` at the solution with the backward
pass's capped weights and writes it in ``_kkt.KKTFactor``'s layout, so the implicit backward
pass is the usual one and factors nothing.

Opt-in (``SolverOptions(fused_kernel=...)``), for problems whose padded tiles are small (see
``fits``). On CPU it runs under Triton's interpreter (``TRITON_INTERPRET=1``), which is how the
test suite checks it against ``_pdipm``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import _kkt
from ._options import SolverOptions
from ._pdipm import _MAX_REG_BUMPS, _RUNNING, _SAFEGUARD_AFTER, _STEP_FRACTION, IPMResult
from ._problem import Problem
from ._status import QPStatus

# Largest padded sizes. Every tile of a program lives in registers: at n = m = 64 they spill
# and the kernel was 1.3-5x slower than the batched solver, at 32 it was 2-5x faster (H100).
MAX_PADDED_N = 32
MAX_TILE = 32 * 32

# Statuses as compile-time constants of the kernel.
_RUNNING_ = tl.constexpr(_RUNNING)
_SOLVED = tl.constexpr(int(QPStatus.SOLVED))
_MAX_ITER = tl.constexpr(int(QPStatus.MAX_ITER))
_PRIMAL_INF = tl.constexpr(int(QPStatus.PRIMAL_INFEASIBLE))
_DUAL_INF = tl.constexpr(int(QPStatus.DUAL_INFEASIBLE))
_NUMERICAL = tl.constexpr(int(QPStatus.NUMERICAL_ERROR))


def _padded(size: int) -> int:
    return max(16, triton.next_power_of_2(max(size, 1)))


def _sizes(problem: Problem) -> tuple[int, int, int]:
    neq = problem.A.shape[-2] if problem.has_eq else 0
    return _padded(problem.n), _padded(problem.m_all), _padded(neq)


def fits(problem: Problem) -> bool:
    """Whether the problem's padded tiles fit one program."""
    n_pad, m_pad, e_pad = _sizes(problem)
    return n_pad <= MAX_PADDED_N and e_pad <= MAX_PADDED_N and m_pad * n_pad <= MAX_TILE


def usable(problem: Problem, options: SolverOptions) -> bool:
    """Whether ``options`` ask for the fused kernel on this problem (raises if it can't)."""
    if options.fused_kernel is False or options.equilibrate:
        return False
    if options.fused_kernel is None:
        return problem.p.is_cuda and fits(problem)
    if not (problem.p.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
        raise ValueError(
            "SolverOptions(fused_kernel=True) needs a CUDA device (or TRITON_INTERPRET=1 on CPU)"
        )
    if not fits(problem):
        raise ValueError(
            f"SolverOptions(fused_kernel=True): the problem is too large for the fused kernel "
            f"(padded n, constraint rows, equalities = {_sizes(problem)}; at most n, neq <= "
            f"{MAX_PADDED_N} and rows * n <= {MAX_TILE})"
        )
    return True


@functools.lru_cache(maxsize=64)
def _params(values: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The kernel's float parameters, kept on the device (read-only; saves a copy a call)."""
    return torch.tensor(values, dtype=dtype).to(device)


@functools.cache
def _sm_count(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _num_warps(tile: int, batch: int, device: torch.device) -> int:
    """Warps per program, measured on the H100 (docs/performance.md).

    A batch that leaves SMs idle is latency-bound: more warps hold the tiles with fewer
    register spills (n = 10, B = 1: 0.49 ms with 4 warps, 0.90 ms with 1). A batch that fills
    the GPU is throughput-bound: fewer warps per program win (n = 10, B = 1024: 1.13 ms with 1
    warp, 1.51 ms with 4).
    """
    latency_bound = device.type != "cuda" or batch <= 2 * _sm_count(device)
    if tile <= 512:
        return 4 if latency_bound else 1
    return 8 if latency_bound else 4


@dataclass(frozen=True)
class FusedResiduals:
    primal: torch.Tensor  # (B,)
    dual: torch.Tensor
    gap: torch.Tensor


def solve(
    problem: Problem, options: SolverOptions, want_factor: bool, num_warps: int | None = None
):
    """Solve every problem of the batch in one launch.

    Returns ``(IPMResult, KKTFactor | None)``: the factor at the solution for the backward pass
    when ``want_factor``.
    """
    batch, n, m_all = problem.batch, problem.n, problem.m_all
    neq = problem.A.shape[-2] if problem.has_eq else 0
    n_pad, m_pad, e_pad = _sizes(problem)
    p = problem.p
    dtype, device = p.dtype, p.device
    eps_abs, eps_rel = options.tolerances(dtype)
    info = torch.finfo(dtype)
    params = _params(
        (eps_abs, eps_rel, options.regularization, options.eps_infeasible, info.tiny,
         n**0.5 * info.eps, max(neq, 1) ** 0.5 * info.eps, 1 / info.eps**0.5),
        dtype, device,
    )  # fmt: skip

    def operand(x):  # contiguous, with batch stride 0 when shared by the batch
        if x is None:
            return p, 0
        x = x.contiguous()
        return x, (0 if x.shape[0] == 1 else x[0].numel())

    def new(*shape, kind=dtype):
        return torch.empty((batch, *shape), dtype=kind, device=device)

    inputs = [operand(x) for x in (problem.Q, p, problem.G, problem.A, problem.b)]
    inputs += [operand(problem.h_all), operand(problem.mask)]
    z, s, lam, nu = new(n), new(m_all), new(m_all), new(neq)
    status, iterations = new(kind=torch.int64), new(kind=torch.int64)
    residuals, regularization = new(3), new()
    cert_dual, cert_primal = new(m_all + neq), new(n)
    factor = [new(n, n), new(n, n), new(n), new(n, neq), new(neq, neq), new(neq)]
    factor_ok = new(kind=torch.int8)
    scratch = new(16)
    if num_warps is None:
        num_warps = _num_warps(n_pad * max(m_pad, n_pad), batch, device)
    _ipm_kernel[(batch,)](
        *(x for x, _ in inputs), params, *(stride for _, stride in inputs),
        z, s, lam, nu, status, iterations, residuals, regularization, cert_dual, cert_primal,
        scratch,
        *factor, factor_ok,
        n, 0 if problem.G is None else problem.G.shape[-2], m_all, neq,
        options.max_iter, options.refine_steps,
        NP=n_pad, MP=m_pad, EP=e_pad,
        HAS_LB=problem.lb is not None, HAS_UB=problem.ub is not None, HAS_A=neq > 0,
        SAFEGUARD=dtype == torch.float64, WANT_FACTOR=want_factor,
        MAX_BUMPS=_MAX_REG_BUMPS, SAFEGUARD_AFTER=_SAFEGUARD_AFTER, STEP=_STEP_FRACTION,
        num_warps=num_warps,
        # Contracting a*b+c into FMAs where the compiler sees fit rounds copies of one value
        # differently in different threads: measured, it broke convergence near the solution.
        enable_fp_fusion=False,
    )  # fmt: skip
    result = IPMResult(
        z, s, lam, nu if neq else None, status, iterations,
        FusedResiduals(*residuals.unbind(-1)), cert_dual, cert_primal, regularization,
    )  # fmt: skip
    if not want_factor:
        return result, None
    H, H_inv, H_d, Hinv_At, S_inv, S_d = factor
    ok = factor_ok.bool()
    H_factor = _kkt.SPDFactor(H_inv, H_d, ok)
    if not neq:
        return result, _kkt.KKTFactor(H, H_factor, None, None, None, options.refine_steps)
    S_factor = _kkt.SPDFactor(S_inv, S_d, ok)
    return result, _kkt.KKTFactor(H, H_factor, problem.A, Hinv_At, S_factor, options.refine_steps)


# ----------------------------------------------------------------------------------------------
# In-program linear algebra on register tiles (padded to powers of two, zero outside the data)


@triton.jit
def _mv(M, x):
    """M x for a tile M (R, K) and x (K,)."""
    return tl.sum(M * x[None, :], axis=1)


@triton.jit
def _mtv(M, y):
    """M' y for a tile M (R, K) and y (R,)."""
    return tl.sum(M * y[:, None], axis=0)


@triton.jit
def _pick(v, k, idx):
    """The scalar v[k]."""
    return tl.sum(tl.where(idx == k, v, 0.0), axis=0)


@triton.jit
def _column(M, k, cols):
    return tl.sum(tl.where(cols[None, :] == k, M, 0.0), axis=1)


@triton.jit
def _row(M, k, rows):
    return tl.sum(tl.where(rows[:, None] == k, M, 0.0), axis=0)


@triton.jit
def _norm_inf(x):
    return tl.max(tl.abs(x), axis=0)


@triton.jit
def _all_finite(x):
    return tl.sum(tl.where(tl.abs(x) < float("inf"), 0, 1), axis=0) == 0


@triton.jit
def _uniform(x, scratch_ptr, slot: tl.constexpr):
    """``x`` as one value for the whole program.

    A scalar computed from reductions can differ in its last bits between the threads that
    hold copies of it, and a comparison of it can then go different ways in different threads:
    threads would update their parts of the iterate differently or leave the loop at different
    passes (a hang). One thread stores it, all reload it, so every decision is made once.
    """
    tl.debug_barrier()
    tl.store(scratch_ptr + slot, x.to(scratch_ptr.dtype.element_ty))
    tl.debug_barrier()
    return tl.load(scratch_ptr + slot, volatile=True)


@triton.jit
def _factor_spd(M, reg, size, idx, shift_eps, tiny):
    """(L^-1, d, ok) with M + reg I = D L L' D, D = diag(d), like ``_kkt.factor_spd``.

    ``M`` is a padded tile; outside ``size`` the factor is the identity.
    """
    inside = idx < size
    eye = idx[:, None] == idx[None, :]
    diag = tl.sum(tl.where(eye, M, 0.0), axis=1)
    d = tl.where(inside, tl.sqrt(tl.maximum(diag + reg, tiny)), 1.0)
    inv_d = 1.0 / d
    scaled = M * inv_d[:, None] * inv_d[None, :]
    shift = tl.where(inside, reg * inv_d * inv_d + shift_eps, 1.0)
    scaled = scaled + tl.where(eye, shift[:, None], 0.0)
    ok = size >= 0
    L = tl.zeros_like(scaled)
    for k in range(0, size):  # right-looking Cholesky
        col = _column(scaled, k, idx)
        pivot = _pick(col, k, idx)
        ok = ok & (pivot > 0)
        col = tl.where(idx >= k, col / tl.sqrt(tl.where(pivot > 0, pivot, 1.0)), 0.0)
        L = tl.where(idx[None, :] == k, col[:, None], L)
        scaled = scaled - col[:, None] * col[None, :]
    L_inv = tl.where(eye, 1.0, 0.0).to(M.dtype)
    for k in range(0, size):  # L X = I, row by row
        col = _column(L, k, idx)
        row = _row(L_inv, k, idx) / _pick(col, k, idx)
        L_inv = tl.where(idx[:, None] == k, row[None, :], L_inv)
        L_inv = L_inv - tl.where(idx[:, None] > k, col[:, None], 0.0) * row[None, :]
    # A failed factor holds garbage: the identity keeps every later value finite.
    L_inv = tl.where(ok, L_inv, tl.where(eye, 1.0, 0.0).to(M.dtype))
    return L_inv, d, ok


@triton.jit
def _spd_solve(L_inv, d, r):
    return _mtv(L_inv, _mv(L_inv, r / d)) / d


@triton.jit
def _factor_kkt(
    Q, C, w, A, reg, n, neq, idx_n, idx_e, eps_n, eps_e, tiny,
    NP: tl.constexpr, EP: tl.constexpr, HAS_A: tl.constexpr,
):  # fmt: skip
    """Factor the reduced KKT matrix for row weights w, like ``_kkt.factor``."""
    H = Q
    for j in range(0, n):  # H[:, j] += C' (w * C[:, j])
        H = H + tl.where(idx_n[None, :] == j, _mtv(C, w * _column(C, j, idx_n))[:, None], 0.0)
    H_inv, H_d, ok = _factor_spd(H, reg, n, idx_n, eps_n, tiny)
    Hinv_At = tl.zeros([NP, EP], dtype=Q.dtype)
    schur = tl.zeros([EP, EP], dtype=Q.dtype)
    S_inv = schur
    S_d = tl.zeros([EP], dtype=Q.dtype) + 1.0
    if HAS_A:
        for j in range(0, neq):
            x = _spd_solve(H_inv, H_d, _row(A, j, idx_e))
            Hinv_At = tl.where(idx_e[None, :] == j, x[:, None], Hinv_At)
            schur = tl.where(idx_e[None, :] == j, _mv(A, x)[:, None], schur)
        S_inv, S_d, ok_s = _factor_spd(schur, reg, neq, idx_e, eps_e, tiny)
        ok = ok & ok_s
    return H, H_inv, H_d, Hinv_At, S_inv, S_d, ok


@triton.jit
def _solve_regularized(H_inv, H_d, A, Hinv_At, S_inv, S_d, r1, r2, HAS_A: tl.constexpr):
    x = _spd_solve(H_inv, H_d, r1)
    y = r2 * 0.0
    if HAS_A:
        y = _spd_solve(S_inv, S_d, _mv(A, x) - r2)
        x = x - _mv(Hinv_At, y)
    return x, y


@triton.jit
def _newton_step(
    C, A, H_inv, H_d, Hinv_At, S_inv, S_d, s, lam, mask, r_dual, r_eq, r_ineq, r_comp,
    HAS_A: tl.constexpr,
):  # fmt: skip
    """Like ``_pdipm._newton_step``: one reduced solve for minus the residuals."""
    w = lam / s * mask
    r1 = -r_dual - _mtv(C, w * r_ineq - r_comp / s * mask)
    dz, dnu = _solve_regularized(H_inv, H_d, A, Hinv_At, S_inv, S_d, r1, -r_eq, HAS_A)
    ds = (-r_ineq - _mv(C, dz)) * mask
    dlam = (-r_comp - lam * ds) / s * mask
    return dz, ds, dlam, dnu


@triton.jit
def _direction(
    Q, C, A, H_inv, H_d, Hinv_At, S_inv, S_d, s, lam, mask, r_dual, r_eq, r_ineq, r_comp,
    refine, HAS_A: tl.constexpr,
):  # fmt: skip
    """Like ``_pdipm._direction``: Newton step refined on the full system."""
    dz, ds, dlam, dnu = _newton_step(
        C, A, H_inv, H_d, Hinv_At, S_inv, S_d, s, lam, mask, r_dual, r_eq, r_ineq, r_comp, HAS_A
    )
    for _ in range(0, refine):
        e_dual = r_dual + _mv(Q, dz) + _mtv(C, dlam)
        e_eq = r_eq
        if HAS_A:
            e_dual = e_dual + _mtv(A, dnu)
            e_eq = r_eq + _mv(A, dz)
        e_ineq = (r_ineq + _mv(C, dz) + ds) * mask
        e_comp = (r_comp + lam * ds + s * dlam) * mask
        fz, fs, flam, fnu = _newton_step(
            C, A, H_inv, H_d, Hinv_At, S_inv, S_d, s, lam, mask, e_dual, e_eq, e_ineq, e_comp,
            HAS_A,
        )  # fmt: skip
        dz, ds, dlam, dnu = dz + fz, ds + fs, dlam + flam, dnu + fnu
    return dz, ds, dlam, dnu


@triton.jit
def _max_step(x, dx, mask):
    blocking = (dx < 0) & (mask > 0)
    ratio = tl.where(blocking, -x / tl.where(blocking, dx, -1.0), 1.0)
    return tl.minimum(tl.min(ratio, axis=0), 1.0)


@triton.jit
def _residuals(Q, p, C, h, mask, A, b, z, s, lam, nu, HAS_A: tl.constexpr):
    """Like ``_pdipm.residuals``: the residual vectors, the scalars that judge them, and the
    products with the data (Qz, Cz, C'lam, Az, A'nu) that the certificates reuse."""
    Qz = _mv(Q, z)
    Ct_lam = _mtv(C, lam)
    r_dual = Qz + p + Ct_lam
    Cz = _mv(C, z)
    r_ineq = (Cz + s - h) * mask
    violation = tl.max(tl.maximum((Cz - h) * mask, 0.0), axis=0)
    primal_scale = tl.maximum(_norm_inf(Cz * mask), _norm_inf(h * mask))
    zQz, pz, hlam = tl.sum(z * Qz, axis=0), tl.sum(p * z, axis=0), tl.sum(h * lam, axis=0)
    gap = zQz + pz + hlam
    gap_scale = tl.maximum(tl.maximum(tl.abs(zQz), tl.abs(pz)), tl.abs(hlam))
    dual_scale = tl.maximum(tl.maximum(_norm_inf(Qz), _norm_inf(p)), _norm_inf(Ct_lam))
    r_eq = b * 0.0
    Az = b * 0.0
    At_nu = z * 0.0
    if HAS_A:
        At_nu = _mtv(A, nu)
        r_dual = r_dual + At_nu
        Az = _mv(A, z)
        r_eq = Az - b
        violation = tl.maximum(violation, _norm_inf(r_eq))
        primal_scale = tl.maximum(primal_scale, tl.maximum(_norm_inf(Az), _norm_inf(b)))
        bnu = tl.sum(b * nu, axis=0)
        gap = gap + bnu
        gap_scale = tl.maximum(gap_scale, tl.abs(bnu))
        dual_scale = tl.maximum(dual_scale, _norm_inf(At_nu))
    count = tl.maximum(tl.sum(mask, axis=0), 1.0)
    mu = tl.sum(s * mask * lam, axis=0) / count
    return (
        r_dual, r_eq, r_ineq, mu, violation, _norm_inf(r_dual), tl.abs(gap),
        primal_scale, dual_scale, gap_scale, Qz, Cz, Ct_lam, Az, At_nu,
    )  # fmt: skip


@triton.jit
def _certificates(
    p, h, mask, b, z, lam, nu, Qz, Cz, Ct_lam, Az, At_nu, q_scale, in_m, eps, tiny,
    HAS_A: tl.constexpr,
):  # fmt: skip
    """Like ``_pdipm._certificates``: (primal infeasible, dual infeasible) flags, from the
    residuals' products (the products with d = z / |z| are those with z, scaled)."""
    t = _norm_inf(lam)
    Aty = Ct_lam
    hy = tl.sum(h * mask * lam, axis=0)
    if HAS_A:
        t = tl.maximum(t, _norm_inf(nu))
        Aty = Aty + At_nu
        hy = hy + tl.sum(b * nu, axis=0)
    t = tl.maximum(t, tiny)
    data_scale = tl.maximum(tl.maximum(_norm_inf(h * mask), _norm_inf(p)), 1.0)
    primal = (_norm_inf(Aty) <= eps * t) & (hy < -eps * t * data_scale) & (t > 1 / eps)
    z_norm = _norm_inf(z)
    inv_norm = 1.0 / tl.maximum(z_norm, tiny)
    dual = (_norm_inf(Qz) * inv_norm <= eps * q_scale) & (
        tl.sum(p * z, axis=0) * inv_norm < -eps * data_scale
    )
    Cd = tl.where(in_m, Cz * mask, -float("inf"))
    dual = dual & (
        (tl.max(Cd, axis=0) * inv_norm <= eps * data_scale) | (tl.sum(in_m.to(tl.int32)) == 0)
    )
    if HAS_A:
        dual = dual & (_norm_inf(Az) * inv_norm <= eps * data_scale)
    return primal, dual & (z_norm > 1 / eps)


# ----------------------------------------------------------------------------------------------
# The solve


# Sizes, strides and counts vary between calls: specializing on them (Triton's default for
# integers equal to 1 or divisible by 16) would recompile the kernel, seconds each time.
@triton.jit(
    do_not_specialize=[
        "Q_stride", "p_stride", "G_stride", "A_stride", "b_stride", "h_stride", "mask_stride",
        "n", "m", "m_all", "neq", "max_iter", "refine",
    ]
)  # fmt: skip
def _ipm_kernel(
    Q_ptr, p_ptr, G_ptr, A_ptr, b_ptr, h_ptr, mask_ptr, params_ptr,
    Q_stride, p_stride, G_stride, A_stride, b_stride, h_stride, mask_stride,
    z_ptr, s_ptr, lam_ptr, nu_ptr, status_ptr, iterations_ptr, residuals_ptr, reg_ptr,
    cert_dual_ptr, cert_primal_ptr, scratch_ptr,
    H_ptr, H_inv_ptr, H_d_ptr, Hinv_At_ptr, S_inv_ptr, S_d_ptr, factor_ok_ptr,
    n, m, m_all, neq, max_iter, refine,
    NP: tl.constexpr, MP: tl.constexpr, EP: tl.constexpr,
    HAS_LB: tl.constexpr, HAS_UB: tl.constexpr, HAS_A: tl.constexpr,
    SAFEGUARD: tl.constexpr, WANT_FACTOR: tl.constexpr,
    MAX_BUMPS: tl.constexpr, SAFEGUARD_AFTER: tl.constexpr, STEP: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0).to(tl.int64)
    scratch_ptr += pid * 16
    idx_n, idx_m, idx_e = tl.arange(0, NP), tl.arange(0, MP), tl.arange(0, EP)
    in_n, in_m, in_e = idx_n < n, idx_m < m_all, idx_e < neq
    eps_abs, eps_rel = tl.load(params_ptr), tl.load(params_ptr + 1)
    regularization, eps_inf = tl.load(params_ptr + 2), tl.load(params_ptr + 3)
    tiny, eps_n = tl.load(params_ptr + 4), tl.load(params_ptr + 5)
    eps_e, inv_sqrt_eps = tl.load(params_ptr + 6), tl.load(params_ptr + 7)

    # The problem, in registers. C = [G; -I; I] (the present blocks), as in _problem.
    square = in_n[:, None] & in_n[None, :]
    Q = tl.load(Q_ptr + pid * Q_stride + idx_n[:, None] * n + idx_n[None, :], square, 0.0)
    p = tl.load(p_ptr + pid * p_stride + idx_n, in_n, 0.0)
    g_rows = (idx_m[:, None] < m) & in_n[None, :]
    C = tl.load(G_ptr + pid * G_stride + idx_m[:, None] * n + idx_n[None, :], g_rows, 0.0)
    C = C.to(Q.dtype)
    ub_start = m
    if HAS_LB:
        C = tl.where((idx_m[:, None] - m == idx_n[None, :]) & in_n[None, :], -1.0, C)
        ub_start = m + n
    if HAS_UB:
        C = tl.where((idx_m[:, None] - ub_start == idx_n[None, :]) & in_n[None, :], 1.0, C)
    h = tl.load(h_ptr + pid * h_stride + idx_m, in_m, 0.0)
    mask = tl.load(mask_ptr + pid * mask_stride + idx_m, in_m, 0.0)
    A = tl.load(A_ptr + pid * A_stride + idx_e[:, None] * n + idx_n[None, :],
                in_e[:, None] & in_n[None, :], 0.0).to(Q.dtype)  # fmt: skip
    b = tl.load(b_ptr + pid * b_stride + idx_e, in_e, 0.0).to(Q.dtype)
    count = tl.maximum(tl.sum(mask, axis=0), 1.0)
    q_scale = tl.maximum(tl.max(tl.max(tl.abs(Q), axis=1), axis=0), 1.0)  # max |Q_ij|

    # Bounds with lb > ub: infeasible before any iteration (certificate: both bound rows).
    crossed = in_n & (idx_n < 0)
    if HAS_LB and HAS_UB:
        lb_row, ub_row = m + idx_n, m + n + idx_n
        both = (tl.load(mask_ptr + pid * mask_stride + lb_row, in_n, 0.0) > 0) & (
            tl.load(mask_ptr + pid * mask_stride + ub_row, in_n, 0.0) > 0
        )
        neg_lb = tl.load(h_ptr + pid * h_stride + lb_row, in_n, 0.0)
        crossed = both & (-neg_lb > tl.load(h_ptr + pid * h_stride + ub_row, in_n, 0.0))
    any_crossed = tl.sum(crossed.to(tl.int32), axis=0) > 0
    status = tl.where(any_crossed, _PRIMAL_INF, _RUNNING_)

    # Starting point (like _pdipm.initial_point): min 1/2 z'Qz + p'z + 1/2 |Cz - h|^2, Az = b.
    H, H_inv, H_d, Hinv_At, S_inv, S_d, ok = _factor_kkt(
        Q, C, mask, A, regularization, n, neq, idx_n, idx_e, eps_n, eps_e, tiny, NP, EP, HAS_A
    )
    ok = _uniform(ok, scratch_ptr, 8) != 0
    r1 = -p + _mtv(C, h * mask)
    z, nu = _solve_regularized(H_inv, H_d, A, Hinv_At, S_inv, S_d, r1, b, HAS_A)
    for _ in range(0, refine):
        e1 = r1 - _mv(H, z) - _mtv(A, nu)
        dz, dnu = _solve_regularized(H_inv, H_d, A, Hinv_At, S_inv, S_d, e1, b - _mv(A, z), HAS_A)
        z, nu = z + dz, nu + dnu
    s = (h - _mv(C, z)) * mask
    lam = -s
    s = s + tl.maximum(-1.5 * tl.min(tl.where(mask > 0, s, float("inf")), axis=0), 0.0)
    lam = lam + tl.maximum(-1.5 * tl.min(tl.where(mask > 0, lam, float("inf")), axis=0), 0.0)
    s, lam = s * mask, lam * mask
    sl = tl.sum(s * lam, axis=0)
    s_new = s + 0.5 * sl / tl.maximum(tl.sum(lam, axis=0), 1e-30)
    lam_new = lam + 0.5 * sl / tl.maximum(tl.sum(s, axis=0), 1e-30)
    degenerate = _uniform((sl <= 0) | ~_all_finite(s_new + lam_new), scratch_ptr, 0) != 0
    s = tl.where(degenerate, 1.0, tl.maximum(s_new, 1e-8))
    lam = tl.where(degenerate, 1.0, tl.maximum(lam_new, 1e-8))
    s = tl.where(mask > 0, s, 1.0)
    lam = lam * mask

    # Interior-point iterations (like _pdipm.Iteration), until a final status.
    best_z, best_s, best_lam, best_nu = z, s, lam, nu
    best_merit = tl.sum(p * 0.0, axis=0) + float("inf")
    merit = best_merit
    reg = regularization
    iterations = tl.zeros([], dtype=tl.int32)
    bumps = tl.zeros([], dtype=tl.int32)
    go = status == _RUNNING_
    while go:
        (
            r_dual,
            r_eq,
            r_ineq,
            mu,
            primal,
            dual,
            gap,
            primal_scale,
            dual_scale,
            gap_scale,
            Qz,
            Cz,
            Ct_lam,
            Az,
            At_nu,
        ) = _residuals(Q, p, C, h, mask, A, b, z, s, lam, nu, HAS_A)
        primal_tol = eps_abs + eps_rel * primal_scale
        dual_tol = eps_abs + eps_rel * dual_scale
        gap_tol = eps_abs + eps_rel * gap_scale
        p_inf, d_inf = _certificates(
            p, h, mask, b, z, lam, nu, Qz, Cz, Ct_lam, Az, At_nu, q_scale, in_m, eps_inf, tiny,
            HAS_A,
        )  # fmt: skip
        was_running = status == _RUNNING_
        converged = (primal <= primal_tol) & (dual <= dual_tol) & (gap <= gap_tol)
        status = tl.where(was_running & d_inf, _DUAL_INF, status)
        status = tl.where(was_running & p_inf, _PRIMAL_INF, status)
        status = tl.where(was_running & converged, _SOLVED, status)
        status = tl.where(bumps > MAX_BUMPS, _NUMERICAL, status)
        status = _uniform(status, scratch_ptr, 1).to(tl.int32)
        running = (status == _RUNNING_) & (iterations < max_iter)
        merit = tl.maximum(tl.maximum(primal / primal_tol, dual / dual_tol), gap / gap_tol)
        merit = tl.where(merit < float("inf"), merit, float("inf"))  # NaN -> inf
        merit = _uniform(merit, scratch_ptr, 2)
        better = running & (merit < best_merit)
        best_z, best_s = tl.where(better, z, best_z), tl.where(better, s, best_s)
        best_lam, best_nu = tl.where(better, lam, best_lam), tl.where(better, nu, best_nu)
        best_merit = tl.where(better, merit, best_merit)
        # Every pass takes the same path (the last computes a step and discards it): no branch
        # on data inside the loop.
        H, H_inv, H_d, Hinv_At, S_inv, S_d, ok = _factor_kkt(
            Q, C, lam / s * mask, A, reg, n, neq, idx_n, idx_e, eps_n, eps_e, tiny,
            NP, EP, HAS_A,
        )  # fmt: skip
        ok = _uniform(ok, scratch_ptr, 9) != 0
        # Predictor (affine scaling), unrefined: it only chooses the centering.
        pz, ps, plam, pnu = _direction(
            Q, C, A, H_inv, H_d, Hinv_At, S_inv, S_d, s, lam, mask, r_dual, r_eq, r_ineq,
            s * lam, 0, HAS_A,
        )  # fmt: skip
        alpha_aff = tl.minimum(_max_step(s, ps, mask), _max_step(lam, plam, mask))
        alpha_aff = _uniform(alpha_aff, scratch_ptr, 3)
        mu_aff = tl.sum((s + alpha_aff * ps) * mask * (lam + alpha_aff * plam), 0) / count
        sigma = tl.minimum(tl.maximum(mu_aff / tl.maximum(mu, tiny), 0.0), 1.0)
        sigma = sigma * sigma * sigma
        mu_target = _uniform(tl.maximum(sigma * mu, 0.1 * gap_tol / count), scratch_ptr, 4)
        r_comp = (s * lam + ps * plam - mu_target) * mask
        dz, ds, dlam, dnu = _direction(
            Q, C, A, H_inv, H_d, Hinv_At, S_inv, S_d, s, lam, mask, r_dual, r_eq, r_ineq,
            r_comp, refine, HAS_A,
        )  # fmt: skip
        alpha = tl.minimum(_max_step(s, ds, mask), _max_step(lam, dlam, mask))
        alpha = _uniform(tl.minimum(STEP * alpha, 1.0), scratch_ptr, 5)
        if SAFEGUARD:  # as in _pdipm: take the predictor when the corrector raises mu
            a_aff = STEP * alpha_aff
            mu_corr = tl.sum((s + alpha * ds) * mask * (lam + alpha * dlam), axis=0)
            mu_pred = tl.sum((s + a_aff * ps) * mask * (lam + a_aff * plam), axis=0)
            use_pred = (mu_corr > mu * count) & (mu_pred < mu_corr)
            use_pred = use_pred & (iterations >= SAFEGUARD_AFTER)
            use_pred = _uniform(use_pred, scratch_ptr, 6) != 0
            dz, ds = tl.where(use_pred, pz, dz), tl.where(use_pred, ps, ds)
            dlam, dnu = tl.where(use_pred, plam, dlam), tl.where(use_pred, pnu, dnu)
            alpha = tl.where(use_pred, a_aff, alpha)
        step_ok = running & ok
        a = tl.where(step_ok, alpha, 0.0)
        z_new, s_new, lam_new, nu_new = z + a * dz, s + a * ds, lam + a * dlam, nu + a * dnu
        finite = _all_finite(z_new) & _all_finite(s_new) & _all_finite(lam_new)
        finite = _uniform(finite & _all_finite(nu_new), scratch_ptr, 7) != 0
        status = tl.where(running & ~finite, _NUMERICAL, status)
        keep = step_ok & finite
        z = tl.where(keep, z_new, z)
        s = tl.where(keep & (mask > 0), tl.maximum(s_new, tiny), s)
        lam = tl.where(keep, tl.maximum(lam_new, 0.0), lam)
        nu = tl.where(keep, nu_new, nu)
        iterations += running.to(tl.int32)
        bumps += (running & ~ok).to(tl.int32)
        reg = tl.where(running & ~ok, reg * 100.0, reg)
        go = running

    # Finish (like _pdipm.finish): statuses, the best iterate of unsolved problems, certificates.
    status = tl.where(status == _RUNNING_, _MAX_ITER, status)
    use_best = ((status == _MAX_ITER) | (status == _NUMERICAL)) & (best_merit < merit)
    z, s = tl.where(use_best, best_z, z), tl.where(use_best, best_s, s)
    lam, nu = tl.where(use_best, best_lam, lam), tl.where(use_best, best_nu, nu)
    final = _residuals(Q, p, C, h, mask, A, b, z, s, lam, nu, HAS_A)
    primal, dual, gap = final[4], final[5], final[6]
    cert_scale = tl.maximum(tl.maximum(_norm_inf(lam), _norm_inf(nu)), tiny)
    cert_lam = tl.where(status == _PRIMAL_INF, lam / cert_scale, 0.0)
    cert_nu = tl.where(status == _PRIMAL_INF, nu / cert_scale, 0.0)
    if HAS_LB and HAS_UB:
        ray = tl.where(crossed, 1.0, 0.0).to(Q.dtype)
        bound_rows = tl.where(idx_m >= m, 1.0, 0.0).to(Q.dtype)
        unit = tl.sum(tl.where((idx_m[:, None] - m) % n == idx_n[None, :], ray[None, :], 0.0),
                      axis=1) * bound_rows  # fmt: skip
        cert_lam = tl.where(any_crossed, unit, cert_lam)
        cert_nu = tl.where(any_crossed, 0.0, cert_nu)
    cert_primal = tl.where(status == _DUAL_INF, z / tl.maximum(_norm_inf(z), tiny), 0.0)

    tl.store(z_ptr + pid * n + idx_n, z, in_n)
    tl.store(s_ptr + pid * m_all + idx_m, s, in_m)
    tl.store(lam_ptr + pid * m_all + idx_m, lam, in_m)
    tl.store(nu_ptr + pid * neq + idx_e, nu, in_e)
    tl.store(status_ptr + pid, status)
    tl.store(iterations_ptr + pid, iterations)
    tl.store(residuals_ptr + pid * 3, primal)
    tl.store(residuals_ptr + pid * 3 + 1, dual)
    tl.store(residuals_ptr + pid * 3 + 2, gap)
    tl.store(reg_ptr + pid, reg)
    tl.store(cert_dual_ptr + pid * (m_all + neq) + idx_m, cert_lam, in_m)
    tl.store(cert_dual_ptr + pid * (m_all + neq) + m_all + idx_e, cert_nu, in_e)
    tl.store(cert_primal_ptr + pid * n + idx_n, cert_primal, in_n)

    if WANT_FACTOR:  # the backward pass's factor (like _implicit.factor_at_solution)
        w = tl.minimum(lam / s, q_scale * inv_sqrt_eps) * mask
        H, H_inv, H_d, Hinv_At, S_inv, S_d, ok = _factor_kkt(
            Q, C, w, A, reg, n, neq, idx_n, idx_e, eps_n, eps_e, tiny, NP, EP, HAS_A
        )
        ok = _uniform(ok, scratch_ptr, 10) != 0
        square_at = pid * n * n + idx_n[:, None] * n + idx_n[None, :]
        tl.store(H_ptr + square_at, H, square)
        tl.store(H_inv_ptr + square_at, H_inv, square)
        tl.store(H_d_ptr + pid * n + idx_n, H_d, in_n)
        tl.store(Hinv_At_ptr + pid * n * neq + idx_n[:, None] * neq + idx_e[None, :], Hinv_At,
                 in_n[:, None] & in_e[None, :])  # fmt: skip
        tl.store(S_inv_ptr + pid * neq * neq + idx_e[:, None] * neq + idx_e[None, :], S_inv,
                 in_e[:, None] & in_e[None, :])  # fmt: skip
        tl.store(S_d_ptr + pid * neq + idx_e, S_d, in_e)
        tl.store(factor_ok_ptr + pid, ok.to(tl.int8))
