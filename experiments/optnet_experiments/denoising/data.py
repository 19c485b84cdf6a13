"""The denoising data: 1-D piecewise-constant signals plus Gaussian noise (the paper's
setting by default), generated from a seed; nothing is read from disk."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SignalConfig:
    """How the piecewise-constant signals are drawn (defaults: the paper's setting)."""

    length: int = 100
    max_pieces: int = 9
    low: int = 10  # heights are integers in [low, high)
    high: int = 100
    sigma: float = 10.0


PAPER_SIGNALS = SignalConfig()


@dataclass(frozen=True)
class DenoisingData:
    """Train/test split of clean signals and their noisy observations, float64 ``(N, length)``."""

    train_clean: torch.Tensor
    train_noisy: torch.Tensor
    test_clean: torch.Tensor
    test_noisy: torch.Tensor


def make_signals(
    count: int, *, seed: int, config: SignalConfig = PAPER_SIGNALS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw ``count`` piecewise-constant signals and their noisy versions.

    Each signal has a number of pieces uniform in ``1..max_pieces``, breakpoints at distinct
    positions chosen uniformly, and an integer height per piece uniform in ``[low, high)``,
    redrawn when equal to the previous piece's (so the piece count is exact). Noise is
    Gaussian with standard deviation ``sigma``.

    Returns ``(clean, noisy, pieces)``: float64 ``(count, length)`` twice and int64 ``(count,)``.

    Example:
        >>> clean, noisy, pieces = make_signals(4, seed=0)
    """
    rng = np.random.default_rng(seed)
    clean = np.empty((count, config.length))
    pieces = rng.integers(1, config.max_pieces + 1, size=count)
    for row, k in enumerate(pieces):
        cuts = np.sort(rng.choice(np.arange(1, config.length), size=k - 1, replace=False))
        bounds = np.concatenate([[0], cuts, [config.length]])
        height = None
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            new = int(rng.integers(config.low, config.high))
            while new == height:
                new = int(rng.integers(config.low, config.high))
            height = new
            clean[row, start:stop] = height
    noisy = clean + config.sigma * rng.standard_normal(clean.shape)
    return torch.from_numpy(clean), torch.from_numpy(noisy), torch.from_numpy(pieces)


def make_dataset(
    seed: int = 0, n_train: int = 9000, n_test: int = 1000, config: SignalConfig = PAPER_SIGNALS
) -> DenoisingData:
    """The paper's data set: ``n_train + n_test`` signals drawn with one seed, split in order."""
    clean, noisy, _ = make_signals(n_train + n_test, seed=seed, config=config)
    return DenoisingData(clean[:n_train], noisy[:n_train], clean[n_train:], noisy[n_train:])
