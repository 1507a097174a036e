"""Calibrate Boehm_JProteomeRes2014 three ways, each under the same wall-time budget.

1. Two-stage: `calibrate_problem` (scatter search on the compiled simulator, then verified Pyomo
   local solves; no profiles), repeated with seeds 0, 1, … while the budget lasts.
2. Pyomo alone: verified Pyomo local solves (`CalibrationSession.local`, the same local method as in
   the two-stage run) from Latin-hypercube starts over the full PEtab bounds.
3. Single shooting: `scipy.optimize.least_squares` (trf, bounds) on simulations by the compiled
   simulator (rtol 1e-8, atol 1e-10; forward-difference Jacobian, one batch per Jacobian) from the
   same starts. Estimated σ enter as residuals sqrt(2·(−log p_i) + C), C making them real: their
   squares sum to 2·(−llh) + const, so the minimizer is the maximum-likelihood estimate.

Every final point is re-simulated by `qspflow.petab.log_likelihood`; a run or start reaches the
optimum at llh ≥ −138.2320 (published −138.22199693517703). The last run of a method may end after
the budget; its full time is counted.

Run: `.venv/bin/python benchmarks/calibrate.py [--budget SECONDS]`; the last line is
`two_stage_success=… pyomo_lhs_success=… single_shooting_success=… two_stage_s=…` (fractions of
runs/starts that reached the optimum; mean seconds per two-stage run).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from qspflow.calibrate import CalibrationOptions, CalibrationSession, calibrate_problem
from qspflow.calibrate.objective import BatchProblem
from qspflow.calibrate.search import latin_hypercube
from qspflow.calibrate.spec import to_linear

ROOT = Path(__file__).resolve().parents[1]
BOEHM = ROOT.parent / "shared" / "cases" / "petab" / "Boehm_JProteomeRes2014" / "Boehm_JProteomeRes2014.yaml"
REACHED = -138.2320
SEED = 20261127
MAX_STARTS = 500


def two_stage(budget: float) -> list[tuple[float, float]]:
    """(llh, seconds) of each calibration run."""
    runs = []
    began = time.perf_counter()
    seed = 0
    while time.perf_counter() - began < budget:
        start = time.perf_counter()
        result = calibrate_problem(BOEHM, seed=seed, profile=False)
        runs.append((result.best_llh, time.perf_counter() - start))
        seed += 1
    return runs


def pyomo_alone(session: CalibrationSession, starts: np.ndarray, budget: float) -> list[tuple[float, float]]:
    """(llh, seconds) of verified Pyomo local solves from `starts`, in order, while the budget lasts."""
    runs = []
    began = time.perf_counter()
    for k, x0 in enumerate(starts):
        if time.perf_counter() - began >= budget:
            break
        result = session.local(k, "lhs", x0)
        runs.append((result.llh if result.converged else -np.inf, result.seconds))
    return runs


def single_shooting(session: CalibrationSession, starts: np.ndarray, budget: float) -> list[tuple[float, float]]:
    """(llh, seconds) of least-squares fits on simulations from `starts`, while the budget lasts."""
    spec = session.spec
    batch = BatchProblem(spec, threads=1, rtol=1e-8, atol=1e-10)
    sigma_lower = min((float(to_linear(spec.scales[i], spec.lower[i])) for i in spec.noise), default=1.0)
    offset = max(0.0, -2.0 * np.log(sigma_lower)) + 1.0  # 2·(−log p_i) ≥ 2·log σ_min

    def residuals(X: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(2.0 * batch.terms(X) + offset, 0.0))

    def jacobian(x: np.ndarray) -> np.ndarray:
        h = 1e-6 * np.maximum(1.0, np.abs(x))
        h = np.where(x + h > spec.upper, -h, h)
        values = residuals(np.vstack([x, x + np.diag(h)]))
        return ((values[1:] - values[0]) / h[:, None]).T

    runs = []
    began = time.perf_counter()
    for x0 in starts:
        if time.perf_counter() - began >= budget:
            break
        start = time.perf_counter()
        fit = least_squares(lambda x: residuals(x[None, :])[0], x0, jac=jacobian, bounds=(spec.lower, spec.upper),
                            method="trf", x_scale="jac", max_nfev=300)
        runs.append((spec.simulated_llh(fit.x), time.perf_counter() - start))
    return runs


def summary(name: str, runs: list[tuple[float, float]]) -> float:
    llh = np.array([r[0] for r in runs])
    seconds = sum(r[1] for r in runs)
    success = float(np.mean(llh >= REACHED)) if len(llh) else 0.0
    print(f"{name:16s} {len(runs):6d} {seconds:10.1f} {success:9.3f} {np.max(llh):14.6f}", flush=True)
    return success


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="wall-time budget per method, seconds")
    args = parser.parse_args()
    logging.getLogger("petab").setLevel(logging.ERROR)

    session = CalibrationSession(BOEHM, CalibrationOptions(max_cpu_time=60.0))
    starts = latin_hypercube(MAX_STARTS, session.spec.lower, session.spec.upper, np.random.default_rng(SEED))
    print(f"Boehm_JProteomeRes2014, budget {args.budget:g} s per method; reached = llh ≥ {REACHED}")
    print(f"{'method':16s} {'runs':>6s} {'seconds':>10s} {'reached':>9s} {'best llh':>14s}", flush=True)
    runs = two_stage(args.budget)
    two = summary("two-stage", runs)
    lhs = summary("pyomo-lhs", pyomo_alone(session, starts, args.budget))
    shooting = summary("single-shooting", single_shooting(session, starts, args.budget))
    mean_seconds = sum(r[1] for r in runs) / len(runs)
    print(f"two_stage_success={two:.3f} pyomo_lhs_success={lhs:.3f} single_shooting_success={shooting:.3f} "
          f"two_stage_s={mean_seconds:.1f}")


if __name__ == "__main__":
    main()
