"""What the code that runs the algorithm may do: each backend declares its ``Policy``.

The algorithm is the same for every backend; what differs is how it may be run. Rather than
asking which device or backend it runs on, the algorithm reads these four answers, which the
backend (``optnet._backends``) gives once per solve.
"""

from __future__ import annotations

from dataclasses import dataclass

# Policy.host_reads
FREE = "free"  # the flags live on the host (CPU): reading one costs nothing
SYNC = "sync"  # reading a flag waits for the device: allowed, at a cost
NEVER = "never"  # nothing may be read: the solve is recorded as a CUDA graph (or its CPU twin)
# Policy.factor_form: which triangular factor the Cholesky factors keep (``_kkt.SPDFactor``).
CHOLESKY = "cholesky"  # L itself: on a CPU a triangular solve costs a matrix-vector product
INVERSE = "inverse"  # L^-1: on a GPU every solve becomes a batched matrix-vector product


@dataclass(frozen=True)
class Policy:
    """How a backend runs the algorithm (docs/solver.md, "Backends").

    host_reads: ``FREE``, ``SYNC`` or ``NEVER``. Where reads are free the iteration skips work
        nobody needs (certificates that cannot hold, a step when nothing runs); where they are
        impossible the interior point goes to the full tolerance (no handoff to the polish,
        which could not stop early) and every polish round runs.
    check_period: iterations between the host's reads of the convergence flags.
    reuse_buffers: factorizations reuse their memory across iterations (``_kkt.Buffers``).
    factor_form: ``CHOLESKY`` or ``INVERSE``; the backward rebuilds the forward's factor in it.
    """

    host_reads: str
    check_period: int
    reuse_buffers: bool
    factor_form: str

    def __post_init__(self):
        if self.host_reads not in (FREE, SYNC, NEVER):
            raise ValueError(f"Policy.host_reads must be free, sync or never: {self.host_reads!r}")
        if self.factor_form not in (CHOLESKY, INVERSE):
            raise ValueError(
                f"Policy.factor_form must be cholesky or inverse: {self.factor_form!r}"
            )

    @property
    def may_read(self) -> bool:
        """Whether the host may read a flag during the solve."""
        return self.host_reads != NEVER

    @property
    def reads_free(self) -> bool:
        """Whether reading a flag costs nothing (no device sync)."""
        return self.host_reads == FREE
