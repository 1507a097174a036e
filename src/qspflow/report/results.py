"""The tables the report notebooks show: a step's result files read back and shaped for reading.

`read_calibration`, `read_sensitivity` and `read_vpop` take the `files` mapping a notebook is given
(workdir-relative paths, as the report rule passes them); the functions below them take and return
plain tables, so that tests drive them without files. Nothing here imports the calibration or
sensitivity stacks, nor libpetab: they take seconds to import and a report notebook should run in
a few. The two calibration conventions needed are restated (a test holds them equal to
`qspflow.calibrate`'s) and PEtab column names are libpetab's `petab.v1.C` values, written out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from qspflow.errors import DataError
from qspflow.io import parse_user_yaml, read_table, read_user_text

FilePath = str | os.PathLike[str]

#: the profile drop that ends a 95 % interval, χ²₁(0.95)/2 (`qspflow.calibrate.THRESHOLD`)
PROFILE_THRESHOLD = NormalDist().inv_cdf(0.975) ** 2 / 2
#: local-start statuses that count as converged (`qspflow.calibrate.CONVERGED`)
CONVERGED = ("optimal", "locallyOptimal", "globallyOptimal", "FTOL", "XTOL", "GTOL")
#: the most rows a notebook table shows
MAX_ROWS = 40

# PEtab (petab.v1.C)
OBSERVABLE_ID, SIMULATION_CONDITION_ID, PREEQUILIBRATION_CONDITION_ID = (
    "observableId", "simulationConditionId", "preequilibrationConditionId")
TIME, MEASUREMENT, SIMULATION, NOISE_PARAMETERS = "time", "measurement", "simulation", "noiseParameters"
NOISE_FORMULA, OBSERVABLE_TRANSFORMATION = "noiseFormula", "observableTransformation"
PARAMETER_ID, NOMINAL_VALUE = "parameterId", "nominalValue"


# ------------------------------------------------------------------------------ calibration


@dataclass
class ModelResults:
    """One calibrated hypothesis: its local starts and its fit (`fit_table`)."""

    starts: pd.DataFrame
    fit: pd.DataFrame


@dataclass
class CalibrationResults:
    """The ranking, the selected model's name, every model's results and, when the study profiles,
    the selected model's estimates with their 95 % intervals and its profile points."""

    ranking: pd.DataFrame
    best: str
    models: dict[str, ModelResults]
    estimates: pd.DataFrame | None
    profiles: pd.DataFrame | None


def read_calibration(files: Mapping) -> CalibrationResults:
    """The calibration report's files: ranking, best, models {name: {starts, estimates, simulation,
    problem, …}} and, when the study profiles, selected {estimates, profiles}."""
    models = {
        name: ModelResults(starts=read_table(paths["starts"], required=["start", "origin", "status", "llh"]),
                           fit=read_fit(paths["simulation"], paths["problem"],
                                        read_table(paths["estimates"], required=["parameter", "estimate"])))
        for name, paths in sorted(files["models"].items())}
    selected = files.get("selected")
    return CalibrationResults(
        ranking=read_table(files["ranking"], required=["model", "aicc", "delta_aicc", "weight", "bic", "delta_bic"]),
        best=Path(files["best"]).read_text(encoding="utf-8").strip(),
        models=models,
        estimates=read_table(selected["estimates"], required=["parameter", "estimate", "lower_95", "upper_95",
                                                              "identifiable"])
        if selected else None,
        profiles=read_table(selected["profiles"], required=["parameter", "value", "llh"]) if selected else None)


def ranking_table(ranking: pd.DataFrame, best: str) -> pd.DataFrame:
    """The `select` ranking for reading, best first: AICc with its Akaike weights, BIC with Schwarz
    weights exp(−ΔBIC/2)/Σ (the BIC approximation of the models' posterior probabilities), and
    which model was selected. At most `MAX_ROWS` models."""
    relative = np.exp(-0.5 * ranking["delta_bic"].to_numpy(dtype=float))
    table = pd.DataFrame({
        "model": ranking["model"].astype(str), "selected": np.where(ranking["model"].astype(str) == best, "✓", ""),
        "llh": ranking["llh"], "parameters": ranking["n_params"], "data": ranking["n_data"],
        "AICc": ranking["aicc"], "ΔAICc": ranking["delta_aicc"], "AICc weight": ranking["weight"],
        "BIC": ranking["bic"], "ΔBIC": ranking["delta_bic"],
        "BIC weight": relative / relative.sum()})
    return table.sort_values(["AICc", "model"], kind="stable", ignore_index=True).head(MAX_ROWS)


