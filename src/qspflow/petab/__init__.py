"""PEtab (v1) problems on an `OdeModel`: export, loading, simulation tables, log-likelihood.

`build_problem` turns a study (model, the prepare step's measurements, the experiment table)
into PEtab tables, `write_problem` writes them with the model's SBML as a linted, canonical
problem folder.

`load_problem` reads the YAML, checks what qspflow relies on itself (required columns, known
observable and condition ids, nominal values within bounds), runs the PEtab linter, reads the
SBML model and applies the parameter table (value, bounds, scale, estimate) onto it.

Simulation follows PEtab semantics: a condition's columns override parameters, compartment
sizes or species initial values (NaN keeps the model's value; a parameter id stands for its
value); a preequilibration condition is simulated to steady state, and the simulation
condition continues from that state, its species columns overriding where given. Observable
and noise formulas have their `observableParameter{n}_{id}` / `noiseParameter{n}_{id}`
placeholders filled per measurement row.

Integration is one function, `_integrate` (scipy `solve_ivp`, LSODA, rtol 1e-10, atol 1e-12,
restarted at breakpoints), so that a compiled simulator can take its place.

Table rows in error messages are numbered as lines of the file: the header is row 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import petab.v1 as petab_v1
import sympy
from petab.v1.math import sympify_petab
from scipy.integrate import solve_ivp

from qspflow.errors import PetabError
from qspflow.io import write_table, write_text
from qspflow.model import SCALES, TIME, OdeModel, Parameter
from qspflow.model.sbml import read_sbml, write_sbml

log = logging.getLogger(__name__)

RTOL = 1e-10
ATOL = 1e-12
STEADY_STATE_TOLERANCE = 1e-8  # |dx/dt| · t ≤ tol · (|x| + atol): the rate no longer moves x
REQUIRED_COLUMNS = {
    "condition_files": ("conditionId",),
    "measurement_files": ("observableId", "simulationConditionId", "measurement", "time"),
    "observable_files": ("observableId", "observableFormula", "noiseFormula"),
    "parameter_file": ("parameterId", "parameterScale", "lowerBound", "upperBound", "nominalValue", "estimate"),
}


@dataclass
class Observable:
    """One observable-table row; formulas in model symbols and this observable's placeholders."""

    id: str
    formula: sympy.Expr
    noise: sympy.Expr
    transformation: str
    distribution: str
    observable_placeholders: tuple[sympy.Symbol, ...]
    noise_placeholders: tuple[sympy.Symbol, ...]


@dataclass
class PetabProblem:
    """A loaded PEtab problem: the model (parameter table applied), the tables, the observables.

    `parameters` holds every parameter-table row; those that are model parameters are the same
    objects as in `model.parameters`, the others (noise, scaling) only appear in formulas.
    """

    path: Path
    model: OdeModel
    parameters: dict[str, Parameter]
    observables: dict[str, Observable]
    condition_table: pd.DataFrame
    measurement_table: pd.DataFrame
    observable_table: pd.DataFrame
    parameter_table: pd.DataFrame
    files: dict[str, str]  # table kind ("measurement_files", …) → file name(s), for messages


# ----------------------------------------------------------------------------------- loading


