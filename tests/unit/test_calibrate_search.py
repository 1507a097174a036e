"""The choice of local starts from a global search's archive: one per basin (hill-valley test), and the
scatter search's local phase."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from qspflow.calibrate.search import (
    FAILED,
    PATIENCE,
    LocalSolve,
    best_local_solves,
    best_of_basins,
    latin_hypercube,
    scatter_search,
    simulable_latin_hypercube,
)

LOWER, UPPER = np.zeros(2), np.ones(2)


def _two_wells(X: np.ndarray) -> np.ndarray:
    """Wells at (0.2, 0.5), depth 0, and (0.8, 0.5), depth 0.01, a ridge at x = 0.5 between them."""
    left = ((X[:, 0] - 0.2) ** 2 + (X[:, 1] - 0.5) ** 2)
    right = ((X[:, 0] - 0.8) ** 2 + (X[:, 1] - 0.5) ** 2) + 0.01
    return np.minimum(left, right)


def _archive() -> np.ndarray:
    """A converged search's archive: dozens of points at the deeper well, a few at the other."""
    rng = np.random.default_rng(1)
    deep = np.array([0.2, 0.5]) + rng.normal(scale=0.08, size=(60, 2))
    shallow = np.array([0.8, 0.5]) + rng.normal(scale=0.08, size=(5, 2))
    return np.clip(np.vstack([deep, shallow]), 0.0, 1.0)


def test_one_start_per_basin_the_best_of_each():
    X = _archive()
    f = _two_wells(X)
    chosen = best_of_basins(_two_wells, X, f, 5, LOWER, UPPER, 0.05)
    assert len(chosen) == 2  # two wells: the other three starts are left to the Latin hypercube
    assert chosen[0] == int(np.argmin(f))
    right = X[:, 0] > 0.5
    assert chosen[1] == int(np.flatnonzero(right)[np.argmin(f[right])])


def test_the_old_rule_would_have_taken_every_start_from_the_deeper_well():
    X = _archive()
    f = _two_wells(X)
    best = np.argsort(f)[:5]
    assert (X[best, 0] < 0.5).all()  # why `best_of_basins` tests for a ridge, not for distance alone


def test_a_point_between_that_cannot_be_simulated_separates_two_basins():
    X = np.array([[0.2, 0.5], [0.3, 0.5]])
    f = _two_wells(X)

    def failing_between(points):
        return np.where(np.abs(points[:, 0] - 0.25) < 0.02, np.inf, _two_wells(points))

    assert best_of_basins(failing_between, X, f, 5, LOWER, UPPER, 0.05) == [0, 1]
    assert best_of_basins(_two_wells, X, f, 5, LOWER, UPPER, 0.05) == [0]


def test_failed_and_close_points_are_never_starts():
    X = np.array([[0.2, 0.5], [0.21, 0.5], [0.8, 0.5], [0.5, 0.9]])
    f = np.array([0.0, -1.0, FAILED, np.nan])
    calls = []

    def objective(points):
        calls.append(len(points))
        return _two_wells(points)

    assert best_of_basins(objective, X, f, 5, LOWER, UPPER, 0.05) == [1]
    assert calls == []  # the close point is skipped untested; the failed ones end the choice


def test_latin_hypercube_starts_are_redrawn_where_the_model_cannot_be_simulated():
    def half_simulable(points):  # "no steady state" right of x = 0.5
        return np.where(points[:, 0] > 0.5, np.inf, _two_wells(points))

    X, f = simulable_latin_hypercube(half_simulable, 6, LOWER, UPPER, np.random.default_rng(0))
    assert X.shape == (6, 2) and (X[:, 0] <= 0.5).all()
    np.testing.assert_array_equal(f, _two_wells(X))
    again, _ = simulable_latin_hypercube(half_simulable, 6, LOWER, UPPER, np.random.default_rng(0))
    np.testing.assert_array_equal(X, again)
    plain = latin_hypercube(6, LOWER, UPPER, np.random.default_rng(0))
    assert (plain[:, 0] > 0.5).any()  # the first hypercube had points to redraw


