"""Steps on a PEtab problem with the reference simulator (`qspflow petab-simulate`, `petab-llh`)."""

from __future__ import annotations

import os

from qspflow.io import write_table
from qspflow.petab import load_problem, log_likelihood, log_prior, simulate_problem

FILES = {"simulation": "simulation.tsv"}


def petab_simulate(*, problem: str | os.PathLike[str], simulation: str | os.PathLike[str]) -> None:
    """Write the PEtab simulation table of problem YAML `problem` at its nominal parameters to `simulation`."""
    write_table(simulate_problem(load_problem(problem)), simulation)


def petab_llh(*, problem: str | os.PathLike[str]) -> tuple[float, float]:
    """(log-posterior, log-likelihood) of problem YAML `problem` at its nominal parameters: the
    log-posterior adds the objective priors' log-densities (`qspflow.petab.priors`) to the likelihood."""
    loaded = load_problem(problem)
    llh = log_likelihood(loaded)
    return llh + log_prior(loaded), llh
