"""Sudoku (OptNet paper, section 5.2): ``boards`` (encodings, a solution counter, the checks),
``data`` (the paper's files, a seeded generator, the split), ``models`` (``SudokuOptNet`` and
the baselines), ``train`` (single-process or DDP) and ``cli`` (``optnet sudoku``)."""
