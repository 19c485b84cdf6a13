"""The OptNet paper's experiments, as ``optnet`` subcommands: Sudoku (``optnet sudoku``),
total-variation denoising (``optnet denoise``) and classification (``optnet classify``).

Repository-level code beside the library (never in its wheel): it uses only optnet's public
API. Shared plumbing is in ``common``; data-parallel training in ``distributed``.
"""

__version__ = "0.1.0"
