"""The denoising models and their checkpoints.

Five kinds map a noisy signal ``y`` (length n) to an estimate ``x`` of the clean signal:

* ``fc``: one hidden ReLU layer of 1000 units;
* ``tv``: the total-variation baseline ``min_x 1/2 ||x - y||^2 + lam ||D x||_1`` with D the
  first-difference operator and ``lam`` chosen on a grid on the training data;
* ``optnet``: the same QP with a learned D (random start, l1 penalty on D, ``lam = 1``:
  a learned D absorbs the scale of lam);
* ``optnet-tv``: the learned-D QP started at the tuned total-variation solution;
* ``optnet-qp-tv``: the paper's general QP layer, in the primal variables ``z = (x, t)``
  with every QP parameter learned (Q through a factor, the affine map from y to p, G, h),
  started exactly at the tuned total-variation solution (``QPDenoiser``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from optnet import SolverOptions, solve_qp

from ..checkpoints import ConfigCheckpoints
from ..devices import DTYPES
from ..errors import ConfigError
from .data import PAPER_SIGNALS

EXPERIMENT = "denoising"
MODEL_KINDS = ("fc", "tv", "optnet", "optnet-tv", "optnet-qp-tv")
# The parameter groups of the general QP (``QPDenoiser``): Q (its factor F), the affine map
# y -> p (W and p0), G and h.
QP_PARAMETERS = ("Q", "p", "G", "h")
# The general QP measures signals from this constant: the middle of the heights' range of the
# paper's signals, (10 + 99) / 2. An affine change of the variable z, so the same family of
# QPs, but Adam's steps no longer act on the ~55 offset every signal shares (docs).
DEFAULT_CENTER = (PAPER_SIGNALS.low + PAPER_SIGNALS.high - 1) / 2


def difference_matrix(length: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """First-difference operator D ``(length - 1, length)``: ``(D x)_i = x_{i+1} - x_i``."""
    return torch.diff(torch.eye(length, dtype=dtype), dim=0)


class FCDenoiser(nn.Module):
    """Fully connected baseline: ``y -> Linear -> ReLU -> Linear``."""

    def __init__(self, length: int = 100, hidden: int = 1000):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(length, hidden), nn.ReLU(), nn.Linear(hidden, length))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y.to(self.net[0].weight.dtype)).to(y.dtype)


class TVDenoiser(nn.Module):
    """``x*(y) = argmin_x 1/2 ||x - y||^2 + lam ||D x||_1`` as a differentiable layer.

    The QP solved is the dual: by ``lam ||v||_1 = max_{|nu| <= lam} nu'v``, the minimizer over
    x of ``1/2 ||x - y||^2 + nu'D x`` is ``x = y - D'nu``, leaving

        min_nu  1/2 nu' (D D') nu - (D y)' nu    s.t.  -lam <= nu <= lam.

    Why the dual rather than the primal with epigraph variables ``(x, t), -t <= D x <= t``:
    it has m = n - 1 variables instead of 2n - 1, so each dense Newton factorization is about
    8x cheaper; its only constraints are bounds, which the solver handles natively as diagonal
    terms (no dense G rows); and it is smooth in D (``Q = D D'``, ``p = -D y``,
    ``x = y - D'nu``), so gradients reach D through both the solution nu and the
    reconstruction. ``D D'`` is positive definite whenever D has full row rank (true for the
    first differences and, almost surely, for a random D with m < n); the primal x stays
    unique even where nu is not.

    Args:
        D: ``(m, length)`` initial operator.
        lam: the bound on the duals (the TV weight).
        learn_D: make D a parameter (OptNet) or a fixed buffer (the TV baseline).
        options: solver options.
    """

    def __init__(
        self,
        D: torch.Tensor,
        lam: float,
        *,
        learn_D: bool,
        options: SolverOptions | None = None,
    ):
        super().__init__()
        if learn_D:
            self.D = nn.Parameter(D.clone())
        else:
            self.register_buffer("D", D.clone())
        self.register_buffer("lam", torch.tensor(float(lam), dtype=D.dtype))
        self.options = SolverOptions() if options is None else options
        self.last_unsolved = 0  # unsolved QPs in the latest forward, for logging

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        D = self.D
        y_qp = y.to(D.dtype)
        bound = self.lam.expand(D.shape[0])
        sol = solve_qp(D @ D.mT, -(y_qp @ D.mT), lb=-bound, ub=bound, options=self.options)
        self.last_unsolved = int((~sol.solved).sum())
        return (y_qp - sol.z @ D).to(y.dtype)

    def extra_repr(self) -> str:
        return f"D={tuple(self.D.shape)}, lam={float(self.lam):g}, options={self.options}"


def tv_epigraph_qp(length: int, lam: float, dtype: torch.dtype = torch.float64):
    """The total-variation problem as a QP in ``z = (x, t)``, ``n = 2 length - 1`` variables:

        min_z 1/2 z'Qz + p'z  s.t.  G z <= h,   Q = [[I, 0], [0, 0]],  p = W y + p0,
        W = [[-I], [0]],  p0 = [0, lam 1],  G = [[D, -I], [-D, -I]],  h = 0,

    i.e. ``min 1/2 ||x - y||^2 + lam 1't  s.t.  -t <= D x <= t`` (up to the constant
    ``1/2 ||y||^2``), whose x is the TV solution. Returns ``(Q, W, p0, G, h)``.
    """
    m = length - 1
    eye_x = torch.eye(length, dtype=dtype)
    eye_t = torch.eye(m, dtype=dtype)
    D = difference_matrix(length, dtype)
    Q = torch.block_diag(eye_x, torch.zeros(m, m, dtype=dtype))
    W = torch.cat([-eye_x, torch.zeros(m, length, dtype=dtype)])
    p0 = torch.cat([torch.zeros(length, dtype=dtype), torch.full((m,), float(lam), dtype=dtype)])
    G = torch.cat([torch.cat([D, -eye_t], 1), torch.cat([-D, -eye_t], 1)])
    h = torch.zeros(2 * m, dtype=dtype)
    return Q, W, p0, G, h


class QPDenoiser(nn.Module):
    """The OptNet paper's general QP layer for denoising (sec. 5.3), in the primal variables
    ``z = (x, t)`` (n = 2 length - 1 variables, m = 2 length - 2 inequalities):

        x*(y) = c + first ``length`` entries of
                argmin_z 1/2 z'Qz + (W (y - c) + p0)'z  s.t.  G z <= h,

    with ``Q = F F' + eps I`` (positive semidefinite for every F), W ``(n, length)``, p0
    ``(n,)``, G ``(m, n)``, h ``(m,)`` and the constant ``c = center``. It starts at the TV
    problem of ``tv_epigraph_qp`` (F = ``[[sqrt(1 - eps) I, 0], [0, 0]]``): with ``eps = 0``
    its x is exactly the TV solution, for any c (TV commutes with adding a constant; with
    ``eps > 0`` it adds ``eps/2 ||t||^2``, moving x by O(eps)). The t-block of Q is 0 there;
    the solver handles a semidefinite Q (G gives the Newton matrix full rank).

    The center is an affine change of variables, ``z -> z + (c 1, 0)``: it maps the QPs of this
    layer one to one onto ``argmin 1/2 z'Qz + p'z, G z <= h`` with ``p`` affine in y and fixed
    ``h`` (p absorbs ``-W c 1 - Q (c 1, 0)``, h absorbs ``G (c 1, 0)``). It changes only how
    gradient steps act: a step on Q or W no longer moves every signal's ~55 offset.

    Args:
        length: signal length.
        lam: the TV weight of the start.
        learn: the parameter groups learned, from ``QP_PARAMETERS``: "Q" (F), "p" (W and p0),
            "G", "h"; the others are fixed buffers (they stay in the state dict).
        eps: the ridge of Q.
        center: the constant c.
        dtype: of the parameters and of the QP.
        options: solver options.

    Example:
        >>> model = QPDenoiser(100, 21.0, learn=("Q", "p"))
        >>> x = model(torch.randn(8, 100, dtype=torch.float64) * 10 + 50)   # (8, 100)
    """

    def __init__(
        self,
        length: int,
        lam: float,
        *,
        learn: tuple[str, ...] = QP_PARAMETERS,
        eps: float = 0.0,
        center: float = 0.0,
        dtype: torch.dtype = torch.float64,
        options: SolverOptions | None = None,
    ):
        super().__init__()
        unknown = set(learn) - set(QP_PARAMETERS)
        if unknown:
            raise ConfigError(f"unknown QP parameter(s) {sorted(unknown)}; from {QP_PARAMETERS}")
        if not 0 <= eps < 1:
            raise ConfigError(f"the ridge eps of Q must be in [0, 1), got {eps}")
        self.length, self.eps, self.learn = length, float(eps), tuple(learn)
        self.center = float(center)
        Q, W, p0, G, h = tv_epigraph_qp(length, lam, dtype)
        F = Q * (1.0 - eps) ** 0.5  # Q is 0/1 diagonal: its own square root
        group = {"F": "Q", "W": "p", "p0": "p", "G": "G", "h": "h"}
        for name, value in (("F", F), ("W", W), ("p0", p0), ("G", G), ("h", h)):
            if group[name] in self.learn:
                setattr(self, name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)
        self.options = SolverOptions() if options is None else options
        self.last_unsolved = 0  # unsolved QPs in the latest forward, for logging

    def qp_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Q, G, h)``: the parts of the QP shared by every signal."""
        n = self.F.shape[0]
        eye = torch.eye(n, dtype=self.F.dtype, device=self.F.device)
        return self.F @ self.F.mT + self.eps * eye, self.G, self.h

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        Q, G, h = self.qp_data()
        p = (y.to(self.W.dtype) - self.center) @ self.W.mT + self.p0
        sol = solve_qp(Q, p, G, h, options=self.options)
        self.last_unsolved = int((~sol.solved).sum())
        return (sol.z[..., : self.length] + self.center).to(y.dtype)

    def extra_repr(self) -> str:
        return (
            f"length={self.length}, n={self.F.shape[0]}, m={self.G.shape[0]}, "
            f"learn={','.join(self.learn)}, eps={self.eps:g}, options={self.options}"
        )


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model from a checkpoint."""

    kind: str
    length: int = 100
    hidden: int = 1000
    lam: float = 1.0
    dtype: str = "float64"  # of the QP models
    max_iter: int = 50
    # optnet-qp-tv only: the learned groups (comma-separated, from QP_PARAMETERS), the ridge of
    # Q and the constant the signals are measured from (see QPDenoiser).
    learn: str = ",".join(QP_PARAMETERS)
    eps: float = 0.0
    center: float = DEFAULT_CENTER


def build_model(config: ModelConfig, *, seed: int = 0) -> nn.Module:
    """A fresh model of ``config.kind`` (``D`` of ``optnet`` drawn as ``0.3 * randn``; the
    TV-started kinds deterministic)."""
    if config.kind == "fc":
        torch.manual_seed(seed)
        return FCDenoiser(config.length, config.hidden)
    if config.kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {config.kind!r}; expected one of {MODEL_KINDS}")
    dtype = DTYPES[config.dtype]
    options = SolverOptions(max_iter=config.max_iter)
    if config.kind == "optnet-qp-tv":
        learn = tuple(name.strip() for name in config.learn.split(",") if name.strip())
        return QPDenoiser(
            config.length, config.lam, learn=learn, eps=config.eps, center=config.center,
            dtype=dtype, options=options,
        )  # fmt: skip
    if config.kind == "optnet":
        g = torch.Generator().manual_seed(seed)
        D = 0.3 * torch.randn(config.length - 1, config.length, generator=g, dtype=dtype)
    else:  # tv, optnet-tv
        D = difference_matrix(config.length, dtype)
    return TVDenoiser(D, config.lam, learn_D=config.kind != "tv", options=options)


# Checkpoints: a model computes in float32 (fc) or in its QP's dtype.
CHECKPOINTS = ConfigCheckpoints(
    EXPERIMENT, ModelConfig, build_model, dtype=lambda c: "float32" if c.kind == "fc" else c.dtype
)
model_spec, save_model, load_model = CHECKPOINTS.spec, CHECKPOINTS.save, CHECKPOINTS.load
