"""The batched problem as the solver sees it, and the layout of its inputs.

The eight inputs are described once, in ``INPUTS``: validation, the custom op, the problem and
the gradients' batch reduction all read their names and per-problem shapes from it. An input
with one more dimension than its core dimensions is batched (leading dimension B); the others
are shared by the batch, and their gradient is the SUM over the batch, like autograd's own
broadcasting.

All inequalities are stacked into one operator ``C`` with right-hand side ``h_all``::

    C = [G; -I; I],   h_all = [h; -lb; ub]     (blocks present only when given)

so the interior-point loop and the backward pass treat general rows and bounds alike, while
the bound rows stay diagonal (never materialized as dense rows). ``Problem`` owns that row
layout (``row_blocks``, ``stack_rows``, ``split_rows``). Rows whose right-hand side is
infinite are masked out: their slack is fixed at 1 and their dual at 0.

Unbatched inputs keep a leading dimension of 1 and broadcast in every product.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

# Each input's per-problem shape, as the sizes it carries: n variables, m inequality rows
# (G, h), neq equality rows (A, b).
INPUTS = {
    "Q": ("n", "n"),
    "p": ("n",),
    "G": ("m", "n"),
    "h": ("m",),
    "A": ("neq", "n"),
    "b": ("neq",),
    "lb": ("n",),
    "ub": ("n",),
}
INPUT_NAMES = tuple(INPUTS)
# The dimensions of one problem's array, per input, in ``INPUT_NAMES`` order.
CORE_DIMS = tuple(len(sizes) for sizes in INPUTS.values())
# The inequality row blocks in the order they are stacked, and the input that gives each.
ROW_BLOCKS = {"ineq": "G", "lb": "lb", "ub": "ub"}


def batch_size(inputs) -> int:
    """The batch of the eight inputs: the leading size of a batched one, 1 if none is."""
    for x, core in zip(inputs, CORE_DIMS):
        if x is not None and x.dim() == core + 1:
            return x.shape[0]
    return 1


def select_inputs(inputs, rows: torch.Tensor) -> tuple:
    """The eight inputs of the problems ``rows``: batched inputs indexed, shared ones kept."""
    return tuple(
        x[rows] if x is not None and x.dim() == core + 1 else x
        for x, core in zip(inputs, CORE_DIMS)
    )


def reduce_to_input(grad: torch.Tensor, input_dim: int) -> torch.Tensor:
    """A batched gradient summed over the batch where the input had no batch dimension.

    A parameter shared by B problems receives the sum of the B per-problem gradients (never
    their mean), as autograd's broadcasting gives.
    """
    return grad.sum(0) if grad.dim() > input_dim else grad


def row_blocks(n: int, G, lb, ub) -> dict[str, int | None]:
    """Rows per inequality block in the stacked order (``ROW_BLOCKS``); None: absent."""
    m = None if G is None else G.shape[-2]
    return {"ineq": m, "lb": None if lb is None else n, "ub": None if ub is None else n}


def matvec(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """M x for batched x (B, k); a shared M (1, r, k) becomes one GEMM instead of B GEMVs."""
    if M.shape[0] == 1:
        return x @ M[0].mT
    # x' M' as batched row vectors: on CPU ~5x faster than the batched GEMV M @ x, and bmm
    # itself skips matmul's shape handling (measured 10-40 us less per call on CPU).
    if x.shape[0] == M.shape[0]:
        return torch.bmm(x.unsqueeze(-2), M.mT).squeeze(-2)
    return (x.unsqueeze(-2) @ M.mT).squeeze(-2)


def dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x * y).sum(-1)


def inf_norm(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] == 0:
        return x.new_zeros(x.shape[:-1])
    return x.abs().amax(-1)


def split_blocks(rows: torch.Tensor, sizes) -> tuple[torch.Tensor | None, ...]:
    """Consecutive slices of the last dimension of ``rows``, one per size (None: absent)."""
    out, start = [], 0
    for size in sizes:
        out.append(None if size is None else rows[..., start : start + size])
        start += size or 0
    return tuple(out)


def _neg(x):
    return None if x is None else -x


def concat_rows(parts, like: torch.Tensor) -> torch.Tensor:
    """Concatenate the present row blocks, broadcasting their leading (batch) dimensions."""
    parts = [x for x in parts if x is not None]
    if not parts:
        return like.new_zeros(1, 0)
    lead = max(x.shape[0] for x in parts)
    return torch.cat([x.expand(lead, -1) for x in parts], dim=-1)


@dataclass(frozen=True)
class AbsoluteData:
    """The magnitudes the residuals' rounding floors are made of (``_ipm.residuals``), made
    once per problem: ``|Q|``, and sums that bound the products with the other data."""

    Q: torch.Tensor  # (B|1, n, n) |Q|
    dual: torch.Tensor  # (B|1, n) |p|
    dual_per_dual: torch.Tensor  # (B|1, n) sum_i |C_ij| + sum_i |A_ij|: times max |(lam, nu)|
    primal: torch.Tensor  # (B|1, rows) |h_all| then |b|, on the existing rows
    primal_per_z: torch.Tensor  # (B|1, rows) sum_j |C_ij|, then sum_j |A_ij|: times max |z|

    @classmethod
    def of(cls, problem: Problem) -> AbsoluteData:
        p, G, A = problem.p, problem.G, problem.A
        rows = [None if G is None else G.abs().sum(-1)]
        rows += [None if x is None else torch.ones_like(x) for x in (problem.lb, problem.ub)]
        C_rows = concat_rows(rows, p) * problem.mask
        cols = torch.zeros_like(p) if G is None else G.abs().sum(-2)
        cols = cols + (problem.lb is not None) + (problem.ub is not None)
        primal, per_z = problem.h_all.abs() * problem.mask, C_rows
        if A is not None:
            cols = cols + A.abs().sum(-2)
            primal = concat_rows([primal, problem.b.abs()], p)
            per_z = concat_rows([per_z, A.abs().sum(-1)], p)
        return cls(problem.Q.abs(), p.abs(), cols, primal, per_z)


@dataclass(frozen=True)
class Problem:
    Q: torch.Tensor  # (B|1, n, n)
    p: torch.Tensor  # (B|1, n)
    G: torch.Tensor | None  # (B|1, m, n)
    h: torch.Tensor | None  # (B|1, m), infinite entries replaced by 0
    A: torch.Tensor | None  # (B|1, neq, n)
    b: torch.Tensor | None  # (B|1, neq)
    lb: torch.Tensor | None  # (B|1, n), infinite entries replaced by 0
    ub: torch.Tensor | None
    mask: torch.Tensor  # (B|1, m_all) 1.0 for rows that exist, 0.0 for infinite rhs
    h_all: torch.Tensor  # (B|1, m_all) [h; -lb; ub], 0 on masked rows
    batch: int
    # Derived from the data, as a field so that it travels with them (CUDA graphs' buffers).
    absolute: AbsoluteData | None = None

    def __post_init__(self):
        if self.absolute is None:
            object.__setattr__(self, "absolute", AbsoluteData.of(self))

    @classmethod
    def from_inputs(cls, Q, p, G, h, A, b, lb, ub, batch: int) -> Problem:
        def lift(x, dims):
            return None if x is None else (x if x.dim() == dims + 1 else x.unsqueeze(0))

        Q, p, G, h, A, b, lb, ub = (
            lift(x, d) for x, d in zip((Q, p, G, h, A, b, lb, ub), CORE_DIMS)
        )
        masks = []
        finite_rhs = []
        for rhs in (h, lb, ub):
            if rhs is not None:
                finite = torch.isfinite(rhs)
                masks.append(finite.to(p.dtype))
                finite_rhs.append(torch.where(finite, rhs, torch.zeros_like(rhs)))
            else:
                finite_rhs.append(None)
        h, lb, ub = finite_rhs
        return cls(
            Q,
            p,
            G,
            h,
            A,
            b,
            lb,
            ub,
            concat_rows(masks, p),
            concat_rows([h, _neg(lb), ub], p),
            batch,
        )

    def select(self, rows: torch.Tensor) -> Problem:
        """The sub-batch of the problems ``rows`` (shared, unbatched data stays shared)."""
        changes = {}
        for f in dataclasses.fields(self):
            x = getattr(self, f.name)
            if isinstance(x, torch.Tensor) and x.shape[0] == self.batch and self.batch > 1:
                changes[f.name] = x[rows]
        return dataclasses.replace(self, **changes, batch=len(rows), absolute=None)

    @property
    def n(self) -> int:
        return self.p.shape[-1]

    @property
    def m_all(self) -> int:
        return self.mask.shape[-1]

    @property
    def has_eq(self) -> bool:
        return self.A is not None and self.A.shape[-2] > 0

    def q_scale(self) -> torch.Tensor:
        """max(1, max |Q_ij|) per problem, shape (B|1,): the scale of Q in tests on Q's products."""
        Q = self.Q  # max |Q_ij| without a temporary of Q's size
        return torch.maximum(Q.amax((-2, -1)), -Q.amin((-2, -1))).clamp_min(1.0)

    def row_norms_sq(self) -> torch.Tensor:
        """||C_i||^2 of each stacked inequality row, shape (B|1, m_all); 1 for zero rows."""
        parts = []
        if self.G is not None:
            norms = self.G.square().sum(-1)
            parts.append(torch.where(norms > 0, norms, torch.ones_like(norms)))
        for bound in (self.lb, self.ub):
            if bound is not None:
                parts.append(torch.ones_like(bound))
        return concat_rows(parts, self.p)

    def to(self, dtype: torch.dtype) -> Problem:
        """The same problem in another floating dtype."""
        changes = {
            f.name: x.to(dtype)
            for f in dataclasses.fields(self)
            if isinstance(x := getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **changes, absolute=None)

    def row_blocks(self) -> dict[str, int | None]:
        """Rows per inequality block (``ROW_BLOCKS`` order); None for an absent block."""
        return row_blocks(self.n, self.G, self.lb, self.ub)

    def split_rows(self, rows: torch.Tensor):
        """Split a stacked ``(..., m_all)`` tensor into its (G, lb, ub) parts (None if absent)."""
        return split_blocks(rows, self.row_blocks().values())

    def stack_rows(self, parts, like: torch.Tensor) -> torch.Tensor:
        """The (G, lb, ub) row blocks ``parts`` as one (B, m_all) tensor: ``split_rows``'
        inverse. A None part of a present block is zero; an unbatched one is expanded; the
        parts of absent blocks are ignored. ``like``: a (B, .) tensor of the dtype wanted."""
        batch = like.shape[0]
        blocks = [
            like.new_zeros(batch, size) if x is None else x.expand(batch, -1)
            for x, size in zip(parts, self.row_blocks().values())
            if size is not None
        ]
        return torch.cat(blocks, -1) if blocks else like.new_zeros(batch, 0)

    def ineq(self, z: torch.Tensor) -> torch.Tensor:
        """C z, shape (B, m_all)."""
        if self.lb is None and self.ub is None and self.G is not None:
            return matvec(self.G, z)
        parts = []
        if self.G is not None:
            parts.append(matvec(self.G, z))
        if self.lb is not None:
            parts.append(-z)
        if self.ub is not None:
            parts.append(z)
        return torch.cat(parts, -1) if parts else z.new_zeros(z.shape[0], 0)

    def ineq_t(self, lam: torch.Tensor) -> torch.Tensor:
        """C' lam, shape (B, n)."""
        lam_g, lam_lb, lam_ub = self.split_rows(lam)
        if lam_g is not None:
            out = matvec(self.G.mT, lam_g)
        else:
            out = lam.new_zeros(*lam.shape[:-1], self.n)
        if lam_lb is not None:
            out = out - lam_lb
        if lam_ub is not None:
            out = out + lam_ub
        return out

    def reduced_hessian(self, w: torch.Tensor, buffers=None) -> torch.Tensor:
        """Q + C' diag(w) C for weights w >= 0, shape (B, n, n): not a view of the data.

        The G rows go through one batched ``Q + (sqrt(w) G)' (sqrt(w) G)`` product; the bound
        rows only add to the diagonal. ``buffers`` (``_kkt.Buffers``), when given, provides the
        memory of the result and of the temporaries.
        """
        w_g, w_lb, w_ub = self.split_rows(w)
        batch = w.shape[0]
        Q = self.Q.expand(batch, -1, -1)
        H = None if buffers is None else buffers.get("H", Q.shape, Q)
        if w_g is not None:
            G_w = None if buffers is None else buffers.get("G_w", (batch, *self.G.shape[1:]), Q)
            G_w = torch.mul(self.G, w_g.sqrt().unsqueeze(-1), out=G_w)
            H = torch.baddbmm(Q, G_w.mT, G_w, out=H)
        else:
            H = Q.clone() if H is None else H.copy_(Q)
        diagonal = H.diagonal(dim1=-2, dim2=-1)
        for part in (w_lb, w_ub):
            if part is not None:
                diagonal.add_(part)
        return H

    def eq(self, z: torch.Tensor) -> torch.Tensor:
        return matvec(self.A, z)

    def eq_t(self, nu: torch.Tensor) -> torch.Tensor:
        return matvec(self.A.mT, nu)
