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

Ops take and return tensors and primitives only. This module owns that layout, and the rest
of the library goes through ``pack_args`` / ``unpack_args`` / ``unpack_outputs``:

- the arguments are the eight inputs (``INPUT_NAMES``), the options as their fields
  (``OPTION_FIELDS``, derived from ``SolverOptions``), then the warm start's guessed rows;
- the outputs are the fields of ``OUTPUT_FIELDS``, an absent block as an empty ``(B, 0)``
  tensor (``solution_fields`` turns those back into None); then ``backend``, the code of the
  backend that ran (int64 on the CPU, read without a sync); then the polish's active-set
  factor as tensors (``_kkt.FACTOR_FIELDS``): backward and jvp reuse it, rebuilt in the form
  of the backend that made it.

Every output has the batch dimension, 1 when no input is batched, and is contiguous and fresh
(no output aliases an input or another output), as the fake implementations say. The op also
runs the value checks of the inputs (NaN, symmetry): they read data, possible only here.
"""

import dataclasses

import torch
from torch import Tensor

from . import _backends, _kkt
from ._options import BACKEND_NAMES, SolverOptions
from ._problem import CORE_DIMS, INPUT_NAMES, Problem, batch_size
from ._solution import OUTPUT_FIELDS
from ._validate import validate_inputs

# Options the op takes: every field of SolverOptions but those applied around it (``infeasible``:
# ``functional.solve_qp`` runs the closest-feasible phases as further solves).
OPTION_FIELDS = tuple(
    f.name for f in dataclasses.fields(SolverOptions) if f.name not in ("infeasible",)
)
OUTPUTS = (*OUTPUT_FIELDS, "backend", *_kkt.FACTOR_FIELDS)
_N_INPUTS, _N_OPTIONS = len(INPUT_NAMES), len(OPTION_FIELDS)
# The schema type of each option's annotation; a new option of a new type must be added here.
_SCHEMA_TYPES = {
    "float | None": "float?",
    "float": "float",
    "int": "int",
    "int | None": "int?",
    "bool": "bool",
    "str": "str",
    "torch.dtype | None": "ScalarType?",
}


def pack_args(inputs, options: SolverOptions, warm_active: Tensor | None) -> tuple:
    """The op's arguments: the eight inputs, the options' fields, the warm start's rows."""
    return (*inputs, *(getattr(options, name) for name in OPTION_FIELDS), warm_active)


def unpack_args(args) -> tuple[tuple, SolverOptions, Tensor | None]:
    """``pack_args``' inverse: (the eight inputs, the options, the warm start or None)."""
    inputs, options, warm = _split_args(args)
    return inputs, SolverOptions(**dict(zip(OPTION_FIELDS, options))), warm


def _split_args(args) -> tuple[tuple, tuple, object]:
    """(the eight inputs, the options' fields, the warm start) of the op's arguments (or of
    anything laid out like them, e.g. vmap's ``in_dims``)."""
    end = _N_INPUTS + _N_OPTIONS
    warm = args[end] if len(args) > end else None
    return tuple(args[:_N_INPUTS]), tuple(args[_N_INPUTS:end]), warm


def unpack_outputs(outputs) -> tuple[dict[str, Tensor], Tensor, _kkt.FactorTensors]:
    """(the ``OUTPUT_FIELDS`` by name, the backend code, the factor's tensors)."""
    fields = dict(zip(OUTPUT_FIELDS, outputs))
    rest = outputs[len(OUTPUT_FIELDS) :]
    return fields, rest[0], _kkt.FactorTensors(*rest[1:])


def backend_name(code: Tensor) -> str:
    """The name of the backend recorded in the op's ``backend`` output (or argument)."""
    return BACKEND_NAMES[int(code[0])] if code.numel() else BACKEND_NAMES[0]


