"""The classifiers: ``FC600-ReLU-FC10-ReLU-head-log_softmax`` with an FC or an OptNet head,
and their checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from optnet import SolverOptions
from optnet.nn import OptNetLayer

from ..common import Checkpoint, ConfigError, ModelSpec, load_checkpoint, save_checkpoint

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


def model_spec(config: ClassifierConfig) -> ModelSpec:
    """The checkpoint spec of a classifier (the dtype: the OptNet head's float64, else float32)."""
    hparams = {k: v for k, v in asdict(config).items() if k != "kind"}
    dtype = "float64" if config.kind == "optnet" else "float32"
    return ModelSpec(EXPERIMENT, config.kind, hparams, dtype)


def config_of(spec: ModelSpec) -> ClassifierConfig:
    return ClassifierConfig(spec.kind, **spec.hparams)


def save_model(
    path: Path | str, model: nn.Module, config: ClassifierConfig, **metadata: Any
) -> Path:
    """Save a classifier in the experiments' checkpoint format, with ``metadata``."""
    return save_checkpoint(path, model, model_spec(config), metadata)


def load_model(
    path: Path | str, device: torch.device | str = "cpu"
) -> tuple[nn.Module, ClassifierConfig, Checkpoint]:
    """Rebuild the classifier saved in ``path``: ``(model, config, checkpoint)``.

    Raises ``ConfigError`` when ``path`` is not a classification checkpoint.
    """
    model, checkpoint = load_checkpoint(
        path, lambda spec: DigitClassifier(config_of(spec)), experiment=EXPERIMENT, device=device
    )
    return model, config_of(checkpoint.spec), checkpoint
