"""Every way to run the algorithm, for the conformance suite: the backends of
``optnet._backends.BACKENDS``, and the batched one on Ruiz-equilibrated data (which changes
the data the iterations see). On CPU the graphed backend runs its eager twin.

A test joins the suite by taking the ``backend_options`` fixture (``tests/conftest.py``): it is
run once per entry of ``CONFIGS`` with that entry's ``SolverOptions``, and marked
``conformance``; derive tighter or other options from it with ``dataclasses.replace``.
"""

from __future__ import annotations

import optnet
from optnet._backends import BACKENDS

CONFIGS = {name: optnet.SolverOptions(backend=name) for name in BACKENDS}
CONFIGS["batched+equilibrate"] = optnet.SolverOptions(backend="batched", equilibrate=True)
