"""The handoff: the interior point stops early for the polish, and resumes where it fails."""

from __future__ import annotations

import torch

import optnet
from optnet import _backends
from optnet._backends import batched
from optnet._ipm import polish, stopping
from optnet._problem import Problem
from tests.support import known_solution_problem

OPTIONS = optnet.SolverOptions()


def _problem(batch=12):
    (Q, p, G, h, A, b), known = known_solution_problem(batch, 10, 14, 3, seed=4)
    return Problem.from_inputs(Q, p, G, h, A, b, None, None, batch), known


def test_the_answer_does_not_depend_on_the_handoff(monkeypatch):
    problem, (z, lam, nu, _) = _problem()
    early = _backends.solve(problem, OPTIONS)[0]
    monkeypatch.setattr(stopping, "HANDOFF_TOLERANCE", 0.0)  # the interior point to the end
    full = _backends.solve(problem, OPTIONS)[0]
    assert bool(early.polished.all()) and bool(full.polished.all())
    assert int(early.iterations.sum()) < int(full.iterations.sum())
    torch.testing.assert_close(early.z, full.z, rtol=0, atol=1e-13)
    torch.testing.assert_close(early.z, z, rtol=0, atol=1e-12)
    torch.testing.assert_close(early.lam, lam, rtol=0, atol=1e-12)


def test_a_failed_polish_resumes_the_interior_point_to_the_full_tolerance(monkeypatch):
    # No polish succeeds: every problem stops at the handoff, is resumed (the batch compacts as
    # problems finish), and must meet the user's tolerance with the interior point alone.
    problem, (z, _, _, _) = _problem()
    monkeypatch.setattr(polish, "_signs_hold", lambda lam, *rest: torch.zeros_like(lam[:, 0]) > 0)
    handoffs = []  # of every Iteration made, in order: the solve's, then the resume's

    class Recorded(batched.Iteration):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            handoffs.append(self.handoff)

    monkeypatch.setattr(batched, "Iteration", Recorded)
    result = _backends.solve(problem, OPTIONS)[0]
    # Once resumed, no Iteration (the compacted batches' included) may stop early again.
    assert handoffs[0] and not any(handoffs[handoffs.index(False) :])
    assert bool((result.status == optnet.QPStatus.SOLVED).all())
    assert not bool(result.polished.any())
    assert float((result.z - z).abs().max()) < 1e-6
    monkeypatch.setattr(stopping, "HANDOFF_TOLERANCE", 0.0)
    uninterrupted = _backends.solve(problem, OPTIONS)[0]
    # The resumed iterates are those of an uninterrupted run (same centering target).
    torch.testing.assert_close(result.iterations, uninterrupted.iterations, rtol=0, atol=0)
    torch.testing.assert_close(result.z, uninterrupted.z, rtol=0, atol=1e-12)
