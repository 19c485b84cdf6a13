"""The classification data: scikit-learn's 8x8 digits (1797 images, shipped with
scikit-learn, so nothing is downloaded), split 80/20 stratified with the run's seed."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DigitsSplit:
    """Pixels scaled to [0, 1], float32 ``(N, 64)``; labels int64 ``(N,)``."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_digits_split(seed: int, test_fraction: float = 0.2) -> DigitsSplit:
    """scikit-learn's digits, split train/test stratified by class with ``seed``.

    Example:
        >>> split = load_digits_split(0)   # 1437 train, 360 test
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        torch.arange(len(y)).numpy(), test_size=test_fraction, stratify=y.numpy(), random_state=seed
    )
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return DigitsSplit(x[train_idx], y[train_idx], x[test_idx], y[test_idx])
