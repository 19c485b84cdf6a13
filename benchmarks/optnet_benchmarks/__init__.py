"""Benchmark harnesses of optnet (a repository-level package, not part of the library's wheel).

Commands, registered with the library's ``optnet`` command through the entry-point group
``optnet.commands`` (see ``benchmarks/pyproject.toml``):

- ``optnet bench`` (``bench``, ``speed``, ``peers``): speed, memory and accuracy of optnet
  against other differentiable QP layers on identical random QP batches (``problems``),
  checked against float64 references (``reference``: optnet at a tight tolerance, Clarabel).
- ``optnet maros-meszaros`` (``maros_meszaros``, ``maros_data``, ``qp_scoring``): the dense
  Maros-Meszaros subset, scored with qpbenchmark's criteria.

Without installing the package, ``python -m optnet_benchmarks bench|maros-meszaros ...`` runs
the same commands (with ``benchmarks/`` and ``experiments/`` on ``PYTHONPATH``).
``python -m optnet_benchmarks.roofline`` measures a GPU's rates. Only optnet's public API is used.
"""
