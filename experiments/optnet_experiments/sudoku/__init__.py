"""Sudoku (OptNet paper, section 5.2, and 9x9 beyond it): ``boards`` (encodings, a solution
counter, the checks), ``data`` (the paper's files, a seeded parallel generator, the
train/val/test split), ``models`` (``SudokuOptNet``, its initializations, and the baselines),
``train`` (single-process or DDP), ``plots`` (the error curves), ``report`` (gathers the runs
of ``experiments/gpu_sudoku9.sh``) and ``cli`` (``optnet sudoku``)."""
