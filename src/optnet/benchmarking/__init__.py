"""Benchmark harnesses: random QP batches, peer solvers, timing, references and test sets.

Used by the ``optnet bench`` and ``optnet maros-meszaros`` subcommands; nothing here is part
of the public solver API.
"""
