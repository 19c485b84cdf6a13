"""The solver as custom operators: what torch.compile and vmap see.

The interior point is a loop whose length depends on the data (the host reads convergence
flags), which neither torch.compile nor vmap can trace. As the ``torch.library`` op
``optnet::solve_qp`` it is opaque to both: the fake implementation gives torch.compile the
output shapes (symbolic in the batch size, so a new batch size does not recompile), and the
vmap rule folds the vmapped dimension into the solver's own batch. ``optnet::solve_active`` is
the derivatives' solve with the active-set factor, an op too so that torch.compile does not
unroll its refinement into the backward graph (that doubled the first compiled step of a
small OptNetLayer model: 45-51 s instead of 22-26 s, cold cache). Their autograd is in
``_autograd``.

Ops take and return tensors and primitives only, so:

- the options travel as their fields (``OPTION_FIELDS``, in that order);
- the outputs are the fields of ``OUTPUT_FIELDS``, an absent block as an empty ``(B, 0)``
  tensor (``solution_fields`` turns those back into None), then the polish's active-set factor
  as tensors (``FACTOR_FIELDS``; ``active_factor`` rebuilds it): backward and jvp reuse it.

Every output has the batch dimension, 1 when no input is batched, and is contiguous and fresh
(no output aliases an input or another output), as the fake implementations say. The op also
runs the value checks of the inputs (NaN, symmetry): they read data, possible only here.
"""

import torch
from torch import Tensor

from . import _backends, _kkt
from ._options import SolverOptions
from ._problem import Problem
from ._solution import OUTPUT_FIELDS
from ._validate import validate_inputs

INPUT_NAMES = ("Q", "p", "G", "h", "A", "b", "lb", "ub")
# Dimensions of one problem's array, per input: a tensor with one more is batched.
CORE_DIMS = (2, 1, 2, 1, 2, 1, 1, 1)
OPTION_FIELDS = (
    "eps_abs", "eps_rel", "max_iter", "regularization", "refine_steps", "eps_infeasible",
    "check_every", "equilibrate", "ruiz_iters", "compute_dtype", "backend",
)  # fmt: skip
# The active-set factor (``_kkt.ActiveSetFactor``) as tensors. The triangular factors are
# ``L`` on CPU and ``L^-1`` on other devices, and ``X`` is ``W`` or ``(H + rho I)^-1 A'``
# (see ``_kkt.factor``): the device decides, as it does in ``_kkt.factor_spd``.
FACTOR_FIELDS = ("H_tri", "H_d", "X", "S_tri", "S_d", "w", "active", "ok")
N_OUTPUTS = len(OUTPUT_FIELDS) + len(FACTOR_FIELDS)

_Outputs = tuple[(Tensor,) * N_OUTPUTS]


def option_args(options: SolverOptions) -> tuple:
    return tuple(getattr(options, name) for name in OPTION_FIELDS)


def batch_size(inputs) -> int:
    """The batch of the eight inputs: the leading size of a batched one, 1 if none is."""
    for x, core in zip(inputs, CORE_DIMS):
        if x is not None and x.dim() == core + 1:
            return x.shape[0]
    return 1


def _op(name: str):
    """Define ``optnet::name`` with the decorated function as its kernel, on every device.

    ``torch.library.custom_op`` would do the same, but its kernels import torch._dynamo on the
    first call (1-2 s on CPU), which every program that solves a QP would pay.
    """

    def define(kernel):
        qualname = f"optnet::{name}"
        torch.library.define(qualname, torch.library.infer_schema(kernel, mutates_args=()))
        torch.library.impl(qualname, "CompositeExplicitAutograd", kernel)
        return getattr(torch.ops.optnet, name).default

    return define