def starts_table(starts: pd.DataFrame, converged: Sequence[str] = CONVERGED) -> pd.DataFrame:
    """The local starts by origin (the global method that proposed them) and final status: how many,
    whether that status counts as converged, the best log-likelihood and its gap to the best start."""
    top = starts["llh"].max()
    table = (starts.groupby(["origin", "status"], sort=True)["llh"].agg(["size", "max"]).reset_index()
             .rename(columns={"size": "starts", "max": "best llh"}))
    table.insert(3, "converged", np.where(table["status"].isin(converged), "yes", "no"))
    table["gap to best"] = top - table["best llh"]
    return table.sort_values(["best llh", "origin", "status"], ascending=[False, True, True], ignore_index=True)


def read_fit(simulation: FilePath, problem: FilePath, estimates: pd.DataFrame) -> pd.DataFrame:
    """The `fit_table` of a calibrated model: its simulation table beside its PEtab problem's
    measurement, observable and parameter tables (σ from the parameter table's nominal values,
    replaced by the `estimates`)."""
    folder = Path(problem).parent
    config = parse_user_yaml(read_user_text(problem, DataError), problem, DataError)
    try:
        entry = config["problems"][0]
        measurement_files, observable_files = entry["measurement_files"], entry["observable_files"]
        parameter_file = config["parameter_file"]
    except (KeyError, IndexError, TypeError) as exc:
        raise DataError(problem, expected="a PEtab v1 problem (parameter_file, problems: measurement_files, "
                        "observable_files)") from exc
    measurements = pd.concat([read_table(folder / f, required=[OBSERVABLE_ID, SIMULATION_CONDITION_ID, TIME,
                                                                MEASUREMENT]) for f in measurement_files],
                             ignore_index=True)
    observables = pd.concat([read_table(folder / f, required=[OBSERVABLE_ID, NOISE_FORMULA])
                             for f in observable_files], ignore_index=True)
    parameters = read_table(folder / parameter_file, required=[PARAMETER_ID, NOMINAL_VALUE])
    values = dict(zip(parameters[PARAMETER_ID].astype(str), parameters[NOMINAL_VALUE].astype(float)))
    values.update(zip(estimates["parameter"].astype(str), estimates["estimate"].astype(float)))
    simulated = read_table(simulation, required=[OBSERVABLE_ID, TIME, SIMULATION])
    same = len(simulated) == len(measurements) and (
        (simulated[OBSERVABLE_ID].astype(str).to_numpy() == measurements[OBSERVABLE_ID].astype(str).to_numpy()).all()
        and np.allclose(simulated[TIME].astype(float), measurements[TIME].astype(float)))
    if not same:
        raise DataError(simulation, expected=f"one row per measurement of {problem}, in its order")
    return fit_table(measurements, simulated[SIMULATION].astype(float), observables, values)


def fit_table(measurements: pd.DataFrame, simulation: Sequence[float], observables: pd.DataFrame,
              values: Mapping[str, float]) -> pd.DataFrame:
    """experiment, observableId, time, measurement, simulation, sigma, low, high: one row per
    measurement (PEtab table rows, `simulation` beside them). An experiment is a (preequilibration,
    simulation) condition pair. [low, high] is measurement ± σ on the observable's transformation
    (× e^∓σ for log, × 10^∓σ for log10). σ is known where the noise formula is a number, a
    parameter id (`values`) or a `noiseParameter{n}_{observable}` placeholder whose cell in
    `noiseParameters` is one; NaN (no error bar) for any other formula."""
    table = measurements.reset_index(drop=True)
    pre = table.get(PREEQUILIBRATION_CONDITION_ID, pd.Series("", index=table.index)).fillna("").astype(str)
    condition = table[SIMULATION_CONDITION_ID].astype(str)
    formula = dict(zip(observables[OBSERVABLE_ID].astype(str), observables[NOISE_FORMULA].astype(str).str.strip()))
    transformation = dict(zip(observables[OBSERVABLE_ID].astype(str),
                              observables.get(OBSERVABLE_TRANSFORMATION, pd.Series("lin", index=observables.index))
                              .fillna("lin").astype(str)))
    cells = table.get(NOISE_PARAMETERS, pd.Series("", index=table.index)).fillna("").astype(str)
    observable = table[OBSERVABLE_ID].astype(str)
    sigma = np.array([_sigma(formula[o], o, c, values) for o, c in zip(observable, cells)])
    measured = table[MEASUREMENT].astype(float).to_numpy()
    kind = observable.map(transformation).to_numpy()
    base = np.where(kind == "log", math.e, np.where(kind == "log10", 10.0, np.nan))
    multiplicative = kind != "lin"
    return pd.DataFrame({
        "experiment": np.where(pre != "", pre + " → " + condition, condition), "observableId": observable,
        "time": table[TIME].astype(float), "measurement": measured, "simulation": np.asarray(simulation, dtype=float),
        "sigma": sigma,
        "low": np.where(multiplicative, measured * base ** -sigma, measured - sigma),
        "high": np.where(multiplicative, measured * base ** sigma, measured + sigma)})


