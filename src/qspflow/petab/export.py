"""A study's PEtab problem: its tables built from the model and the prepare step's tables, and its
files as text, linted.

`build_problem` turns a study (model, the prepare step's measurements, the experiment table)
into `PetabTables`; `problem_files` gives the problem's files as {file name: text} (canonical
TSV, floats as their shortest exact text, so the same problem always gives the same bytes);
`write_problem` writes them into a folder and runs the PEtab linter there. Where the folder goes
is the caller's business (`qspflow.steps` stages it and puts it in place only when it is clean).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import petab.v1 as petab_v1
from petab.v1 import C

from qspflow.errors import PetabError
from qspflow.io import table_text, write_text
from qspflow.model import OdeModel
from qspflow.model.sbml import sbml_text
from qspflow.petab.problem import lint

# (scale, lower, upper, nominal) of the parameters build_problem adds. They suit data on the
# scale of the model's states (Odefy activities in [0, 1]); σ follows the design's noise model.
SCALE_PARAMETER = (C.LOG10, 1e-3, 1e3, 1.0)
OFFSET_PARAMETER = (C.LIN, -1.0, 1.0, 0.0)
SIGMA_PARAMETER = (C.LOG10, 1e-3, 1.0, 0.1)
# Python's shortest round-trip text (repr): reads back as the same float, and canonical.
EXACT_FLOAT = ""
PROBLEM_FILES = {
    "conditions": "conditions.tsv",
    "measurements": "measurements.tsv",
    "observables": "observables.tsv",
    "parameters": "parameters.tsv",
}
MODEL_FILE = "model.sbml"
PROBLEM_YAML = (
    f"{C.FORMAT_VERSION}: 1\n"
    f"{C.PARAMETER_FILE}: {PROBLEM_FILES['parameters']}\n"
    f"{C.PROBLEMS}:\n"
    f"- {C.CONDITION_FILES}: [{PROBLEM_FILES['conditions']}]\n"
    f"  {C.MEASUREMENT_FILES}: [{PROBLEM_FILES['measurements']}]\n"
    f"  {C.OBSERVABLE_FILES}: [{PROBLEM_FILES['observables']}]\n"
    f"  {C.SBML_FILES}: [{MODEL_FILE}]\n"
)
_PETAB_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPERIMENTS = "experiment table"
_MEASUREMENTS = "measurement table"


@dataclass
class PetabTables:
    """A study's PEtab tables in canonical order, as `problem_files` writes them.

    `name` becomes the id of the SBML model written beside them.
    """

    name: str
    conditions: pd.DataFrame
    measurements: pd.DataFrame
    observables: pd.DataFrame
    parameters: pd.DataFrame


def build_problem(model: OdeModel, measurements: pd.DataFrame, experiments: pd.DataFrame, *,
                  observables: Sequence[str], observable_model: str = "direct", noise: str = "data",
                  drug_parameter: Mapping[str, str] | None = None, name: str = "model") -> PetabTables:
    """The PEtab tables of a study: `model` against the prepare step's tables.

    `measurements` is the tidy table (experiment, time, observable, value, sd; a `normalized`
    column is ignored) and `experiments` the experiment table (experiment, `stimulus:<node>`,
    `inhibitor:<node>`, `dose:<drug>`). Error messages number their rows as file lines (header
    = row 1), so the frames should be in file order.

    - Conditions: one per experiment, conditionId = experiment id; `stimulus:<node>` sets
      `input_<node>`, `inhibitor:<node>` sets `inh_<node>` and `dose:<drug>` sets
      `drug_parameter[column]` (default `dose_<drug>`); each must be a model parameter.
    - Observables: `obs_<node>` for each node of `observables` (a model state); rows of other
      observables and rows without a value are left out. `observable_model` "direct" is y = x,
      "scaled" y = scale_obs_<node>·x + offset_obs_<node>; `noise` "data" takes σ from the `sd`
      column (the rows' noiseParameters), "estimate" one σ = sigma_obs_<node> per observable.
      Noise is normal on the linear scale; no preequilibration. (Both options are the study config's
      `convert.observable_model` and `convert.noise`, checked by `qspflow.convert.options`.)
    - Parameters: every model parameter that no condition sets (scale, bounds, nominal value and
      estimate flag from the model) and the observables' scale/offset/σ (estimated; scale,
      bounds and nominal value from `SCALE_PARAMETER`, `OFFSET_PARAMETER`, `SIGMA_PARAMETER`).

    Raises `PetabError` naming the table, row, column or key at fault.
    """
    nodes = sorted(set(observables))
    for node in nodes:
        if node not in model.states:
            raise PetabError(None, key="observables", element=node, expected=f"a state of model '{model.name}'")
    conditions = _condition_table(model, experiments, drug_parameter or {})
    data = _measurement_table(measurements, conditions[C.CONDITION_ID], nodes, noise)
    return PetabTables(name, conditions, data, _observable_table(nodes, observable_model, noise),
                       _parameter_table(model, conditions.columns, nodes, observable_model, noise))


def problem_files(tables: PetabTables, model: OdeModel, *, yaml_name: str = "problem.yaml") -> dict[str, str]:
    """The problem's files as {file name: text}: the YAML (`yaml_name`), the model's SBML and the four
    tables, all named relative to each other (one folder)."""
    files = {yaml_name: PROBLEM_YAML, MODEL_FILE: sbml_text(dataclasses.replace(model, name=tables.name))}
    for kind, file_name in PROBLEM_FILES.items():
        files[file_name] = table_text(getattr(tables, kind), float_format=EXACT_FLOAT)
    return files


def write_problem(tables: PetabTables, model: OdeModel, folder: str | Path, *, yaml_name: str = "problem.yaml",
                  source: str | Path | None = None) -> None:
    """Write the problem's files (`problem_files`) into `folder` and lint them there.

    A problem that fails the linter raises `PetabError` naming `source` (default: the YAML in
    `folder`); give a staging folder and the final path as `source` to put only a clean problem
    in place.
    """
    folder = Path(folder)
    source = folder / yaml_name if source is None else source
    for file_name, text in problem_files(tables, model, yaml_name=yaml_name).items():
        write_text(text, folder / file_name)
    try:
        problem = petab_v1.Problem.from_yaml(folder / yaml_name)
    except (OSError, ValueError, KeyError) as exc:
        raise PetabError(source, message=f"cannot read the problem: {exc}") from exc
    lint(problem, source)


def _condition_table(model: OdeModel, experiments: pd.DataFrame,
                     drug_parameter: Mapping[str, str]) -> pd.DataFrame:
    """One row per experiment: conditionId, then the condition parameters in sorted order."""
    if "experiment" not in experiments:
        raise PetabError(_EXPERIMENTS, column="experiment", expected="a required column", message="missing")
    factors = [c for c in experiments.columns if c != "experiment"]
    for column in drug_parameter:
        if column not in factors or not column.startswith("dose:"):
            raise PetabError(None, key="drug_parameter", element=column,
                             expected="a dose:<drug> column of the experiment table")
    columns: dict[str, np.ndarray] = {}
    for column in factors:
        kind, _, target = column.partition(":")
        default = {"stimulus": f"input_{target}", "inhibitor": f"inh_{target}", "dose": f"dose_{target}"}
        if kind not in default or not target:
            raise PetabError(_EXPERIMENTS, column=column,
                             expected="factor columns stimulus:<node>, inhibitor:<node> or dose:<drug>")
        parameter = drug_parameter.get(column, default[kind])
        if parameter not in model.parameters:
            raise PetabError(_EXPERIMENTS, column=column, expected=f"model parameter '{parameter}'",
                             message=f"model '{model.name}' has no such parameter")
        if parameter in columns:
            raise PetabError(_EXPERIMENTS, column=column, expected="one column per model parameter",
                             message=f"another column also sets '{parameter}'")
        columns[parameter] = experiments[column].astype(float).to_numpy()
    ids = experiments["experiment"].astype(str).reset_index(drop=True)
    for position, experiment in enumerate(ids):
        if not _PETAB_ID.match(experiment):
            raise PetabError(_EXPERIMENTS, row=position + 2, column="experiment", found=experiment,
                             expected="a PEtab id (letters, digits, '_'; not starting with a digit)")
    repeated = np.flatnonzero(ids.duplicated().to_numpy())
    if len(repeated):
        raise PetabError(_EXPERIMENTS, row=int(repeated[0]) + 2, column="experiment", found=ids[repeated[0]],
                         expected="one row per experiment")
    table = pd.DataFrame({C.CONDITION_ID: ids.to_numpy(), **{p: columns[p] for p in sorted(columns)}})
    return table.sort_values(C.CONDITION_ID).reset_index(drop=True)


def _measurement_table(measurements: pd.DataFrame, conditions: pd.Series, nodes: Sequence[str],
                       noise: str) -> pd.DataFrame:
    """The measured values of `nodes`, sorted by condition, observable, time and value."""
    required = ["experiment", "time", "observable", "value"] + (["sd"] if noise == "data" else [])
    for column in required:
        if column not in measurements:
            raise PetabError(_MEASUREMENTS, column=column, expected="a required column", message="missing")
    frame = measurements.reset_index(drop=True)
    known = set(conditions)
    for position, experiment in enumerate(frame["experiment"].astype(str)):
        if experiment not in known:
            raise PetabError(_MEASUREMENTS, row=position + 2, column="experiment", found=experiment,
                             expected="an experiment of the experiment table")
    kept = frame[frame["observable"].isin(nodes) & frame["value"].notna()]
    for node in nodes:
        if not (kept["observable"] == node).any():
            raise PetabError(_MEASUREMENTS, column="observable", expected=f"values of observable '{node}'",
                             message="it is listed in observables")
    table = pd.DataFrame({
        C.OBSERVABLE_ID: ("obs_" + kept["observable"].astype(str)).to_numpy(),
        C.SIMULATION_CONDITION_ID: kept["experiment"].astype(str).to_numpy(),
        C.TIME: kept["time"].astype(float).to_numpy(),
        C.MEASUREMENT: kept["value"].astype(float).to_numpy(),
    })
    if noise == "data":
        sd = kept["sd"].astype(float)
        bad = ~(np.isfinite(sd) & (sd > 0))
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise PetabError(_MEASUREMENTS, row=int(kept.index[position]) + 2, column="sd",
                             expected="a standard deviation > 0 (noise 'data')", found=sd.iloc[position])
        table[C.NOISE_PARAMETERS] = sd.to_numpy()
    order = [C.SIMULATION_CONDITION_ID, C.OBSERVABLE_ID, C.TIME, C.MEASUREMENT]
    return table.sort_values(order, kind="stable").reset_index(drop=True)


def _observable_table(nodes: Sequence[str], observable_model: str, noise: str) -> pd.DataFrame:
    rows = []
    for node in nodes:
        oid = f"obs_{node}"
        formula = node if observable_model == "direct" else f"scale_{oid} * {node} + offset_{oid}"
        sigma = f"noiseParameter1_{oid}" if noise == "data" else f"sigma_{oid}"
        rows.append((oid, formula, sigma, C.LIN, C.NORMAL))
    return pd.DataFrame(rows, columns=[C.OBSERVABLE_ID, C.OBSERVABLE_FORMULA, C.NOISE_FORMULA,
                                       C.OBSERVABLE_TRANSFORMATION, C.NOISE_DISTRIBUTION])


def _parameter_table(model: OdeModel, condition_columns: Sequence[str], nodes: Sequence[str],
                     observable_model: str, noise: str) -> pd.DataFrame:
    """Model parameters that no condition sets (PEtab forbids both) and observable parameters, by id."""
    rows = []
    for name in sorted(set(model.parameters) - set(condition_columns)):
        p = model.parameters[name]
        if not p.lower <= p.value <= p.upper:
            raise PetabError(f"model '{model.name}'", element=name, found=p.value,
                             expected=f"a nominal value within the bounds [{p.lower:g}, {p.upper:g}]")
        rows.append((name, p.scale, p.lower, p.upper, p.value, int(p.estimate)))
    for node in nodes:
        if observable_model == "scaled":
            rows += [(f"scale_obs_{node}", *SCALE_PARAMETER, 1), (f"offset_obs_{node}", *OFFSET_PARAMETER, 1)]
        if noise == "estimate":
            rows.append((f"sigma_obs_{node}", *SIGMA_PARAMETER, 1))
    table = pd.DataFrame(sorted(rows), columns=[C.PARAMETER_ID, C.PARAMETER_SCALE, C.LOWER_BOUND, C.UPPER_BOUND,
                                                C.NOMINAL_VALUE, C.ESTIMATE])
    return table.astype({C.LOWER_BOUND: float, C.UPPER_BOUND: float, C.NOMINAL_VALUE: float, C.ESTIMATE: int})