@_op("solve_qp")
def solve_qp_op(
    Q: Tensor,
    p: Tensor,
    G: Tensor | None,
    h: Tensor | None,
    A: Tensor | None,
    b: Tensor | None,
    lb: Tensor | None,
    ub: Tensor | None,
    eps_abs: float | None,
    eps_rel: float | None,
    max_iter: int,
    regularization: float,
    refine_steps: int,
    eps_infeasible: float,
    check_every: int | None,
    equilibrate: bool,
    ruiz_iters: int,
    compute_dtype: torch.dtype | None,
    backend: str,
    warm_active: Tensor | None = None,
) -> _Outputs:
    """The outputs of ``OUTPUT_FIELDS`` then those of ``FACTOR_FIELDS`` (module docstring).

    ``warm_active``: a guessed active set, bool ``(B, m_all)`` or ``(m_all,)`` shared, in the
    stacked row order ``[G; lb; ub]`` (``_backends.solve``).
    """
    inputs = (Q, p, G, h, A, b, lb, ub)
    validate_inputs(**dict(zip(INPUT_NAMES, inputs)))
    options = SolverOptions(
        eps_abs=eps_abs, eps_rel=eps_rel, max_iter=max_iter, regularization=regularization,
        refine_steps=refine_steps, eps_infeasible=eps_infeasible, check_every=check_every,
        equilibrate=equilibrate, ruiz_iters=ruiz_iters, compute_dtype=compute_dtype,
        backend=backend,
    )  # fmt: skip
    dtype = options.compute_dtype or p.dtype
    # Under torch.autocast the solver's products would run in float16/bfloat16 and fail.
    with torch.autocast(p.device.type, enabled=False):
        cast = (None if x is None else x.to(dtype) for x in inputs)
        problem = Problem.from_inputs(*cast, batch_size(inputs))
        warm = None
        if warm_active is not None:
            if warm_active.dtype != torch.bool or warm_active.shape[-1] != problem.m_all:
                raise ValueError(
                    f"warm_active must be a bool tensor of {problem.m_all} rows per problem, "
                    f"got {warm_active.dtype} of shape {tuple(warm_active.shape)}"
                )
            warm = warm_active.expand(problem.batch, problem.m_all)
        result = _backends.solve(problem, options, warm_active=warm)
    return (*_outputs(problem, result, p.dtype, G, A, lb, ub), *_factor_tensors(result.factor))


def _outputs(problem: Problem, r, dtype: torch.dtype, G, A, lb, ub) -> list[Tensor]:
    """The tensors of ``OUTPUT_FIELDS`` in ``dtype``, fresh and contiguous."""

    def split(rows):  # copies: slices of one tensor would alias each other
        return [None if x is None else x.clone() for x in problem.split_rows(rows)]

    lam, lam_lb, lam_ub = split(r.lam)
    cert_lam, cert_lam_lb, cert_lam_ub = split(r.certificate_dual[:, : problem.m_all])
    cert_nu = r.certificate_dual[:, problem.m_all :].clone()
    res = r.residuals
    out = {
        "z": r.z, "lam": lam, "nu": r.nu, "s": split(r.s)[0],
        "lam_lb": lam_lb, "lam_ub": lam_ub,
        "status": r.status, "iterations": r.iterations,
        "primal_residual": res.primal, "dual_residual": res.dual, "duality_gap": res.gap,
        "certificate_z": r.certificate_primal, "certificate_lam": cert_lam,
        "certificate_nu": cert_nu, "certificate_lam_lb": cert_lam_lb,
        "certificate_lam_ub": cert_lam_ub,
    }  # fmt: skip
    assert tuple(out) == OUTPUT_FIELDS
    outputs = []
    for x in out.values():
        if x is None:  # an absent block
            x = r.z.new_zeros(r.z.shape[0], 0)
        outputs.append((x.to(dtype) if x.is_floating_point() else x).contiguous())
    return outputs


def _factor_tensors(f: _kkt.ActiveSetFactor) -> list[Tensor]:
    reduced = f.reduced
    H, S = reduced.H_factor, reduced.S_factor
    batch, n = H.d.shape
    X = reduced.W if reduced.W is not None else reduced.Hinv_At
    if X is None:  # no equality constraints
        X, S_tri, S_d = (H.d.new_zeros(batch, *shape) for shape in ((n, 0), (0, 0), (0,)))
    else:
        S_tri, S_d = (S.L if S.L_inv is None else S.L_inv), S.d
    H_tri = H.L if H.L_inv is None else H.L_inv
    # Contiguous, as the fake implementation says (LAPACK writes L column-major).
    return [x.contiguous() for x in (H_tri, H.d, X, S_tri, S_d, f.w, f.active, f.ok)]


