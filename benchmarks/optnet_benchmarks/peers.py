"""Differentiable QP layers compared by ``optnet bench``, behind one small interface.

Each peer turns a ``QPBatch`` (whose six inputs require grad) into a ``solve()`` closure that
returns ``z`` of shape ``(B, n)``, differentiable through the peer's own backward pass. Peers are
optional dependencies: a missing one reports why instead of failing the run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .problems import QPBatch

Solve = Callable[[], torch.Tensor]


@dataclass
class PeerRun:
    """What a peer needs for one benchmark case; ``stats`` is filled by optnet's closure."""

    solve: Solve
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


class Peer:
    """Base class: ``name``, the modules it needs, and where it runs."""

    name: str = ""
    distribution: str | None = None  # whose version the records report
    modules: tuple[str, ...] = ()
    install: str = ""  # the command that installs the modules (see benchmarks/pyproject.toml)
    cpu_only: bool = False
    # True for peers that loop over the batch one problem at a time: their time grows
    # linearly in B from B = 1 on, which lets the benchmark predict (and skip) slow cases.
    serial_over_batch: bool = False

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype) -> str | None:
        """Why this peer cannot run here, or None."""
        missing = [mod for mod in self.modules if importlib.util.find_spec(mod) is None]
        if missing:
            return f"not installed ({', '.join(missing)}): {self.install}"
        if self.cpu_only and device.type != "cpu":
            return "CPU-only solver"
        return None

    def prepare(self, qp: QPBatch, eps: float) -> PeerRun:  # pragma: no cover - interface
        raise NotImplementedError


class OptNetPeer(Peer):
    """This library: ``optnet.solve_qp`` with ``eps_abs = eps_rel = eps`` and default options."""

    name = "optnet"
    distribution = "optnet"
    backend = "auto"  # SolverOptions(backend=...)

    def __init__(self, max_iter: int = 50):
        self.max_iter = max_iter

    def options(self, eps: float):
        """The ``SolverOptions`` this peer solves with."""
        from optnet import SolverOptions

        return SolverOptions(eps_abs=eps, eps_rel=eps, max_iter=self.max_iter, backend=self.backend)

    def prepare(self, qp: QPBatch, eps: float) -> PeerRun:
        from optnet import solve_qp

        options = self.options(eps)
        run = PeerRun(solve=lambda: None)

        def solve() -> torch.Tensor:
            sol = solve_qp(*qp.inputs(), options=options)
            run.stats["iterations_max"] = sol.iterations
            run.stats["status"] = sol.status
            return sol.z

        run.solve = solve
        return run


class OptNetBatchedPeer(OptNetPeer):
    """optnet with ``SolverOptions(backend="batched")``: eager batched iterations, no graphs.

    Differs from ``optnet`` on CUDA, where "auto" replays captured CUDA graphs for small and
    medium problems; compares the two paths in one run.
    """

    name = "optnet-batched"
    backend = "batched"


def qpth_function():
    """qpth's ``QPFunction`` class.

    qpth imports cvxpy when imported, for a solver we never select (we time its batched
    PDIPM); where cvxpy is absent (the GPU image) an empty stand-in module lets it import.
    """
    if "cvxpy" not in sys.modules and importlib.util.find_spec("cvxpy") is None:
        stand_in = types.ModuleType("cvxpy")
        stand_in.__spec__ = importlib.machinery.ModuleSpec("cvxpy", None)
        sys.modules["cvxpy"] = stand_in
    from qpth.qp import QPFunction

    return QPFunction


class QpthPeer(Peer):
    """qpth 0.0.18 (Amos & Kolter's batched interior-point solver), default iteration cap."""

    name = "qpth"
    distribution = "qpth"
    modules = ("qpth",)
    # qpth's metadata pins numpy<2, which it does not need; cvxpy, which it imports, has a
    # stand-in (qpth_function).
    install = "pip install --no-deps qpth==0.0.18"

    def prepare(self, qp: QPBatch, eps: float) -> PeerRun:
        QPFunction = qpth_function()

        # qpth treats an empty tensor as "no equality constraints".
        A = qp.A if qp.A is not None else qp.Q.new_empty(0)
        b = qp.b if qp.b is not None else qp.Q.new_empty(0)
        return PeerRun(lambda: QPFunction(eps=eps, verbose=-1)(qp.Q, qp.p, qp.G, qp.h, A, b))


class QPLayerPeer(Peer):
    """proxsuite's QPLayer (ProxQP, one problem at a time on the CPU)."""

    name = "qplayer"
    distribution = "proxsuite"
    modules = ("proxsuite",)
    install = "pip install 'proxsuite>=0.8'"
    cpu_only = True
    serial_over_batch = True

    def prepare(self, qp: QPBatch, eps: float) -> PeerRun:
        from proxsuite.torch.qplayer import QPFunction

        # QPLayer takes l <= Gz <= u; a huge negative l means "no lower side".
        lower = torch.full_like(qp.h.detach(), -1e20)
        A = qp.A if qp.A is not None else qp.Q.new_empty(0)
        b = qp.b if qp.b is not None else qp.Q.new_empty(0)
        return PeerRun(lambda: QPFunction(eps=eps)(qp.Q, qp.p, A, b, qp.G, lower, qp.h)[0])