def _define(name: str, schema: str, kernel):
    """Define ``optnet::name`` with ``kernel`` as its implementation, on every device.

    ``torch.library.custom_op`` would do the same, but its kernels import torch._dynamo on the
    first call (1-2 s on CPU), which every program that solves a QP would pay.
    """
    qualname = f"optnet::{name}"
    torch.library.define(qualname, schema)
    torch.library.impl(qualname, "CompositeExplicitAutograd", kernel)
    return getattr(torch.ops.optnet, name).default


def _solve_qp_schema() -> str:
    types = {f.name: f.type for f in dataclasses.fields(SolverOptions)}
    inputs = [f"Tensor{'' if name in ('Q', 'p') else '?'} {name}" for name in INPUT_NAMES]
    options = [f"{_SCHEMA_TYPES[types[name]]} {name}" for name in OPTION_FIELDS]
    arguments = ", ".join([*inputs, *options, "Tensor? warm_active=None"])
    return f"({arguments}) -> ({', '.join(['Tensor'] * len(OUTPUTS))})"


def _solve_qp_kernel(*args) -> tuple[Tensor, ...]:
    """The outputs of ``OUTPUTS`` (module docstring).

    The warm start: a guessed active set, bool ``(B, m_all)`` or ``(m_all,)`` shared, in the
    stacked row order ``[G; lb; ub]`` (``_backends.solve``).
    """
    inputs, options, warm_active = unpack_args(args)
    validate_inputs(**dict(zip(INPUT_NAMES, inputs)))
    p = inputs[1]
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
        result, backend = _backends.solve(problem, options, warm_active=warm)
    code = torch.full((problem.batch,), BACKEND_NAMES.index(backend), dtype=torch.int64)
    return (*_outputs(problem, result, p.dtype), code, *result.factor.tensors())


solve_qp_op = _define("solve_qp", _solve_qp_schema(), _solve_qp_kernel)


def _outputs(problem: Problem, r, dtype: torch.dtype) -> list[Tensor]:
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


def active_factor(problem: Problem, tensors, backend: Tensor) -> _kkt.ActiveSetFactor:
    """The forward's ``_kkt.ActiveSetFactor`` of ``problem`` (in the factor's dtype) from the
    op's factor tensors, in the form of the backend that made it (code ``backend``)."""
    form = _backends.factor_form(backend_name(backend), problem.p.device)
    return _kkt.ActiveSetFactor.from_tensors(problem, tensors, form)


def solution_fields(fields: dict[str, Tensor], G, A, lb, ub) -> list[Tensor | None]:
    """The op's ``OUTPUT_FIELDS`` outputs (by name) in order, the blocks absent from the
    problem as None."""
    has_eq = A is not None and A.shape[-2] > 0
    absent = {
        "lam": G is None, "s": G is None, "certificate_lam": G is None,
        "nu": not has_eq, "certificate_nu": not has_eq,
        "lam_lb": lb is None, "certificate_lam_lb": lb is None,
        "lam_ub": ub is None, "certificate_lam_ub": ub is None,
    }  # fmt: skip
    return [None if absent.get(name) else fields[name] for name in OUTPUT_FIELDS]


@torch.library.register_fake(solve_qp_op)
def _(*args):
    inputs, options, _ = unpack_args(args)
    Q, p, G, h, A, b, lb, ub = inputs
    batch, n = batch_size(inputs), p.shape[-1]
    m = 0 if G is None else G.shape[-2]
    neq = 0 if A is None else A.shape[-2]
    n_lb, n_ub = (0 if x is None else n for x in (lb, ub))

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
    code = torch.empty(batch, dtype=torch.int64)
    compute = options.compute_dtype or p.dtype
    factor = _kkt.ActiveSetFactor.fake_tensors(
        p, batch, n, neq, m + n_lb + n_ub, _kkt.factor_dtype(compute)
    )
    return (*outputs, code, *factor)


