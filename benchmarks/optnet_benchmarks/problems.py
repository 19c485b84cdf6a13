"""Random, strictly feasible, strongly convex QP batches: the speed benchmark's workload."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True)
class QPBatch:
    """``min 1/2 z'Qz + p'z  s.t.  Gz <= h, Az = b`` for a batch of B problems (all batched).

    Shapes: Q ``(B, n, n)``, p ``(B, n)``, G ``(B, m, n)``, h ``(B, m)``, A ``(B, neq, n)`` and
    b ``(B, neq)`` (A and b are None when ``neq == 0``). ``loss_weights`` ``(B, n)`` defines the
    benchmark loss ``sum(z * loss_weights)`` that every solver differentiates.
    """

    Q: torch.Tensor
    p: torch.Tensor
    G: torch.Tensor
    h: torch.Tensor
    A: torch.Tensor | None
    b: torch.Tensor | None
    loss_weights: torch.Tensor

    @property
    def sizes(self) -> tuple[int, int, int, int]:
        """(B, n, m, neq)."""
        neq = 0 if self.A is None else self.A.shape[-2]
        return self.Q.shape[0], self.Q.shape[-1], self.G.shape[-2], neq

    def to(self, dtype: torch.dtype, device: torch.device | str) -> QPBatch:
        """A copy in another dtype/device (fresh leaves, no gradient attached)."""
        moved = {
            f.name: None
            if getattr(self, f.name) is None
            else getattr(self, f.name).detach().to(device=device, dtype=dtype)
            for f in fields(self)
        }
        return QPBatch(**moved)

    def leaves(self, *, requires_grad: bool) -> QPBatch:
        """Detached copies of the data; the six QP inputs require grad when asked."""
        out = {}
        for f in fields(self):
            x = getattr(self, f.name)
            if x is not None:
                x = x.detach().clone()
                if f.name != "loss_weights":
                    x.requires_grad_(requires_grad)
            out[f.name] = x
        return QPBatch(**out)

    def inputs(self) -> tuple[torch.Tensor | None, ...]:
        """(Q, p, G, h, A, b)."""
        return self.Q, self.p, self.G, self.h, self.A, self.b


def random_feasible_qp(batch: int, n: int, m: int, neq: int, *, seed: int = 0) -> QPBatch:
    """A float64 CPU batch of strictly feasible, strongly convex QPs.

    ``Q = M M'/n + 1e-3 I``; ``h = G z0 + s0`` with ``s0 > 0`` and ``b = A z0``, so ``z0`` is
    strictly feasible; ``p`` is large enough that a good share of the inequalities are active.
    Requires ``neq < n`` so that A (Gaussian, full row rank almost surely) leaves room to move.

    Example:
        >>> qp = random_feasible_qp(128, 50, 50, 10)
    """
    if neq >= n:
        raise ValueError(f"neq must be smaller than n, got neq={neq}, n={n}")
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    M = randn(batch, n, n)
    Q = M @ M.mT / n + 1e-3 * torch.eye(n, dtype=torch.float64)
    z0 = randn(batch, n)
    p = 2.0 * randn(batch, n)
    G = randn(batch, m, n)
    s0 = 0.1 + torch.rand(batch, m, generator=g, dtype=torch.float64)
    h = (G @ z0.unsqueeze(-1)).squeeze(-1) + s0
    A = b = None
    if neq:
        A = randn(batch, neq, n)
        b = (A @ z0.unsqueeze(-1)).squeeze(-1)
    return QPBatch(Q, p, G, h, A, b, randn(batch, n))