class CvxpyLayersPeer(Peer):
    """cvxpylayers (canonicalized once per case; diffcp + SCS per problem, CPU).

    The objective is written ``1/2 ||L z||^2 + p'z`` with ``Q = L'L`` (L from a Cholesky
    factorization inside the timed closure), the DPP-compliant form of a parametric Q.
    """

    name = "cvxpylayers"
    distribution = "cvxpylayers"
    modules = ("cvxpylayers", "cvxpy", "diffcp")
    install = "pip install 'cvxpylayers>=1.2'"
    cpu_only = True
    serial_over_batch = True

    def prepare(self, qp: QPBatch, eps: float) -> PeerRun:
        import cvxpy as cp
        from cvxpylayers.torch import CvxpyLayer

        _, n, m, neq = qp.sizes
        z = cp.Variable(n)
        L, p, G, h = cp.Parameter((n, n)), cp.Parameter(n), cp.Parameter((m, n)), cp.Parameter(m)
        params, constraints = [L, p, G, h], [G @ z <= h]
        if neq:
            A, b = cp.Parameter((neq, n)), cp.Parameter(neq)
            params += [A, b]
            constraints.append(A @ z == b)
        objective = cp.Minimize(0.5 * cp.sum_squares(L @ z) + p @ z)
        layer = CvxpyLayer(
            cp.Problem(objective, constraints),
            parameters=params,
            variables=[z],
            solver_args={"eps_abs": eps, "eps_rel": eps},
        )
        tail = () if qp.A is None else (qp.A, qp.b)

        def solve() -> torch.Tensor:
            L_value = torch.linalg.cholesky(qp.Q).mT
            return layer(L_value, qp.p, qp.G, qp.h, *tail)[0]

        return PeerRun(solve)


def dense_csr(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR row offsets and column indices of a dense ``rows x cols`` pattern (int64).

    The values of a row-major ``(..., rows, cols)`` tensor, reshaped to ``(..., rows * cols)``,
    are the CSR values of this pattern.
    """
    offsets = torch.arange(0, rows * cols + 1, cols, dtype=torch.int64)
    return offsets, torch.arange(cols, dtype=torch.int64).repeat(rows)


class MoreauPeer(Peer):
    """Moreau's CPU backend, its batched interior-point conic solver (``solver="ipm"``).

    The QP as a conic problem ``min 1/2 z'Pz + q'z  s.t.  Kz + s = c, s in K`` (Moreau's
    form): ``P = Q`` (full symmetric, dense CSR), ``K = [A; G]``, ``c = [b; h]``, the zero cone
    for the ``neq`` equalities and the nonnegative cone for the ``m`` inequalities. The Solver
    (the structure) is built once per case, outside the timed calls; each call passes all the
    values, so its backward gives the gradients of Q, p, G, h, A and b. Tolerances
    ``tol_gap_abs = tol_gap_rel = tol_feas = eps``. Float64 only. Its threads are those of
    SciPy's OpenBLAS, which it calls (``optnet bench --threads`` limits them too).
    """

    name = "moreau"
    distribution = "moreau"
    modules = ("moreau", "moreau_cpu")
    install = "pip install moreau==0.4.1"  # the version whose torch API this peer uses
    cpu_only = True
    solver = "ipm"  # moreau.Settings(solver=...)

    def unavailable_reason(self, device: torch.device, dtype: torch.dtype) -> str | None:
        reason = super().unavailable_reason(device, dtype)
        if reason is None and dtype != torch.float64:
            return "float64 only"
        return reason

    def settings(self, batch: int, eps: float):
        """The ``moreau.Settings`` this peer solves with."""
        import moreau

        ipm = moreau.IPMSettings(tol_gap_abs=eps, tol_gap_rel=eps, tol_feas=eps)
        return moreau.Settings(
            solver=self.solver, device="cpu", batch_size=batch, enable_grad=True, ipm_settings=ipm
        )

    def prepare(self, qp: QPBatch, eps: float) -> PeerRun:
        import moreau
        from moreau.torch import Solver

        batch, n, m, neq = qp.sizes
        rows = neq + m
        solver = Solver(
            n,
            rows,
            *dense_csr(n, n),
            *dense_csr(rows, n),
            moreau.Cones(num_zero_cones=neq, num_nonneg_cones=m),
            settings=self.settings(batch, eps),
        )
        run = PeerRun(solve=lambda: None)
        solved = moreau.SolverStatus.Solved

        def solve() -> torch.Tensor:
            K = qp.G if qp.A is None else torch.cat([qp.A, qp.G], dim=-2)
            c = qp.h if qp.b is None else torch.cat([qp.b, qp.h], dim=-1)
            values = qp.Q.reshape(batch, n * n), K.reshape(batch, rows * n)
            z = solver.solve(*values, qp.p, c).x
            info = solver.info
            run.stats["iterations_max"] = torch.as_tensor(info.iterations)
            run.stats["status"] = torch.tensor([int(st != solved) for st in info.status])
            return z

        run.solve = solve
        return run


class MoreauActiveSetPeer(MoreauPeer):
    """Moreau's CPU active-set QP solver (``solver="active_set"``, DAQP), same conic form.

    What Moreau's ``solver="auto"`` picks on the CPU for QPs with n <= 500 and
    m <= max(500, 2n); its own tolerances (the IPM ones do not apply).
    """

    name = "moreau-active-set"
    solver = "active_set"

    def settings(self, batch: int, eps: float):
        import moreau

        return moreau.Settings(solver=self.solver, device="cpu", batch_size=batch, enable_grad=True)


PEERS: dict[str, type[Peer]] = {
    "optnet": OptNetPeer,
    "optnet-batched": OptNetBatchedPeer,
    "qpth": QpthPeer,
    "qplayer": QPLayerPeer,
    "cvxpylayers": CvxpyLayersPeer,
    "moreau": MoreauPeer,
    "moreau-active-set": MoreauActiveSetPeer,
}
