"""How often the two-stage calibration reaches the published optimum of Fujita_SciSignal2010, and how fast.

Fujita et al. 2010 (Sci. Signal.): Akt pathway under EGF given as step inputs (piecewise in time),
19 estimated parameters, published best log-likelihood 53.08377736998929. Each run is
`calibrate_problem` over the full PEtab bounds with its own seed (no profiles); its best optimum is
re-simulated by `qspflow.petab.log_likelihood`. A run reaches the optimum at llh ≥ 53.0; a run in
which no local start converges counts as llh −inf.

Run: `.venv/bin/python benchmarks/calibrate_fujita.py [--runs N] [--starts S]`; the last line is
`fujita_runs=… fujita_reached=… fujita_mean_s=… fujita_best_llh=…`.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

from qspflow.calibrate import calibrate_problem
from qspflow.errors import SolverError

ROOT = Path(__file__).resolve().parents[1]
FUJITA = ROOT.parent / "shared" / "cases" / "petab" / "Fujita_SciSignal2010" / "Fujita_SciSignal2010.yaml"
REACHED = 53.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="calibration runs (seeds 0, 1, …)")
    parser.add_argument("--starts", type=int, default=5, help="local starts per run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = []
    for seed in range(args.runs):
        began = time.perf_counter()
        try:
            llh = calibrate_problem(FUJITA, seed=seed, starts=args.starts, profile=False, threads=2).best_llh
        except SolverError as exc:  # no local start converged: a failed run, counted as such
            llh = -math.inf
            print(f"seed {seed}: {exc}", flush=True)
        runs.append((llh, time.perf_counter() - began))
        print(f"seed {seed}: llh {llh:.6f} in {runs[-1][1]:.1f} s", flush=True)
    reached = sum(llh >= REACHED for llh, _ in runs)
    mean = sum(s for _, s in runs) / len(runs)
    print(f"fujita_runs={len(runs)} fujita_reached={reached} fujita_mean_s={mean:.1f} "
          f"fujita_best_llh={max(llh for llh, _ in runs):.6f}")


if __name__ == "__main__":
    main()
