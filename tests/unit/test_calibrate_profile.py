"""Profile paths on profiles with known shapes: where the 95 % interval ends and how many
re-optimizations it takes to find them."""

from __future__ import annotations

import math

import pytest

from qspflow.calibrate.profile import OVERSHOOT, THRESHOLD, confidence_interval, profile_path

TOP = 100.0


class Profile:
    """A re-optimization whose log-likelihood is `shape(value)`, counting its calls; values where
    `fails(value)` is true do not converge."""

    def __init__(self, shape, fails=lambda value: False) -> None:
        self.shape, self.fails, self.calls = shape, fails, 0

    def __call__(self, value: float, warm: object) -> tuple[bool, float, object]:
        self.calls += 1
        return not self.fails(value), self.shape(value), warm


def _path(solve: Profile, lower=-10.0, upper=10.0, best=0.0, first_step=0.01, max_steps=20):
    points = profile_path(solve, lower, upper, best, None, TOP, first_step=first_step, max_steps=max_steps)
    return points, confidence_interval(points, best, TOP)


@pytest.mark.parametrize("sigma", [0.05, 0.3, 2.0])
def test_a_quadratic_profile_ends_at_1_96_standard_errors_in_three_solves_per_side(sigma):
    solve = Profile(lambda v: TOP - 0.5 * (v / sigma) ** 2)
    points, (low, high) = _path(solve)
    z = math.sqrt(2 * THRESHOLD)
    assert low == pytest.approx(-z * sigma, rel=1e-9) and high == pytest.approx(z * sigma, rel=1e-9)
    assert solve.calls <= 2 * 4  # a first step, one aimed past the end, at most two closing in
    assert points == sorted(points) and (0.0, TOP) in points


def test_an_asymmetric_non_quadratic_profile_is_closed_in_on_to_its_crossings():
    solve = Profile(lambda v: TOP - (v**4 if v > 0 else 3 * v * v))
    _, (low, high) = _path(solve)
    assert high == pytest.approx(THRESHOLD**0.25, abs=2e-3)
    assert low == pytest.approx(-math.sqrt(THRESHOLD / 3), abs=2e-3)
    assert solve.calls <= 2 * 8


def test_a_flat_profile_reaches_both_bounds_in_a_few_growing_steps():
    solve = Profile(lambda v: TOP - 1e-6 * v * v)
    points, (low, high) = _path(solve, first_step=0.05)
    assert math.isnan(low) and math.isnan(high)
    assert points[0][0] == -10.0 and points[-1][0] == 10.0
    assert solve.calls <= 2 * 4  # steps 1, 4, then 16 clipped at the bound (bound width 20)


def test_a_profile_that_cannot_be_solved_past_a_value_ends_there_without_an_interval_end():
    solve = Profile(lambda v: TOP - 0.1 * v * v, fails=lambda v: v > 1.0)
    points, (low, high) = _path(solve, first_step=0.05)
    assert math.isnan(high) and low == pytest.approx(-math.sqrt(THRESHOLD / 0.1), rel=1e-9)
    assert max(v for v, _ in points) <= 1.0


def test_a_steep_drop_after_a_plateau_is_bracketed_without_a_wide_overshoot():
    solve = Profile(lambda v: TOP - (0.01 * v * v if v < 2 else 0.04 + 50 * (v - 2) ** 2))
    points, (_, high) = _path(solve, first_step=0.05)
    assert high == pytest.approx(2 + math.sqrt((THRESHOLD - 0.04) / 50), abs=1e-3)
    crossed = [llh for v, llh in points if v > high]
    assert min(crossed) >= TOP - OVERSHOOT * THRESHOLD


def test_a_poor_solve_from_afar_does_not_end_the_profile_at_a_false_cliff():
    """Re-optimized from the optimum itself, points past 0.1 fall into a poor local optimum (as a
    first step on Boehm_JProteomeRes2014 did); from nearer points they give the true quadratic
    profile, whose interval ends at ±1.96."""

    def solve(value: float, warm: object) -> tuple[bool, float, object]:
        poor = value > 0.1 and warm is None
        return True, TOP - 0.5 * value**2 - (30.0 if poor else 0.0), value

    points = profile_path(solve, -10.0, 10.0, 0.0, None, TOP, first_step=0.01, max_steps=40)
    low, high = confidence_interval(points, 0.0, TOP)
    z = math.sqrt(2 * THRESHOLD)
    assert low == pytest.approx(-z, rel=1e-6) and high == pytest.approx(z, rel=1e-6)
    assert len(points) <= 12
