"""The one tolerance table of the test suite, and the comparison that reads it."""

from __future__ import annotations

import torch

# Keyed by (quantity, dtype): the largest error accepted against a float64 reference solved to
# 1e-12, relative to the reference's infinity norm (floor 1).
TOLERANCES = {
    ("z", torch.float64): 1e-9,
    ("z", torch.float32): 5e-5,
    ("dual", torch.float64): 1e-8,
    ("dual", torch.float32): 5e-4,
    ("grad", torch.float64): 1e-8,
    ("grad", torch.float32): 5e-4,
    # A directional derivative against central differences (step 1e-5) of the reference:
    # Clarabel's 1e-12 over the step, plus the step's truncation error.
    ("fd_grad", torch.float64): 2e-6,
    # Infeasibility certificates (normalized to norm 1): the solver accepts a ray whose
    # residuals are below eps_infeasible (1e-8) times the data's scale, O(1) in the tests.
    ("certificate", torch.float64): 1e-6,
    # float32 certificates: rays accepted at eps_infeasible 1e-5 (primal) and 1e-6 (dual).
    ("certificate", torch.float32): 1e-4,
    # float32 solutions of an ill-conditioned Q (OptNetLayer at its initialization, cond(Q) ~
    # 2.6e6: cond(Q) eps = 0.3), against float64 on the same data: the worst problem, and the
    # median problem (docs/solver.md, "Mixed precision"). Measured 2026-12-02: 5.9e-8 and 2.8e-8
    # (2.5e-2 and 4e-8 before the float64 active-set factor and the float64 finish).
    ("z_at_floor", torch.float32): 1e-6,
    ("z_at_floor_median", torch.float32): 1e-7,
    # The randomized suite of every class (tests/test_random_classes.py), solved with the
    # DEFAULT options (eps 1e-9 / 1e-4), not at 1e-12: z (or the objective where z is not
    # unique) and the constraint violation, relative (floor 1), of a well-conditioned problem:
    # the done-when of the issue "Float32 you can trust".
    ("random_z", torch.float64): 1e-6,
    ("random_z", torch.float32): 1e-3,
}

# Solver tolerances for finite-difference checks (SolverOptions fields): a solution to 1e-12.
TIGHT = {"eps_abs": 1e-12, "eps_rel": 1e-12, "max_iter": 100}
# torch.autograd.gradcheck / gradgradcheck in float64 of solutions solved to TIGHT: central
# differences of step eps (the solve's 1e-12 over the step: ~1e-6) and the step's truncation.
GRADCHECK = {"eps": 1e-6, "atol": 1e-6, "rtol": 1e-5, "fast_mode": True}


def relative_error(actual, expected) -> float:
    """``||actual - expected||_inf / max(1, ||expected||_inf)`` (0 for empty tensors)."""
    actual = torch.as_tensor(actual, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    if not expected.numel():
        return 0.0
    scale = max(1.0, float(expected.abs().max()))
    return float((actual - expected).abs().max()) / scale


def assert_close_to(actual, expected, quantity: str, dtype: torch.dtype):
    error = relative_error(actual, expected)
    tol = TOLERANCES[(quantity, dtype)]
    assert error <= tol, f"{quantity} ({dtype}): relative error {error:.3e} > {tol:.1e}"