def _sigma(formula: str, observable: str, cell: str, values: Mapping[str, float]) -> float:
    """σ of one measurement row (see `fit_table`)."""
    prefix, suffix = "noiseParameter", f"_{observable}"
    if formula.startswith(prefix) and formula.endswith(suffix):
        number = formula[len(prefix): -len(suffix)]
        entries = [e.strip() for e in cell.split(";")] if cell else []
        if not (number.isdigit() and 1 <= int(number) <= len(entries)):
            return math.nan
        formula = entries[int(number) - 1]
    try:
        return float(formula)
    except ValueError:
        return float(values.get(formula, math.nan))


def intervals_table(estimates: pd.DataFrame) -> pd.DataFrame:
    """The selected model's estimates (linear scale), the profiled ones first with their 95 %
    profile interval, its width relative to the estimate and whether it is closed (`identifiable`;
    an open end: the profile reached a bound before dropping by `PROFILE_THRESHOLD`). At most
    `MAX_ROWS` rows."""
    flag = estimates["identifiable"].astype("string").str.lower()
    table = estimates[["parameter", "estimate", "lower_95", "upper_95"]].assign(
        identifiable=flag.map({"true": "yes", "false": "no"}).fillna(""),
        **{"relative width": (estimates["upper_95"] - estimates["lower_95"]) / estimates["estimate"].abs()})
    order = np.lexsort((table["parameter"].to_numpy(dtype=str), flag.isna().to_numpy()))
    return table.iloc[order].reset_index(drop=True).head(MAX_ROWS)


# ------------------------------------------------------------------------------ sensitivity


@dataclass
class SensitivityResults:
    """The Morris and Sobol index tables (`qspflow.sensitivity.COLUMNS`; header only for a method
    not run) and the simulation summary (method, output, samples, failed)."""

    morris: pd.DataFrame
    sobol: pd.DataFrame
    summary: pd.DataFrame


def read_sensitivity(files: Mapping) -> SensitivityResults:
    """The sensitivity report's files: morris, sobol, summary."""
    columns = ["output", "parameter", "index", "value", "ci_low", "ci_high", "converged"]
    return SensitivityResults(morris=read_table(files["morris"], required=columns),
                              sobol=read_table(files["sobol"], required=columns),
                              summary=read_table(files["summary"], required=["method", "output", "samples", "failed"]))


