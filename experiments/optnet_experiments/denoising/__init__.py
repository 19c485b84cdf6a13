"""Total-variation denoising (OptNet paper, section 5.3): ``data`` (piecewise-constant
signals), ``models`` (FC, TV and the learned-D QP), ``train`` (the lambda grid, training,
evaluation), ``plots`` and ``cli`` (``optnet denoise``)."""
