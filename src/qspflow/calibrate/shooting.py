"""Single shooting: a trust-region Newton method on the simulated likelihood.

fides (Fröhlich & Sorger 2022; the optimizer pyPESTO uses with AMICI) minimizes the negative
log-likelihood within the bounds by an interior trust-region reflective method, with the gradient
and the Fisher information from forward sensitivities (`GradientProblem`) as its Hessian. It needs
no discretization and no good initial trajectory, so it converges from starts where the Pyomo
transcription cannot (badly scaled states, far starts); the transcription then polishes what it
finds (`qspflow.calibrate.session`). Parameters can be held fixed (a profile's steps).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from qspflow.calibrate.derivatives import GradientProblem

CONVERGED_FLAGS = ("FTOL", "XTOL", "GTOL")
# Integration tolerances of the first stage of `shoot_in_stages`: log-likelihoods within ~1e-5 of the
# exact tolerances' (measured on the example: 3e-6, gradient 1e-5 relative) at 40 % of the cost of a
# gradient (the example's: 0.165 s against 0.42 s CPU), ample for the iterations far from an optimum.
COARSE_RTOL, COARSE_ATOL = 1e-6, 1e-8
FAILED_AT_START = "simulation failed at the start: "


class Abandoned(Exception):
    """A solve stopped because its `stop` said so: its result is no longer wanted (a superseded basin hop)."""


@dataclass
class ShootingResult:
    """Where a run ended (scaled, full vector), its negative log-likelihood and fides' exit flag."""

    x: np.ndarray
    nll: float
    status: str
    converged: bool
    iterations: int
    fim: np.ndarray | None = None  # the Fisher information at x, all parameters (None at a failed start)


def shoot(problem: GradientProblem, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, max_iter: int,
          max_time: float = math.inf, fixed: Mapping[int, float] | None = None,
          tolerance: float | None = None, stop: Callable[[], bool] | None = None) -> ShootingResult:
    """Minimize from x0 within [lower, upper] (scaled), the parameters in `fixed` held at their values.

    `tolerance`: stop when an iteration changes the negative log-likelihood by less than this
    (absolute; default fides' own test, 1e-8 absolute + 1e-8 relative).

    A start where the model cannot be simulated ends at once with the reason as its status. `stop` is asked
    before every evaluation; where it says True the solve raises `Abandoned`.
    """
    import fides  # imported here: only the calibration steps need it (and h5py, which it loads)

    fixed = dict(fixed or {})
    free = np.array([i for i in range(len(x0)) if i not in fixed], dtype=int)
    base = np.array(x0, dtype=float)
    for i, value in fixed.items():
        base[i] = value

    def full(z: np.ndarray) -> np.ndarray:
        x = base.copy()
        x[free] = z
        return x

    best = {}  # the lowest evaluation: fides ends at its x, and its full FIM is the result's

    def fun(z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        if stop is not None and stop():
            raise Abandoned
        e = start if np.array_equal(z, z0) else problem.evaluate(full(z))  # fides re-evaluates its start
        if e.nll < best.get("e", start).nll:
            best["e"] = e
        return e.nll, e.gradient[free], e.fim[np.ix_(free, free)]

    z0 = np.clip(base[free], lower[free], upper[free])
    start = problem.evaluate(full(z0))
    if not math.isfinite(start.nll):
        return ShootingResult(full(z0), math.inf, f"{FAILED_AT_START}{start.reason}", False, 0)
    if not len(free):
        return ShootingResult(full(z0), start.nll, "FTOL", True, 0, start.fim)
    options = {fides.Options.MAXITER: max_iter, fides.Options.MAXTIME: max_time}
    if tolerance is not None:
        options.update({fides.Options.FATOL: tolerance, fides.Options.FRTOL: 0.0})
    optimizer = fides.Optimizer(fun, ub=upper[free], lb=lower[free], verbose=logging.ERROR, options=options)
    try:
        nll, z, _, _ = optimizer.minimize(z0)
    except RuntimeError as error:  # a non-finite gradient or Hessian at an accepted point
        best = optimizer.x_min if math.isfinite(optimizer.fval_min) else z0
        return ShootingResult(full(best), float(min(optimizer.fval_min, start.nll)), f"NOT_FINITE: {error}", False,
                              optimizer.iteration)
    flag = optimizer.exitflag.name
    return ShootingResult(full(z), float(nll), flag, flag in CONVERGED_FLAGS, optimizer.iteration,
                          best.get("e", start).fim)


def shoot_in_stages(problem: GradientProblem, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray, *,
                    max_iter: int, max_time: float = math.inf, stop: Callable[[], bool] | None = None
                    ) -> ShootingResult:
    """`shoot` first at the coarse integration tolerances, then on from where that ended at the problem's
    own: the optimum, its log-likelihood and its Fisher information are those of the exact tolerances,
    and most iterations cost 40 % as much. Iterations, time and `stop` are shared by the two stages."""
    began = time.perf_counter()
    coarse = shoot(problem.with_tolerances(COARSE_RTOL, COARSE_ATOL), x0, lower, upper, max_iter=max_iter,
                   max_time=max_time, stop=stop)
    if not math.isfinite(coarse.nll) or coarse.status.startswith("NOT_FINITE"):
        return shoot(problem, x0, lower, upper, max_iter=max_iter, max_time=max_time, stop=stop)
    left = max_iter - coarse.iterations
    if left <= 0:
        return coarse
    fine = shoot(problem, coarse.x, lower, upper, max_iter=left,
                 max_time=max(max_time - (time.perf_counter() - began), 1.0), stop=stop)
    fine.iterations += coarse.iterations
    if fine.status.startswith(FAILED_AT_START):  # not at x0: Elowitz_Nature2000's did, after 41–118 s of iterations
        fine.status = (f"simulation failed at the problem's tolerances where the coarse stage ended ({coarse.status}, "
                       f"llh {-coarse.nll:.8g}): {fine.status.removeprefix(FAILED_AT_START)}")
    return fine
