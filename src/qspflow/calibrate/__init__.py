"""Calibration of a PEtab problem: global search on the fast simulator, local solves by single shooting
(fides, forward sensitivities) polished by Pyomo,
verification by independent simulation, profile likelihoods, and selection among hypotheses.

The modules, each importing only those above it:

- `options`: `CalibrationOptions`, the `calibrate:` section checked (messages name `calibrate.<key>`).
- `spec`: `CalibrationSpec`, what is estimated and each experiment's equations (sympy).
- `objective`: the negative log-likelihood, written once over a math namespace; `BatchProblem`,
  the compiled simulator evaluating it for batches of parameter vectors.
- `derivatives`: `GradientProblem`, the likelihood's gradient and Fisher information by forward
  sensitivities of the compiled simulator.
- `search`: the global searches (scatter search, differential evolution, Latin hypercube).
- `shooting`: single shooting, fides on `GradientProblem` (the default local method).
- `transcription`: the Pyomo NLP (direct transcription) and its local solves; `solvers` tells
  Pyomo where its Ipopt interface lives.
- `profile`: profile likelihoods and the confidence intervals they give.
- `session`: `CalibrationSession`, one loaded problem and the stages on it; `calibrate_problem`.
- `selection`: `rank_models`, AICc and BIC over calibrated hypotheses.

The entry points: `calibrate_problem(problem_yaml, **options)` runs every stage in one process;
`open_session(problem_yaml, **options)` gives a session whose `global_starts()`, `local_start(table,
k)` and `conclude(starts_table)` are the stages as the workflow runs them, one job each (same
result); `check_profile_candidates` checks the parameters to profile against every candidate model
before the search; `rank_models` selects. They return tables; `qspflow.steps.calibration` writes them.
"""

from qspflow.calibrate.options import CalibrationOptions
from qspflow.calibrate.profile import THRESHOLD, confidence_interval
from qspflow.calibrate.selection import rank_models
from qspflow.calibrate.session import (
    CONVERGED,
    CalibrationResult,
    CalibrationSession,
    calibrate_problem,
    check_profile_candidates,
    open_session,
)

__all__ = [
    "CONVERGED",
    "THRESHOLD",
    "CalibrationOptions",
    "CalibrationResult",
    "CalibrationSession",
    "calibrate_problem",
    "check_profile_candidates",
    "confidence_interval",
    "open_session",
    "rank_models",
]
