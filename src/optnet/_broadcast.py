"""Batch handling: gradients of shared (unbatched) inputs are the SUM over the batch."""

from __future__ import annotations

import torch


def reduce_to_batch_of_input(grad: torch.Tensor, input_dim: int) -> torch.Tensor:
    """Sum a batched gradient over the batch where the input had no batch dimension.

    This matches autograd's own broadcasting: a parameter shared by B problems receives the
    sum of the B per-problem gradients (never their mean).
    """
    return grad.sum(0) if grad.dim() > input_dim else grad