def active_factor(problem: Problem, tensors) -> _kkt.ActiveSetFactor:
    """The ``_kkt.ActiveSetFactor`` of ``problem`` (in the factor's dtype) from its tensors."""
    H_tri, H_d, X, S_tri, S_d, w, active, ok = tensors
    cpu = problem.p.device.type == "cpu"
    H = _kkt.SPDFactor(None, H_d, ok, H_tri) if cpu else _kkt.SPDFactor(H_tri, H_d, ok)
    S = None
    if problem.has_eq:
        S = _kkt.SPDFactor(None, S_d, ok, S_tri) if cpu else _kkt.SPDFactor(S_tri, S_d, ok)
    W, Hinv_At = (X, None) if cpu else (None, X)
    A = problem.A if problem.has_eq else None
    # H (the unregularized matrix) serves the refinement of ``_kkt.solve``, never used here.
    reduced = _kkt.KKTFactor(None, H, A, Hinv_At, S, 0, W)
    steps = _kkt.ACTIVE_SET_REFINE_STEPS[problem.p.dtype]
    return _kkt.ActiveSetFactor(reduced, w, active, steps, problem, _kkt.residual_problem(problem))


def solution_fields(outputs, G, A, lb, ub) -> list[Tensor | None]:
    """The op's ``OUTPUT_FIELDS`` outputs with the blocks absent from the problem as None."""
    has_eq = A is not None and A.shape[-2] > 0
    absent = {
        "lam": G is None, "s": G is None, "certificate_lam": G is None,
        "nu": not has_eq, "certificate_nu": not has_eq,
        "lam_lb": lb is None, "certificate_lam_lb": lb is None,
        "lam_ub": ub is None, "certificate_lam_ub": ub is None,
    }  # fmt: skip
    return [None if absent.get(name) else x for name, x in zip(OUTPUT_FIELDS, outputs)]


@torch.library.register_fake(solve_qp_op)
def _(Q, p, G, h, A, b, lb, ub, *options_and_warm_active):
    options = options_and_warm_active[: len(OPTION_FIELDS)]
    inputs = (Q, p, G, h, A, b, lb, ub)
    batch, n = batch_size(inputs), p.shape[-1]
    m = 0 if G is None else G.shape[-2]
    neq = 0 if A is None else A.shape[-2]
    n_lb, n_ub = (0 if x is None else n for x in (lb, ub))
    compute = dict(zip(OPTION_FIELDS, options))["compute_dtype"] or p.dtype

    def new(*shape, dtype=p.dtype):
        return p.new_empty(batch, *shape, dtype=dtype)

    vectors = {"z": n, "lam": m, "nu": neq, "s": m, "lam_lb": n_lb, "lam_ub": n_ub,
               "certificate_z": n, "certificate_lam": m, "certificate_nu": neq,
               "certificate_lam_lb": n_lb, "certificate_lam_ub": n_ub}  # fmt: skip
    integer = ("status", "iterations")
    outputs = [
        new(dtype=torch.int64) if name in integer
        else new(vectors[name]) if name in vectors
        else new()
        for name in OUTPUT_FIELDS
    ]  # fmt: skip
    m_all = m + n_lb + n_ub
    factor = [new(n, n, dtype=compute), new(n, dtype=compute), new(n, neq, dtype=compute),
              new(neq, neq, dtype=compute), new(neq, dtype=compute), new(m_all, dtype=compute),
              new(m_all, dtype=compute), new(dtype=torch.bool)]  # fmt: skip
    return (*outputs, *factor)


@torch.library.register_vmap(solve_qp_op)
def _(info, in_dims, *args):
    """Fold the vmapped dimension V into the batch: V * B problems, one solve."""
    n_options = len(OPTION_FIELDS)
    options, warm = args[8 : 8 + n_options], args[8 + n_options :]
    warm_dims = in_dims[8 + n_options :]
    # The warm start's rows (m_all,) per problem, like an input with one core dimension.
    folded, lead = _fold(info, (*in_dims[:8], *warm_dims), (*args[:8], *warm), (*CORE_DIMS, 1))
    outputs = solve_qp_op(*folded[:8], *options, *folded[8:])
    return _unfold(info, outputs, lead)


