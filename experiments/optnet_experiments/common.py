"""Kept only for ``tests/test_maros_meszaros.py`` (``from optnet_experiments.common import
data_dir``), which this package does not own; delete it once that test imports
``optnet_experiments.data_paths``."""

from .data_paths import data_dir

__all__ = ["data_dir"]