def top_drivers(sobol: pd.DataFrame, morris: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The `n` parameters that drive each output most: ranked by Sobol ST where Sobol was run for
    that output (total effect, interactions included), otherwise by Morris μ*; ties by name. Columns:
    output, rank, parameter, by (the ranking index), ST with its CI, S1, μ*, σ (empty where not run)."""
    indices = {"ST": "ST", "S1": "S1", "mu_star": "μ*", "sigma": "σ"}
    both = pd.concat([sobol, morris], ignore_index=True)
    table = (both[both["index"].isin(list(indices))]
             .pivot_table(index=["output", "parameter"], columns="index", values="value", aggfunc="first", dropna=False)
             .reindex(columns=list(indices)).rename(columns=indices).rename_axis(columns=None))
    st = sobol[sobol["index"] == "ST"].set_index(["output", "parameter"])
    table["ST low"], table["ST high"] = st["ci_low"], st["ci_high"]
    ranked = []
    for _, part in table.reset_index().groupby("output", sort=True):
        by = "ST" if part["ST"].notna().any() else "μ*"
        part = part.assign(by=by, score=part[by].fillna(-math.inf))
        part = part.sort_values(["score", "parameter"], ascending=[False, True]).head(n)
        ranked.append(part.assign(rank=np.arange(1, len(part) + 1)))
    columns = ["output", "rank", "parameter", "by", "ST", "ST low", "ST high", "S1", "μ*", "σ"]
    return pd.concat(ranked, ignore_index=True)[columns].head(MAX_ROWS)


def diagnostics_table(summary: pd.DataFrame, sobol: pd.DataFrame, morris: pd.DataFrame) -> pd.DataFrame:
    """Per method and output: samples, failed simulations (count and share; an output with failures
    gets empty indices) and the indices whose full-sample value fell outside their half-sample CI
    (`converged` false: more samples would move them)."""
    table = summary[["method", "output", "samples", "failed"]].copy()
    table["failed share"] = table["failed"] / table["samples"]
    indices = pd.concat([morris.assign(method="morris"), sobol.assign(method="sobol")], ignore_index=True)
    late = indices[indices["converged"].astype("string").str.lower().eq("false").fillna(False)]
    counts = late.groupby(["method", "output"]).size().rename("not converged")
    table = table.join(counts, on=["method", "output"])
    table["not converged"] = table["not converged"].fillna(0).astype(int)
    return table.sort_values(["method", "output"], ignore_index=True).head(MAX_ROWS)


# ------------------------------------------------------------------------------ virtual population


@dataclass
class VpopResults:
    """The plausible patients, the VPs (each with the plausible patient it is), the fit table, the
    target cohort, and the output and varied-parameter column names."""

    plausible: pd.DataFrame
    vpop: pd.DataFrame
    fit: pd.DataFrame
    target: pd.DataFrame
    outputs: list[str]
    parameters: list[str]


def read_vpop(files: Mapping) -> VpopResults:
    """The vpop report's files: plausible, vpop, fit, target (the cohort)."""
    vpop = read_table(files["vpop"], required=["patient", "plausible"])
    target = read_table(files["target"], required=["patient"])
    outputs = [c for c in target.columns if c != "patient" and c in vpop.columns]
    parameters = [c for c in vpop.columns if c not in ("patient", "plausible", *outputs)]
    return VpopResults(plausible=read_table(files["plausible"], required=["patient", *parameters, *outputs]),
                       vpop=vpop, fit=read_table(files["fit"], required=["output", "ks", "ks_p"]), target=target,
                       outputs=outputs, parameters=parameters)


def acceptance_table(n_candidates: int, plausible: pd.DataFrame, vpop: pd.DataFrame) -> pd.DataFrame:
    """stage, patients, share of candidates, share of the previous stage: the candidates drawn
    (`vpop.n_candidates`), the plausible patients among them, the VPs selected from those."""
    counts = [n_candidates, len(plausible), len(vpop)]
    return pd.DataFrame({"stage": ["candidates", "plausible", "virtual patients"], "patients": counts,
                         "share of candidates": [c / n_candidates for c in counts],
                         "share of previous": [1.0, counts[1] / counts[0], counts[2] / counts[1] if counts[1] else
                                               math.nan]})


def output_fit_table(fit: pd.DataFrame, outputs: Sequence[str]) -> pd.DataFrame:
    """Per output: VP and target size, KS statistic and p-value (`matches`: p ≥ 0.05), means, SDs."""
    table = fit[fit["output"].isin(list(outputs))]
    return table[["output", "n_vp", "n_target", "ks", "ks_p", "matches", "vp_mean", "target_mean", "vp_sd",
                  "target_sd"]].reset_index(drop=True)


def correlation_table(fit: pd.DataFrame, outputs: Sequence[str]) -> pd.DataFrame:
    """Per pair of outputs: the VP and target Pearson correlations and their difference."""
    table = fit[~fit["output"].isin(list(outputs))]
    return table[["output", "vp_corr", "target_corr", "corr_diff"]].rename(columns={"output": "pair"}) \
        .reset_index(drop=True).head(MAX_ROWS)


def options_table(section: Mapping, skip: Sequence[str] = ()) -> pd.DataFrame:
    """A config section as key, value rows (nested values as compact text), but the `skip` keys."""
    return pd.DataFrame([(key, _text(value)) for key, value in section.items() if key not in skip],
                        columns=["key", "value"]).head(MAX_ROWS)


def outputs_table(outputs: Sequence[Mapping]) -> pd.DataFrame:
    """The outputs of a `sensitivity:` or `vpop:` section, one row each (a key an output lacks: empty)."""
    keys = list(dict.fromkeys(key for output in outputs for key in output))
    return pd.DataFrame([[_text(output.get(key)) for key in keys] for output in outputs], columns=keys).head(MAX_ROWS)


def _text(value: object) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(f"({_text(v)})" if isinstance(v, Mapping) else _text(v) for v in value)
    return "" if value is None else str(value)