def load_problem(yaml_path: str | Path) -> PetabProblem:
    """Load, check and lint a PEtab v1 problem (one SBML model) into a `PetabProblem`."""
    yaml_path = Path(yaml_path)
    try:
        config = petab_v1.yaml.load_yaml(yaml_path)
    except (OSError, ValueError) as exc:
        raise PetabError(yaml_path, expected="a PEtab YAML file", message=str(exc)) from exc
    if str(config.get("format_version")) != "1" or len(config.get("problems", [])) != 1:
        raise PetabError(yaml_path, key="format_version",
                         expected="PEtab format version 1 with exactly one problem")
    entry = config["problems"][0]
    if len(entry.get("sbml_files", [])) != 1:
        raise PetabError(yaml_path, key="sbml_files", expected="exactly one SBML file")
    folder = yaml_path.parent
    files = {"parameter_file": str(folder / config["parameter_file"])}
    for kind in ("condition_files", "measurement_files", "observable_files"):
        files[kind] = ", ".join(str(folder / name) for name in entry.get(kind, []))
        for name in entry.get(kind, []):
            _check_columns(folder / name, kind)
    _check_columns(folder / config["parameter_file"], "parameter_file")

    try:
        problem = petab_v1.Problem.from_yaml(yaml_path)
    except (OSError, ValueError, KeyError) as exc:
        raise PetabError(yaml_path, message=f"cannot read the problem: {exc}") from exc
    _check_ids(problem, files)
    parameters = _parameters(problem.parameter_df, files["parameter_file"])
    _lint(problem, yaml_path)

    model = read_sbml(folder / entry["sbml_files"][0])
    for name, parameter in parameters.items():
        if name in model.parameters:
            model.parameters[name] = parameter
    for column in problem.condition_df.columns.drop("conditionName", errors="ignore"):
        if column not in model.parameters and column not in model.states:
            raise PetabError(files["condition_files"], column=column,
                             expected="a model parameter, compartment or species id")
    observables = _observables(problem.observable_df, model, parameters, files["observable_files"])
    model.check_start(source=str(folder / entry["sbml_files"][0]))
    return PetabProblem(yaml_path, model, parameters, observables, problem.condition_df,
                        problem.measurement_df, problem.observable_df, problem.parameter_df, files)


def _check_columns(path: Path, kind: str) -> None:
    try:
        header = pd.read_csv(path, sep="\t", nrows=0).columns
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PetabError(path, expected="a PEtab table (TSV)", message=str(exc)) from exc
    for column in REQUIRED_COLUMNS[kind]:
        if column not in header:
            raise PetabError(path, column=column, expected="a required column", message="missing")


def _check_ids(problem: petab_v1.Problem, files: Mapping[str, str]) -> None:
    """Measurements name known observables and conditions (checked here to name the row)."""
    known = {
        "observableId": set(problem.observable_df.index),
        "simulationConditionId": set(problem.condition_df.index),
        "preequilibrationConditionId": set(problem.condition_df.index),
    }
    table = problem.measurement_df
    for column, ids in known.items():
        if column not in table:
            continue
        kind = "observable" if column == "observableId" else "condition"
        for position, value in enumerate(table[column]):
            if not is_missing(value) and value not in ids:
                raise PetabError(files["measurement_files"], row=position + 2, column=column,
                                 expected=f"an id from the {kind} table", found=value)


# Priors that are constant within the bounds leave the maximum-likelihood estimate unchanged.
FLAT_PRIORS = ("uniform", "parameterScaleUniform")


def _parameters(table: pd.DataFrame, source: str) -> dict[str, Parameter]:
    """Parameter-table rows as `Parameter`s (values and bounds on linear scale)."""
    parameters = {}
    for position, (name, row) in enumerate(table.iterrows()):
        lower, upper, nominal = (float(row[c]) for c in ("lowerBound", "upperBound", "nominalValue"))
        lower = -math.inf if math.isnan(lower) else lower
        upper = math.inf if math.isnan(upper) else upper
        scale = str(row["parameterScale"])
        if scale not in SCALES:
            raise PetabError(source, row=position + 2, column="parameterScale", element=name,
                             expected=f"one of {SCALES}", found=scale)
        if not lower <= nominal <= upper and not math.isnan(nominal):
            raise PetabError(source, row=position + 2, column="nominalValue", element=name,
                             expected=f"a value within the bounds [{lower:g}, {upper:g}]", found=nominal)
        estimate = bool(int(row["estimate"]))
        prior = row.get("objectivePriorType")
        if estimate and not is_missing(prior) and str(prior) not in FLAT_PRIORS:
            raise PetabError(source, row=position + 2, column="objectivePriorType", element=name, found=prior,
                             expected=f"no prior or a flat one ({', '.join(FLAT_PRIORS)}): the objective is "
                                      "the likelihood, priors are not implemented")
        parameters[name] = Parameter(name, nominal, lower, upper, scale, estimate)
    return parameters


