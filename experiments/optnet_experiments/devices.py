"""The dtypes and devices a command line can name (``--dtype float64``, ``--device cuda``)."""

from __future__ import annotations

import torch

from .errors import ConfigError

DTYPES = {"float64": torch.float64, "float32": torch.float32}
DEVICES = ("cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``; raises ``ConfigError`` for "cuda" without a CUDA device."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA device is available")
    return torch.device(name)


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float64`` -> ``"float64"`` (the name records and tables show)."""
    return str(dtype).removeprefix("torch.")
