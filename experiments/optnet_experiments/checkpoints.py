"""The one checkpoint format of the experiments: a model's spec (what rebuilds it), its weights
and free-form metadata, in a file that ``torch.load(weights_only=True)`` reads back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError

CHECKPOINT_FORMAT = "optnet-experiments/1"


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a model: its experiment, its kind, the hyperparameters of its builder,
    and the dtype it computes in (its QP's, for the QP models).

    ``hparams`` and ``metadata`` hold only what ``torch.load(weights_only=True)`` reads back:
    str, int, float, bool, None, lists and dicts of them.
    """

    experiment: str
    kind: str
    hparams: dict[str, Any]
    dtype: str


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file's contents: the model's spec, its weights and free-form metadata
    (the training loop writes ``epoch``, ``metrics`` and ``history``)."""

    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(
    path: Path | str, model: nn.Module, spec: ModelSpec, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights (copied to the CPU), ``spec`` and ``metadata`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "experiment": spec.experiment,
        "kind": spec.kind,
        "hparams": dict(spec.hparams),
        "dtype": spec.dtype,
        "state_dict": state,
        "metadata": dict(metadata or {}),
    }
    # Write then rename: a run killed by a time limit never leaves half a checkpoint.
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)
    return path


def read_checkpoint(path: Path | str, *, experiment: str | None = None) -> Checkpoint:
    """Read a ``save_checkpoint`` file (tensors on the CPU).

    Raises ``ConfigError`` when the file is not such a checkpoint, or is one of another
    experiment than ``experiment`` (when given).
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a checkpoint written by an `optnet` experiment")
    if experiment is not None and payload["experiment"] != experiment:
        raise ConfigError(
            f"{path} is a checkpoint of the {payload['experiment']} experiment, not of {experiment}"
        )
    spec = ModelSpec(payload["experiment"], payload["kind"], payload["hparams"], payload["dtype"])
    return Checkpoint(spec, payload["state_dict"], payload["metadata"])


def load_checkpoint(
    path: Path | str,
    build: Callable[[ModelSpec], nn.Module],
    *,
    experiment: str,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, Checkpoint]:
    """Rebuild the model saved in ``path``: ``build(spec)``, then its weights.

    Returns ``(model on device in eval mode, checkpoint)``.
    """
    checkpoint = read_checkpoint(path, experiment=experiment)
    model = build(checkpoint.spec)
    model.load_state_dict(checkpoint.state_dict)
    return model.to(device).eval(), checkpoint


@dataclass(frozen=True)
class ConfigCheckpoints:
    """Checkpoints of the models of one experiment that a config dataclass describes: its
    first field ``kind``, the others the builder's hyperparameters.

    ``build(config)`` makes the model; ``dtype(config)`` names the dtype it computes in.
    """

    experiment: str
    config_type: type
    build: Callable[[Any], nn.Module]
    dtype: Callable[[Any], str]

    def spec(self, config) -> ModelSpec:
        """The checkpoint spec of the model ``config`` describes."""
        hparams = {k: v for k, v in asdict(config).items() if k != "kind"}
        return ModelSpec(self.experiment, config.kind, hparams, self.dtype(config))

    def config(self, spec: ModelSpec):
        return self.config_type(spec.kind, **spec.hparams)

    def save(self, path: Path | str, model: nn.Module, config, **metadata: Any) -> Path:
        """Save ``model`` (described by ``config``) with ``metadata``."""
        return save_checkpoint(path, model, self.spec(config), metadata)

    def load(self, path: Path | str, device: torch.device | str = "cpu"):
        """Rebuild the model saved in ``path``: ``(model in eval mode, config, checkpoint)``.

        Raises ``ConfigError`` when ``path`` is not a checkpoint of this experiment.
        """
        model, checkpoint = load_checkpoint(
            path, lambda spec: self.build(self.config(spec)), experiment=self.experiment,
            device=device,
        )  # fmt: skip
        return model, self.config(checkpoint.spec), checkpoint