@torch.library.register_vmap(solve_qp_op)
def _(info, in_dims, *args):
    """Fold the vmapped dimension V into the batch: V * B problems, one solve."""
    inputs, options, warm = unpack_args(args)
    input_dims, _, warm_dim = _split_args(in_dims)
    # The warm start's rows (m_all,) per problem, like an input with one core dimension.
    folded, lead = _fold(info, (*input_dims, warm_dim), (*inputs, warm), (*CORE_DIMS, 1))
    outputs = solve_qp_op(*pack_args(folded[:-1], options, folded[-1]))
    return _unfold(info, outputs, lead)


def _solve_active_kernel(
    Q: Tensor,
    p: Tensor,
    G: Tensor | None,
    h: Tensor | None,
    A: Tensor | None,
    b: Tensor | None,
    lb: Tensor | None,
    ub: Tensor | None,
    factor: list[Tensor],
    backend: Tensor,
    r1: Tensor,
    r_lam: Tensor,
    r2: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``_kkt.solve_active`` with the factor of ``solve_qp_op``: (x, lam, y), y (B, 0) if absent.

    The data (in the factor's dtype) give the exact system that the refinement solves.
    ``backend``: the code of the backend that made the factor (``solve_qp_op``'s output),
    which runs this solve its way (``_backends.derivative``: replayed from a CUDA graph where
    the forward's iterations were).
    """
    problem = Problem.from_inputs(Q, p, G, h, A, b, lb, ub, r1.shape[0])
    tensors = (Q, p, G, h, A, b, lb, ub, *factor, backend, r1, r_lam, r2)
    with torch.autocast(p.device.type, enabled=False):
        x, lam, y = _backends.derivative(backend_name(backend), _solve_active, tensors, problem)
    return x.contiguous(), lam.contiguous(), y.contiguous()


solve_active_op = _define(
    "solve_active",
    torch.library.infer_schema(_solve_active_kernel, mutates_args=()),
    _solve_active_kernel,
)
_N_FACTOR = len(_kkt.FACTOR_FIELDS)


def _solve_active(*tensors, problem: Problem | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The solve of ``solve_active_op`` as a function of its tensors (it may be replayed from
    static copies of them); ``problem``: theirs, when the caller has made it already."""
    data, factor = tensors[:_N_INPUTS], tensors[_N_INPUTS : _N_INPUTS + _N_FACTOR]
    backend, r1, r_lam, r2 = tensors[_N_INPUTS + _N_FACTOR :]
    if problem is None:
        problem = Problem.from_inputs(*data, r1.shape[0])
    x, lam, y = _kkt.solve_active(active_factor(problem, factor, backend), r1, r_lam, r2)
    return x, lam, x.new_zeros(x.shape[0], 0) if y is None else y


@torch.library.register_fake(solve_active_op)
def _(Q, p, G, h, A, b, lb, ub, factor, backend, r1, r_lam, r2):
    neq = 0 if r2 is None else r2.shape[-1]
    return torch.empty_like(r1), torch.empty_like(r_lam), r1.new_empty(r1.shape[0], neq)


@torch.library.register_vmap(solve_active_op)
def _(info, in_dims, *args):
    data, factor, rest = args[:_N_INPUTS], args[_N_INPUTS], args[_N_INPUTS + 1 :]
    factor_dims, rest_dims = in_dims[_N_INPUTS], in_dims[_N_INPUTS + 1 :]
    # The factor, the backend code and the right-hand sides always have the batch dimension.
    factor_cores = [x.dim() - 1 - (d is not None) for x, d in zip(factor, factor_dims)]
    cores = (*CORE_DIMS, *factor_cores, 0, 1, 1, 1)
    dims = (*in_dims[:_N_INPUTS], *factor_dims, *rest_dims)
    folded, lead = _fold(info, dims, (*data, *factor, *rest), cores)
    data, factor, rest = folded[:_N_INPUTS], folded[_N_INPUTS:-4], folded[-4:]
    return _unfold(info, solve_active_op(*data, factor, *rest), lead)


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
