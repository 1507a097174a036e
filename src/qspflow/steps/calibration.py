"""Steps of calibration and model selection: the rules `calibrate_global`, `calibrate_start`,
`calibrate`, `select` (a checkpoint) and `profile`, and `qspflow calibrate` (`calibrate_folder`).

Start points and optima are written with `EXACT_FORMAT`, so that the next job reads back the very
floats this one computed: the staged jobs give the one-process result bit for bit.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence

import pandas as pd

from qspflow.calibrate import (
    CONVERGED,
    THRESHOLD,
    CalibrationResult,
    CalibrationSession,
    calibrate_problem,
    check_profile_candidates,
    open_session,
    rank_models,
)
from qspflow.calibrate.session import GLOBAL_COLUMNS, STARTS_COLUMNS
from qspflow.errors import DataError
from qspflow.io import EXACT_FORMAT, read_table, write_bytes, write_table, write_text
from qspflow.plots import fit_figure, png_bytes, profile_figure, waterfall_figure
from qspflow.steps import in_folder

FilePath = str | os.PathLike[str]
log = logging.getLogger("qspflow.calibrate")

#: the outputs of `calibrate_folder` (`qspflow calibrate --out DIR`); profiles and plot only with profiles
FILES = {
    "estimates": "estimates.tsv",
    "starts_table": "starts.tsv",
    "simulation": "simulation.tsv",
    "summary": "summary.tsv",
    "waterfall": "waterfall.png",
    "fit": "fit.png",
    "profiles": "profiles.tsv",
    "plot": "profiles.png",
}


def calibrate_global(*, problem: FilePath, global_starts: FilePath, seed: int, threads: int = 1,
                     candidates: Sequence[FilePath] = (), **options: object) -> None:
    """The global search of problem YAML `problem`: the initial points of its local starts, to
    `global_starts`. (Paths are never named `starts`: that is an option, the number of starts.)
    `candidates`: the problems of every model that may be selected and profiled; each parameter
    to profile must be estimated in one of them (checked before the search)."""
    session = open_session(problem, seed=seed, threads=threads, **options)
    check_profile_candidates(session, candidates)
    table = session.global_starts()
    # Compiled here, into the shared cache, the starts' system is there when they begin: otherwise the
    # model's first start compiles it (about a minute) while the others wait for it.
    session.compile_local()
    write_table(table, global_starts, float_format=EXACT_FORMAT)


def calibrate_start(*, problem: FilePath, global_starts: FilePath, start: int, result: FilePath,
                    threads: int = 1, **options: object) -> None:
    """Local start number `start` of the `calibrate_global` table, verified: one row to `result`."""
    session = open_session(problem, threads=threads, **options)
    table = read_table(global_starts, required=[*GLOBAL_COLUMNS[:2], *session.columns("initial")])
    write_table(session.local_start(table, start), result, float_format=EXACT_FORMAT)


def calibrate(*, problem: FilePath, start_tables: Sequence[FilePath], estimates: FilePath, starts_table: FilePath,
              simulation: FilePath, summary: FilePath, waterfall: FilePath, fit: FilePath, seed: int,
              threads: int = 1, **options: object) -> float:
    """The best verified optimum of the `calibrate_start` tables: its estimates, every start
    (`starts_table`), the simulation at the optimum, the summary (best log-likelihood, sizes,
    options), the waterfall and fit figures. Returns the best log-likelihood."""
    session = open_session(problem, seed=seed, threads=threads, **options)
    began = time.monotonic()
    result = session.conclude(session.refine(session.hop(_read_starts(session, start_tables), began), began))
    _write_calibration(result, estimates=estimates, starts_table=starts_table, simulation=simulation,
                       summary=summary, waterfall=waterfall, fit=fit)
    return result.best_llh


def select(*, summaries: Mapping[str, FilePath], ranking: FilePath, best: FilePath) -> str:
    """Rank the calibrated models {model: its `calibrate` summary} by AICc and BIC; the ranking to
    `ranking`, the best model's name (a line) to `best`. Returns that name."""
    table = rank_models({name: _read_summary(path) for name, path in summaries.items()})
    for row in table.itertuples():
        log.info("%s: llh %.6f, %d parameters, AICc %.4f (Δ %.4f, weight %.3g), BIC %.4f", row.model, row.llh,
                 row.n_params, row.aicc, row.delta_aicc, row.weight, row.bic)
    name = str(table["model"].iat[0])
    write_table(table, ranking)
    write_text(name + "\n", best)
    return name


def profile(*, problem: FilePath, starts_table: FilePath, estimates: FilePath, profiles: FilePath, plot: FilePath,
            threads: int = 1, **options: object) -> None:
    """Profile likelihoods around the best optimum in the `calibrate` table `starts_table`: the
    estimates with their 95 % intervals, the profile points and their figure."""
    # The `calibrate` step polished the best start already (or found the polish not kept): not again here.
    session = open_session(problem, threads=threads, **{**options, "profile": True, "polish": False})
    result = session.conclude(_read_starts(session, [starts_table]))
    _write_profiles(result, estimates=estimates, profiles=profiles, plot=plot)


def calibrate_folder(*, problem: FilePath, out: FilePath, **options: object) -> float:
    """Every stage in one process (`qspflow calibrate`): the `calibrate` outputs, and the `profile`
    outputs when `profile`, in folder `out` under their `FILES` names. Returns the best log-likelihood."""
    result = calibrate_problem(problem, **options)
    paths = in_folder(out, FILES)
    _write_calibration(result, **{k: paths[k] for k in ("estimates", "starts_table", "simulation", "summary",
                                                         "waterfall", "fit")})
    if result.options.profile:
        _write_profiles(result, **{k: paths[k] for k in ("estimates", "profiles", "plot")})
    return result.best_llh


# ------------------------------------------------------------------------------ reading, writing


def _read_starts(session: CalibrationSession, paths: Sequence[FilePath]) -> pd.DataFrame:
    """The rows of `starts_table` files (one per `calibrate_start` job, or a `calibrate` table)."""
    required = [*STARTS_COLUMNS, *session.columns("initial"), *session.columns("final")]
    return pd.concat([read_table(path, required=required) for path in paths], ignore_index=True)


def _read_summary(path: FilePath) -> tuple[float, int, int]:
    """(best log-likelihood, parameters, data points) from a `calibrate` summary."""
    table = read_table(path, required=["key", "value"])
    values = dict(zip(table["key"].astype(str), table["value"]))
    try:
        return float(values["best_llh"]), int(values["n_params"]), int(values["n_data"])
    except (KeyError, ValueError) as exc:
        raise DataError(path, key="best_llh, n_params, n_data", expected="numbers (a calibration summary)") from exc


def _write_calibration(result: CalibrationResult, *, estimates: FilePath, starts_table: FilePath,
                       simulation: FilePath, summary: FilePath, waterfall: FilePath, fit: FilePath) -> None:
    write_table(result.estimates, estimates)
    write_table(result.starts, starts_table, float_format=EXACT_FORMAT)
    write_table(result.simulation, simulation)
    write_table(result.summary, summary)
    write_bytes(png_bytes(waterfall_figure(result.starts, CONVERGED)), waterfall)
    write_bytes(png_bytes(fit_figure(result.fit)), fit)


def _write_profiles(result: CalibrationResult, *, estimates: FilePath, profiles: FilePath, plot: FilePath) -> None:
    write_table(result.estimates, estimates)
    write_table(result.profiles, profiles)
    write_bytes(png_bytes(profile_figure(result.profiles, THRESHOLD)), plot)
