"""The denoising models and their checkpoints.

Four kinds map a noisy signal ``y`` (length n) to an estimate ``x`` of the clean signal:

* ``fc``: one hidden ReLU layer of 1000 units;
* ``tv``: the total-variation baseline ``min_x 1/2 ||x - y||^2 + lam ||D x||_1`` with D the
  first-difference operator and ``lam`` chosen on a grid on the training data;
* ``optnet``: the same QP with a learned D (random start, l1 penalty on D, ``lam = 1``:
  a learned D absorbs the scale of lam);
* ``optnet-tv``: the learned-D QP started at the tuned total-variation solution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optnet import SolverOptions, solve_qp

from ..common import DTYPES, Checkpoint, ConfigError, ModelSpec, load_checkpoint, save_checkpoint

EXPERIMENT = "denoising"
MODEL_KINDS = ("fc", "tv", "optnet", "optnet-tv")


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


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model from a checkpoint."""

    kind: str
    length: int = 100
    hidden: int = 1000
    lam: float = 1.0
    dtype: str = "float64"  # of the QP models
    max_iter: int = 50


def build_model(config: ModelConfig, *, seed: int = 0) -> nn.Module:
    """A fresh model of ``config.kind`` (``D`` of ``optnet`` drawn as ``0.3 * randn``)."""
    if config.kind == "fc":
        torch.manual_seed(seed)
        return FCDenoiser(config.length, config.hidden)
    if config.kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {config.kind!r}; expected one of {MODEL_KINDS}")
    dtype = DTYPES[config.dtype]
    options = SolverOptions(max_iter=config.max_iter)
    if config.kind == "optnet":
        g = torch.Generator().manual_seed(seed)
        D = 0.3 * torch.randn(config.length - 1, config.length, generator=g, dtype=dtype)
    else:  # tv, optnet-tv
        D = difference_matrix(config.length, dtype)
    return TVDenoiser(D, config.lam, learn_D=config.kind != "tv", options=options)


def model_spec(config: ModelConfig) -> ModelSpec:
    """The checkpoint spec of a denoising model (the dtype: float32 for fc, else the QP's)."""
    hparams = {k: v for k, v in asdict(config).items() if k != "kind"}
    dtype = "float32" if config.kind == "fc" else config.dtype
    return ModelSpec(EXPERIMENT, config.kind, hparams, dtype)


def config_of(spec: ModelSpec) -> ModelConfig:
    return ModelConfig(spec.kind, **spec.hparams)


def save_model(path: Path | str, model: nn.Module, config: ModelConfig, **metadata: Any) -> Path:
    """Save a denoising model in the experiments' checkpoint format, with ``metadata``."""
    return save_checkpoint(path, model, model_spec(config), metadata)


def load_model(
    path: Path | str, device: torch.device | str = "cpu"
) -> tuple[nn.Module, ModelConfig, Checkpoint]:
    """Rebuild the denoising model saved in ``path``: ``(model, config, checkpoint)``.

    Raises ``ConfigError`` when ``path`` is not a denoising checkpoint.
    """
    model, checkpoint = load_checkpoint(
        path, lambda spec: build_model(config_of(spec)), experiment=EXPERIMENT, device=device
    )
    return model, config_of(checkpoint.spec), checkpoint