def test_points_that_never_simulate_are_kept_after_the_last_round():
    X, f = simulable_latin_hypercube(lambda points: np.full(len(points), np.inf), 3, LOWER, UPPER,
                                     np.random.default_rng(0))
    assert X.shape == (3, 2) and np.isinf(f).all()


# ------------------------------------------------------------------------------ the local phase


def _exact_local(objective):
    """A local solver for the search: L-BFGS-B on one point of the batch objective, in the unit box."""
    def solve(x0: np.ndarray) -> tuple[np.ndarray, float]:
        fit = minimize(lambda x: objective(x[None, :])[0], x0, method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(x0),
                       options={"ftol": 1e-15, "gtol": 1e-12})
        return fit.x, float(fit.fun)
    return solve


def _rosenbrock(X: np.ndarray) -> np.ndarray:
    """Rosenbrock's valley in 6 dimensions, the unit box mapped onto [-2, 2]: its minimum 0 at 0.75."""
    Z = 4 * X - 2
    return np.sum(100 * (Z[:, 1:] - Z[:, :-1] ** 2) ** 2 + (1 - Z[:, :-1]) ** 2, axis=1)


def test_the_local_phase_puts_each_local_optimum_and_where_it_began_in_the_archive():
    lower, upper = np.zeros(6), np.ones(6)
    plain = scatter_search(_rosenbrock, lower, upper, rng=np.random.default_rng(3), max_evaluations=3000)
    archive = scatter_search(_rosenbrock, lower, upper, rng=np.random.default_rng(3), max_evaluations=3000,
                             local=_exact_local(_rosenbrock))
    assert not plain.local and plain.f.min() > 1e-3  # combinations of sampled points stay up the valley
    assert archive.local and archive.f.min() < 1e-8
    assert np.allclose(archive.X[np.argmin(archive.f)], 0.75, atol=1e-4)
    X, f = archive.X, archive.f
    for solve in archive.local:
        assert solve.f0 == pytest.approx(_rosenbrock(solve.x0[None, :])[0])  # began at an evaluated child
        assert np.any(np.all(X == solve.x0, axis=1)) and solve.f in f  # began and ended at archived points
        assert f[np.flatnonzero(np.all(X == solve.x, axis=1))][0] == solve.f


def test_the_best_local_solves_are_chosen_best_first_from_distinct_beginnings():
    end = np.array([0.5, 0.5])
    solves = [LocalSolve(np.array([0.1, 0.1]), 5.0, end, 0.5), LocalSolve(np.array([0.9, 0.9]), 4.0, end, 0.1),
              LocalSolve(np.array([0.5, 0.5]), 3.0, end, FAILED), LocalSolve(np.array([0.91, 0.9]), 6.0, end, 0.1),
              LocalSolve(np.array([0.3, 0.7]), 2.0, end, 0.1)]
    # [3] began within 0.05 of [1], which ended as well; the failed solve [2] is never a start.
    assert best_local_solves(solves, 5, LOWER, UPPER, 0.05) == [1, 4, 0]
    assert best_local_solves(solves, 2, LOWER, UPPER, 0.05) == [1, 4]


def test_a_restarted_search_stops_once_patience_runs_after_the_first_found_nothing_better(caplog):
    # A flat objective: the first run sets the best value, the next PATIENCE runs cannot improve it.
    caplog.set_level("INFO", logger="qspflow.calibrate")
    archive = scatter_search(lambda X: np.ones(len(X)), LOWER, UPPER, rng=np.random.default_rng(0),
                             max_evaluations=10**7, time_limit=600.0)
    assert f"scatter search: {1 + PATIENCE} run(s), {archive.evaluations} evaluations" in caplog.text
