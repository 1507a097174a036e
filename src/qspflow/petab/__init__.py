"""PEtab (v1) problems on an `OdeModel`: loading, the reference simulation and log-likelihood, export.

- `problem`: `load_problem` (checked and linted) into a `PetabProblem`; the table cells a
  condition or measurement row sets (`condition_cells`, `replacement_cells`, `is_missing`).
- `priors`: objective priors (`Prior`: −log p, its gradient and Fisher information) and
  `log_prior`, their sum at given parameter values.
- `reference`: the independent reference simulation and log-likelihood (`simulate_condition`,
  `simulate_problem`, `log_likelihood`), against which calibration results are checked.
- `export`: `build_problem` turns a study (model, the prepare step's measurements, the
  experiment table) into PEtab tables; `problem_files` gives the problem's files as text and
  `write_problem` writes them into a folder and lints them there.
"""

from __future__ import annotations

from qspflow.petab.export import (
    PetabTables,
    build_problem,
    problem_files,
    write_problem,
)
from qspflow.petab.priors import Prior
from qspflow.petab.problem import (
    Observable,
    PetabProblem,
    condition_cells,
    is_missing,
    lint,
    load_problem,
    log_prior,
    replacement_cells,
)
from qspflow.petab.reference import (
    NumericModel,
    SimulationFailure,
    log_likelihood,
    simulate_condition,
    simulate_problem,
)

__all__ = [
    "NumericModel",
    "Observable",
    "PetabProblem",
    "PetabTables",
    "Prior",
    "SimulationFailure",
    "build_problem",
    "condition_cells",
    "is_missing",
    "lint",
    "load_problem",
    "log_likelihood",
    "log_prior",
    "problem_files",
    "replacement_cells",
    "simulate_condition",
    "simulate_problem",
    "write_problem",
]