def _observables(table: pd.DataFrame, model: OdeModel, parameters: Mapping[str, Parameter],
                 source: str) -> dict[str, Observable]:
    """Observable-table rows with formulas in model symbols (expressions substituted)."""
    names: dict[str, sympy.Expr] = {n: model.symbol(n) for n in [*model.states, *model.parameters, *parameters]}
    names |= model.expressions
    names["time"] = TIME
    observables = {}
    for position, (oid, row) in enumerate(table.iterrows()):
        where = {"source": source, "row": position + 2, "element": oid}
        value, value_holders = _formula(str(row["observableFormula"]), "observableParameter", oid, names,
                                        column="observableFormula", **where)
        noise, noise_holders = _formula(str(row["noiseFormula"]), "noiseParameter", oid, names,
                                        column="noiseFormula", **where)
        transformation = _text(row.get("observableTransformation"), "lin")  # values checked by the linter
        distribution = _text(row.get("noiseDistribution"), "normal")
        observables[oid] = Observable(oid, value, noise, transformation, distribution,
                                      value_holders, noise_holders)
    return observables


def _formula(text: str, prefix: str, oid: str, names: Mapping[str, sympy.Expr], *, source: str, row: int,
             column: str, element: str) -> tuple[sympy.Expr, tuple[sympy.Symbol, ...]]:
    """A PEtab formula over `names`, and its placeholders `{prefix}{n}_{oid}` ordered by n."""
    holder = re.compile(rf"^{prefix}(\d+)_{re.escape(oid)}$")
    expr = sympify_petab(text)
    mapping, holders = {}, []
    for symbol in expr.free_symbols:
        if symbol.name in names:
            mapping[symbol] = names[symbol.name]
        elif holder.match(symbol.name):
            mapping[symbol] = sympy.Symbol(symbol.name, real=True)
            holders.append(mapping[symbol])
        else:
            raise PetabError(source, row=row, column=column, element=element,
                             message=f"undefined symbol '{symbol.name}'")
    holders.sort(key=lambda s: int(holder.match(s.name).group(1)))
    return expr.xreplace(mapping), tuple(holders)


def _lint(problem: petab_v1.Problem, source: str | Path) -> None:
    """Run the PEtab linter; its error messages become one `PetabError` naming `source`."""
    with _captured("petab") as messages:
        try:
            failed = petab_v1.lint_problem(problem)
        except (AssertionError, ValueError, KeyError) as exc:  # some checks raise instead of logging
            messages.append(str(exc))
            failed = True
    if failed:
        summary = [m for m in messages if m != "Not OK"]  # the linter's closing line adds nothing
        raise PetabError(source, message="PEtab lint failed: " + "; ".join(summary))


@contextlib.contextmanager
def _captured(logger_name: str) -> Iterator[list[str]]:
    """Collect the error messages a library logs (the PEtab linter reports through logging)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.ERROR)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def is_missing(value: object) -> bool:
    """An empty PEtab table cell (NaN, None or empty text)."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _text(value: object, default: str) -> str:
    return default if is_missing(value) else str(value)


# -------------------------------------------------------------------------------- simulation


