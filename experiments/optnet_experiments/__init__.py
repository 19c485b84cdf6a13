"""The OptNet paper's experiments, as ``optnet`` subcommands: Sudoku (``optnet sudoku``),
total-variation denoising (``optnet denoise``) and classification (``optnet classify``).

Repository-level code beside the library (never in its wheel): it uses only optnet's public
API. The command-line kit is ``cli``; what the experiments share has one module per job:
``errors``, ``data_paths``, ``devices``, ``json_lines``, ``progress``, ``plotting``,
``checkpoints``, ``training`` (seeding, learning-rate schedule, epoch loop) and ``distributed``
(data-parallel training).
"""

__version__ = "0.1.0"