@_op("solve_active")
def solve_active_op(
    Q: Tensor,
    p: Tensor,
    G: Tensor | None,
    h: Tensor | None,
    A: Tensor | None,
    b: Tensor | None,
    lb: Tensor | None,
    ub: Tensor | None,
    factor: list[Tensor],
    r1: Tensor,
    r_lam: Tensor,
    r2: Tensor | None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """``_kkt.solve_active`` with the factor of ``solve_qp_op``: (x, lam, y), y (B, 0) if absent.

    The data (in the factor's dtype) give the exact system that the refinement solves.
    ``backend`` is the forward's option: where its iterations were replayed from CUDA graphs,
    so is this solve (``_backends.replay_derivative``).
    """
    problem = Problem.from_inputs(Q, p, G, h, A, b, lb, ub, r1.shape[0])
    tensors = (Q, p, G, h, A, b, lb, ub, *factor, r1, r_lam, r2)
    with torch.autocast(p.device.type, enabled=False):
        x, lam, y = _backends.replay_derivative(problem, backend, _solve_active, tensors)
    return x.contiguous(), lam.contiguous(), y.contiguous()


def _solve_active(
    Q, p, G, h, A, b, lb, ub, *rest, problem: Problem | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """The kernel of ``solve_active_op``, a function of tensors (it may be replayed from static
    copies of them); ``problem``: theirs, when the caller has made it already."""
    factor, (r1, r_lam, r2) = rest[: len(FACTOR_FIELDS)], rest[len(FACTOR_FIELDS) :]
    if problem is None:
        problem = Problem.from_inputs(Q, p, G, h, A, b, lb, ub, r1.shape[0])
    x, lam, y = _kkt.solve_active(active_factor(problem, factor), r1, r_lam, r2)
    return x, lam, x.new_zeros(x.shape[0], 0) if y is None else y


@torch.library.register_fake(solve_active_op)
def _(Q, p, G, h, A, b, lb, ub, factor, r1, r_lam, r2, backend="auto"):
    neq = 0 if r2 is None else r2.shape[-1]
    return torch.empty_like(r1), torch.empty_like(r_lam), r1.new_empty(r1.shape[0], neq)


@torch.library.register_vmap(solve_active_op)
def _(info, in_dims, *args):
    data, factor, rhs, backend = args[:8], args[8], args[9:12], args[12:]
    # The factor and the right-hand sides always have the batch dimension.
    tensors = (*data, *factor, *rhs)
    cores = (*CORE_DIMS, *(x.dim() - 1 - (d is not None) for x, d in zip(factor, in_dims[8])),
             1, 1, 1)  # fmt: skip
    folded, lead = _fold(info, (*in_dims[:8], *in_dims[8], *in_dims[9:12]), tensors, cores)
    data, factor, rhs = folded[:8], folded[8:-3], folded[-3:]
    return _unfold(info, solve_active_op(*data, factor, *rhs, *backend), lead)


def _fold(info, in_dims, tensors, cores):
    """The tensors with vmap's dimension V folded into the batch: (V * B, ...) or shared.

    ``cores``: the dimensions of one problem's array, per tensor (one more: batched). Returns
    the folded tensors and one vmapped sample's batch size (None: not batched).
    """
    V = info.batch_size
    batched = [x is not None and x.dim() - (d is not None) == core + 1
               for x, d, core in zip(tensors, in_dims, cores)]  # fmt: skip
    sizes = [x.shape[0 if d is None else 1]
             for x, d, is_b in zip(tensors, in_dims, batched) if is_b]  # fmt: skip
    B = sizes[0] if sizes else None

    def fold(x, d, is_batched):
        if x is None or (d is None and not is_batched):
            return x  # shared by every problem
        x = x.expand(V, *x.shape) if d is None else x.movedim(d, 0)
        if B is None:
            return x  # the vmapped dimension is the batch
        if not is_batched:
            x = x.unsqueeze(1).expand(V, B, *x.shape[1:])
        return x.reshape(V * B, *x.shape[2:])

    return [fold(x, d, is_b) for x, d, is_b in zip(tensors, in_dims, batched)], B


def _unfold(info, outputs, lead):
    """Outputs (V * B, ...) as (V, B, ...) with B = 1 when not batched; out_dims."""
    lead = 1 if lead is None else lead
    outputs = tuple(y.reshape(info.batch_size, lead, *y.shape[1:]) for y in outputs)
    return outputs, (0,) * len(outputs)
