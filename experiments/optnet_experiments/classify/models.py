"""The classifiers: ``FC600-ReLU-FC10-ReLU-head-log_softmax`` with an FC or an OptNet head,
and their checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from optnet import SolverOptions
from optnet.nn import OptNetLayer

from ..checkpoints import ConfigCheckpoints
from ..errors import ConfigError

EXPERIMENT = "classify"
MODEL_KINDS = ("fc", "optnet")


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything needed to rebuild a classifier from a checkpoint."""

    kind: str
    n_features: int = 64
    hidden: int = 600
    n_classes: int = 10
    n_ineq: int = 50  # inequalities of the OptNet layer
    max_iter: int = 50


class DigitClassifier(nn.Module):
    """``FC(hidden)-ReLU-FC(10)-ReLU-head-log_softmax`` with head FC(10) or OptNet(10).

    The OptNet head solves ``min 1/2 z'Qz + p'z s.t. Gz <= h`` with learned Q, G, h
    (``optnet.nn.OptNetLayer``, float64) and ``p`` the previous layer's output; its solution
    z is the logits.
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        c = config
        self.features = nn.Sequential(
            nn.Linear(c.n_features, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, c.n_classes),
            nn.ReLU(),
        )
        if c.kind == "fc":
            self.head = nn.Linear(c.n_classes, c.n_classes)
        elif c.kind == "optnet":
            # float64, as in the measured runs of docs/experiments.md
            self.head = OptNetLayer(
                c.n_classes,
                c.n_ineq,
                options=SolverOptions(max_iter=c.max_iter),
                dtype=torch.float64,
            )
        else:
            raise ConfigError(f"unknown model kind {c.kind!r}; expected one of {MODEL_KINDS}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, n_features)`` -> log-probabilities ``(B, n_classes)``."""
        logits = self.head(self.features(x))
        return F.log_softmax(logits, dim=-1).to(x.dtype)


# Checkpoints: the OptNet head computes in float64, the FC head in float32.
CHECKPOINTS = ConfigCheckpoints(
    EXPERIMENT, ClassifierConfig, DigitClassifier,
    dtype=lambda c: "float64" if c.kind == "optnet" else "float32",
)  # fmt: skip
model_spec, save_model, load_model = CHECKPOINTS.spec, CHECKPOINTS.save, CHECKPOINTS.load
