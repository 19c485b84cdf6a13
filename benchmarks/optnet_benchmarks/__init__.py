"""Benchmark harnesses of optnet (a repository-level package, not part of the library's wheel).

Every benchmark is a subcommand of ``optnet bench`` (``cli``; registered with the library's
``optnet`` command through the entry-point group ``optnet.commands``, see
``benchmarks/pyproject.toml``), one module each:

- ``speed`` (``optnet bench`` or ``optnet bench speed``): speed, memory and accuracy of optnet
  against other differentiable QP layers (``peers``) on identical random QP batches
  (``problems``), checked against float64 references (``reference``); timing in ``measure``,
  tables and plot in ``report``;
- ``accuracy``, ``closest_accuracy``: z and its gradients on known solutions, and of the
  closest-feasible mode on infeasible QPs;
- ``sudoku_step``, ``warm_start``: the Sudoku OptNet's QP step against qpth, and warm starts
  in its training loop;
- ``roofline``: a GPU's rates and where a solve's time goes;
- ``maros_meszaros`` (also ``optnet maros-meszaros``; ``maros_data``, ``qp_scoring``): the
  dense Maros-Meszaros subset, scored with qpbenchmark's criteria;
- ``markdown``: the markdown tables of docs/benchmarks.md from the JSON lines.

Only optnet's public API is used.
"""