class NumericModel:
    """An OdeModel's right-hand side, Jacobian and initial values as Python functions.

    Lambdified once per model and reused across conditions (`simulate_condition(numeric=…)`).
    """

    def __init__(self, model: OdeModel) -> None:
        self.model = model
        self.parameters = list(model.parameters)
        xs, ps = model.state_symbols, model.parameter_symbols
        rhs = [sympy.sympify(model.rhs[s]) for s in model.states]
        self.rhs = sympy.lambdify((TIME, xs, ps), rhs, modules="math", cse=True)
        jacobian = sympy.Matrix(rhs).jacobian(xs).tolist()
        self._jac = sympy.lambdify((TIME, xs, ps), jacobian, modules="math", cse=True)
        initial = [sympy.sympify(model.initial[s]).xreplace({TIME: 0}) for s in model.states]
        self.initial = sympy.lambdify((ps,), initial, modules="math")

    def jac(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """The Jacobian, with derivatives that are not finite where the rhs is not differentiable
        (d|x|^h/dx at x = 0: 0/0 in sympy's form) set to 0, as the compiled simulator does."""
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = np.array(self._jac(t, x, p), dtype=float)
        matrix[~np.isfinite(matrix)] = 0.0
        return matrix

    def vector(self, values: Mapping[str, float]) -> np.ndarray:
        """Parameter values in model order; those not given keep `Parameter.value`."""
        return np.array([float(values.get(n, self.model.parameters[n].value)) for n in self.parameters])


class SimulationFailure(Exception):
    """The integrator did not reach the end (`simulate_problem` records NaN and goes on)."""


def _integrate(numeric: NumericModel, p: np.ndarray, x0: np.ndarray, times: np.ndarray,
               breakpoints: Sequence[float], *, t0: float = 0.0, rtol: float = RTOL,
               atol: float = ATOL) -> np.ndarray:
    """States at `times` (≥ t0, sorted) from x(t0) = x0, restarting at each breakpoint.

    This is the one integrator call of the module: a compiled simulator replaces it here.
    """
    out = np.empty((len(times), len(x0)))
    end = float(times[-1]) if len(times) else t0
    edges = [t0, *(b for b in breakpoints if t0 < b < end), end]
    x = np.asarray(x0, dtype=float)
    done = 0
    for a, b in zip(edges, edges[1:]):
        here = times[done:][times[done:] <= b]
        if b > a:
            t_eval = np.unique(np.append(here, b))
            try:
                sol = solve_ivp(lambda t, y: numeric.rhs(t, y, p), (a, b), x, method="LSODA", t_eval=t_eval,
                                rtol=rtol, atol=atol, jac=lambda t, y: numeric.jac(t, y, p))
            except (ArithmeticError, ValueError) as exc:
                raise SimulationFailure(str(exc)) from exc
            if sol.status != 0:
                raise SimulationFailure(sol.message)
            out[done:done + len(here)] = sol.y[:, np.searchsorted(t_eval, here)].T
            x = sol.y[:, -1]
        else:
            out[done:done + len(here)] = x
        done += len(here)
    out[done:] = x  # times equal to t0 only
    return out


def _steady_state(numeric: NumericModel, p: np.ndarray, x0: np.ndarray, breakpoints: Sequence[float], *,
                  rtol: float, atol: float) -> np.ndarray:
    """Integrate over growing horizons (1, 10, …, 1e12) until the rate no longer moves x."""
    x, t = np.asarray(x0, dtype=float), 0.0
    for end in 10.0 ** np.arange(13):
        x = _integrate(numeric, p, x, np.array([end]), breakpoints, t0=t, rtol=rtol, atol=atol)[0]
        t = end
        rate = np.abs(np.asarray(numeric.rhs(t, x, p), dtype=float))
        if np.all(rate * t <= STEADY_STATE_TOLERANCE * (np.abs(x) + atol)):
            return x
    raise SimulationFailure("no steady state reached by t = 1e12")


def simulate_condition(model: OdeModel, parameter_values: Mapping[str, float], times: Sequence[float], *,
                       initial_values: Mapping[str, float] | None = None, numeric: NumericModel | None = None,
                       rtol: float = RTOL, atol: float = ATOL) -> np.ndarray:
    """States of one condition (rows: `times`, columns: `model.states`) from time 0.

    `parameter_values` override `Parameter.value` by name; `initial_values` override x(0) by
    state name; a time of `inf` means the steady state. Raises `SimulationFailure`.
    """
    numeric = numeric or NumericModel(model)
    p = numeric.vector(parameter_values)
    x0 = np.array(numeric.initial(p), dtype=float)
    for name, value in (initial_values or {}).items():
        x0[model.states.index(name)] = value
    breakpoints = model.breakpoints(dict(zip(numeric.parameters, p)))
    times = np.asarray(times, dtype=float)
    finite = np.unique(times[np.isfinite(times)])
    states = _integrate(numeric, p, x0, finite, breakpoints, rtol=rtol, atol=atol)
    out = np.full((len(times), len(model.states)), np.nan)
    out[np.isfinite(times)] = states[np.searchsorted(finite, times[np.isfinite(times)])]
    if np.isinf(times).any():
        out[np.isinf(times)] = _steady_state(numeric, p, x0, breakpoints, rtol=rtol, atol=atol)
    return out


# --------------------------------------------------------------------- simulation table, llh


def simulate_problem(problem: PetabProblem, parameters: Mapping[str, float] | None = None) -> pd.DataFrame:
    """A PEtab simulation table: the measurement table with `simulation` for `measurement`.

    `parameters` (parameter id → value on linear scale) override nominal values. A condition
    whose integration fails gets NaN simulations (logged), so one stiff case is not fatal.
    """
    simulation, _ = _evaluate(problem, parameters)
    table = problem.measurement_table.rename(columns={"measurement": "simulation"})
    table["simulation"] = simulation
    return table


def log_likelihood(problem: PetabProblem, parameters: Mapping[str, float] | None = None) -> float:
    """Σ log p(measurement | simulation, σ) over all rows.

    normal: −½[log(2πσ²) + r²/σ²], laplace: −[log(2σ) + |r|/σ]; for log/log10 transformations
    r is the difference of the transformed values and the Jacobian term −log(m) (−log(m·ln 10))
    keeps the density in measurement units (as AMICI does). −inf when a term is not finite
    (a failed simulation, a non-positive value under a log transformation, σ ≤ 0).
    """
    simulation, sigma = _evaluate(problem, parameters)
    observables = [problem.observables[oid] for oid in problem.measurement_table["observableId"]]
    m = problem.measurement_table["measurement"].to_numpy(dtype=float)
    transformation = np.array([o.transformation for o in observables])
    laplace = np.array([o.distribution == "laplace" for o in observables])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.select([transformation == "log", transformation == "log10"],
                      [np.log(m) - np.log(simulation), np.log10(m) - np.log10(simulation)], m - simulation)
        jacobian = np.select([transformation == "log", transformation == "log10"],
                             [np.log(m), np.log(m * np.log(10))], 0.0)
        terms = np.where(laplace, -(np.log(2 * sigma) + np.abs(r) / sigma),
                         -0.5 * (np.log(2 * np.pi * sigma**2) + (r / sigma) ** 2)) - jacobian
    total = float(np.sum(terms))
    return total if math.isfinite(total) else -math.inf


def _evaluate(problem: PetabProblem, parameters: Mapping[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Simulated observable and σ per measurement row."""
    model = problem.model
    values = {name: p.value for name, p in model.parameters.items()}
    values.update({name: p.value for name, p in problem.parameters.items()})
    for name, value in (parameters or {}).items():
        if name not in values:
            raise PetabError(problem.files["parameter_file"], element=name, message="unknown parameter id")
        values[name] = float(value)
    numeric = NumericModel(model)
    extra = [n for n in problem.parameters if n not in model.parameters]
    table = problem.measurement_table
    pre = table.get("preequilibrationConditionId", pd.Series("", index=table.index)).map(lambda v: _text(v, ""))
    sim = table["simulationConditionId"]
    times = table["time"].astype(float).to_numpy()
    simulation = np.full(len(table), np.nan)
    sigma = np.full(len(table), np.nan)
    functions = {oid: _observable_functions(o, model, extra) for oid, o in problem.observables.items()}

    for pre_id, sim_id in dict.fromkeys(zip(pre, sim)):
        rows = np.flatnonzero((pre == pre_id).to_numpy() & (sim == sim_id).to_numpy())
        p_values, x_values = _condition(problem, sim_id, values)
        try:
            if pre_id:
                pre_p, pre_x = _condition(problem, pre_id, values)
                steady = simulate_condition(model, pre_p, [math.inf], initial_values=pre_x, numeric=numeric)[0]
                x_values = {**dict(zip(model.states, steady)), **x_values}
            states = simulate_condition(model, p_values, times[rows], initial_values=x_values, numeric=numeric)
        except SimulationFailure as exc:
            condition = f"{pre_id} → {sim_id}" if pre_id else sim_id
            log.warning("condition %s: simulation failed (%s)", condition, exc)
            continue
        p = numeric.vector(p_values)
        q = [values[n] for n in extra]
        for row, x in zip(rows, states):
            observable = problem.observables[table["observableId"].iat[row]]
            value, noise = functions[observable.id]
            own = _replacements(problem, row, "observableParameters", observable.observable_placeholders,
                                values)
            simulation[row] = value(times[row], x, p, q, own)
            own = _replacements(problem, row, "noiseParameters", observable.noise_placeholders, values)
            sigma[row] = noise(times[row], x, p, q, own)
    return simulation, sigma


def _observable_functions(observable: Observable, model: OdeModel, extra: Sequence[str]) -> tuple:
    """(value, noise) as functions of (t, x, p, extra parameters, placeholder values)."""
    xs, ps = model.state_symbols, model.parameter_symbols
    qs = [model.symbol(n) for n in extra]
    value = sympy.lambdify((TIME, xs, ps, qs, observable.observable_placeholders), observable.formula,
                           modules="math")
    noise = sympy.lambdify((TIME, xs, ps, qs, observable.noise_placeholders), observable.noise,
                           modules="math")
    return value, noise


def condition_cells(problem: PetabProblem, condition_id: str) -> list[tuple[str, object]]:
    """The (column, cell) pairs a condition sets: model parameter or species id, number or parameter id."""
    row = problem.condition_table.loc[condition_id]
    return [(column, raw) for column, raw in row.drop("conditionName", errors="ignore").items()
            if not is_missing(raw)]


def replacement_cells(problem: PetabProblem, row: int, column: str, count: int) -> list[str]:
    """The ';'-separated cells of a measurement row's `observableParameters`/`noiseParameters`,
    checked against the `count` placeholders of its observable."""
    table = problem.measurement_table
    raw = table[column].iat[row] if column in table else math.nan
    entries = petab_v1.split_parameter_replacement_list(raw)
    if len(entries) != count:
        raise PetabError(problem.files["measurement_files"], row=row + 2, column=column,
                         expected=f"{count} value(s) separated by ';'", found=raw)
    return entries


def _condition(problem: PetabProblem, condition_id: str, values: Mapping[str, float]) -> tuple[dict, dict]:
    """(parameter values, state initial values) under one condition of the condition table."""
    parameters = dict(values)
    states = {}
    for column, raw in condition_cells(problem, condition_id):
        value = _value(raw, values, problem.files["condition_files"], column)
        if math.isnan(value):
            continue
        (states if column in problem.model.states else parameters)[column] = value
    return parameters, states


def _replacements(problem: PetabProblem, row: int, column: str, placeholders: Sequence[sympy.Symbol],
                  values: Mapping[str, float]) -> list[float]:
    """The numbers a measurement row gives for an observable's placeholders."""
    entries = replacement_cells(problem, row, column, len(placeholders))
    return [_value(e, values, problem.files["measurement_files"], column) for e in entries]


def _value(raw: object, values: Mapping[str, float], source: str, column: str) -> float:
    """A table cell that is a number or a parameter id."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            if raw not in values:
                raise PetabError(source, column=column, expected="a number or a parameter id",
                                 found=raw) from None
            return values[raw]
    return float(raw)


# ------------------------------------------------------------------------------------ export

OBSERVABLE_MODELS = ("direct", "scaled")
NOISE_MODELS = ("data", "estimate")
# (scale, lower, upper, nominal) of the parameters build_problem adds. They suit data on the
# scale of the model's states (Odefy activities in [0, 1]); σ follows the design's noise model.
SCALE_PARAMETER = ("log10", 1e-3, 1e3, 1.0)
OFFSET_PARAMETER = ("lin", -1.0, 1.0, 0.0)
SIGMA_PARAMETER = ("log10", 1e-3, 1.0, 0.1)
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
    "format_version: 1\n"
    f"parameter_file: {PROBLEM_FILES['parameters']}\n"
    "problems:\n"
    f"- condition_files: [{PROBLEM_FILES['conditions']}]\n"
    f"  measurement_files: [{PROBLEM_FILES['measurements']}]\n"
    f"  observable_files: [{PROBLEM_FILES['observables']}]\n"
    f"  sbml_files: [{MODEL_FILE}]\n"
)
_PETAB_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPERIMENTS = "experiment table"
_MEASUREMENTS = "measurement table"


@dataclass
class PetabTables:
    """A study's PEtab tables in canonical order, as `write_problem` writes them.

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
      Noise is normal on the linear scale; no preequilibration.
    - Parameters: every model parameter that no condition sets (scale, bounds, nominal value and
      estimate flag from the model) and the observables' scale/offset/σ (estimated; scale,
      bounds and nominal value from `SCALE_PARAMETER`, `OFFSET_PARAMETER`, `SIGMA_PARAMETER`).

    Raises `PetabError` naming the table, row, column or key at fault.
    """
    _check_option("observable_model", observable_model, OBSERVABLE_MODELS)
    _check_option("noise", noise, NOISE_MODELS)
    nodes = sorted(set(observables))
    for node in nodes:
        if node not in model.states:
            raise PetabError(None, key="observables", element=node, expected=f"a state of model '{model.name}'")
    conditions = _condition_table(model, experiments, drug_parameter or {})
    data = _measurement_table(measurements, conditions["conditionId"], nodes, noise)
    return PetabTables(name, conditions, data, _observable_table(nodes, observable_model, noise),
                       _parameter_table(model, conditions.columns, nodes, observable_model, noise))


def write_problem(tables: PetabTables, model: OdeModel, out_dir: str | Path) -> None:
    """Write the problem as `out_dir`/{problem.yaml, model.sbml, conditions.tsv, …}, linted.

    The YAML names the files relative to itself, the tables are canonical TSV (floats as their
    shortest exact text), so the same problem always gives the same bytes. All files are written
    into a temporary folder beside `out_dir` and linted there; only a clean problem replaces
    `out_dir` (by renames), so a failure leaves any previous problem untouched.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        write_sbml(dataclasses.replace(model, name=tables.name), staging / MODEL_FILE)
        for kind, file_name in PROBLEM_FILES.items():
            write_table(getattr(tables, kind), staging / file_name, float_format=EXACT_FLOAT)
        write_text(PROBLEM_YAML, staging / "problem.yaml")
        try:
            problem = petab_v1.Problem.from_yaml(staging / "problem.yaml")
        except (OSError, ValueError, KeyError) as exc:
            raise PetabError(out_dir / "problem.yaml", message=f"cannot read the problem: {exc}") from exc
        _lint(problem, out_dir / "problem.yaml")
        staging.chmod(0o755)  # mkdtemp makes it private; the problem is an ordinary output
        _replace_folder(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace_folder(new: Path, target: Path) -> None:
    """Put folder `new` at `target` by renames; an existing `target` is moved aside, then deleted."""
    if not target.exists():
        os.replace(new, target)
        return
    # A folder cannot be renamed onto a non-empty one: move the old one onto an empty temp folder.
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old)


def _check_option(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise PetabError(None, key=key, expected=f"one of {list(allowed)}", found=value)


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
    table = pd.DataFrame({"conditionId": ids.to_numpy(), **{p: columns[p] for p in sorted(columns)}})
    return table.sort_values("conditionId").reset_index(drop=True)


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
        "observableId": ("obs_" + kept["observable"].astype(str)).to_numpy(),
        "simulationConditionId": kept["experiment"].astype(str).to_numpy(),
        "time": kept["time"].astype(float).to_numpy(),
        "measurement": kept["value"].astype(float).to_numpy(),
    })
    if noise == "data":
        sd = kept["sd"].astype(float)
        bad = ~(np.isfinite(sd) & (sd > 0))
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise PetabError(_MEASUREMENTS, row=int(kept.index[position]) + 2, column="sd",
                             expected="a standard deviation > 0 (noise 'data')", found=sd.iloc[position])
        table["noiseParameters"] = sd.to_numpy()
    order = ["simulationConditionId", "observableId", "time", "measurement"]
    return table.sort_values(order, kind="stable").reset_index(drop=True)


def _observable_table(nodes: Sequence[str], observable_model: str, noise: str) -> pd.DataFrame:
    rows = []
    for node in nodes:
        oid = f"obs_{node}"
        formula = node if observable_model == "direct" else f"scale_{oid} * {node} + offset_{oid}"
        sigma = f"noiseParameter1_{oid}" if noise == "data" else f"sigma_{oid}"
        rows.append((oid, formula, sigma, "lin", "normal"))
    return pd.DataFrame(rows, columns=["observableId", "observableFormula", "noiseFormula",
                                       "observableTransformation", "noiseDistribution"])


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
    table = pd.DataFrame(sorted(rows), columns=["parameterId", "parameterScale", "lowerBound", "upperBound",
                                                "nominalValue", "estimate"])
    return table.astype({"lowerBound": float, "upperBound": float, "nominalValue": float, "estimate": int})
