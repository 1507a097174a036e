"""PEtab (v1) problems on an `OdeModel`: loading, simulation tables, log-likelihood.

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
import logging
import math
import re
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
from qspflow.model import SCALES, TIME, OdeModel, Parameter
from qspflow.sbml import read_sbml

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
    with _captured("petab") as messages:
        try:
            failed = petab_v1.lint_problem(problem)
        except (AssertionError, ValueError, KeyError) as exc:  # some checks raise instead of logging
            messages.append(str(exc))
            failed = True
    if failed:
        summary = [m for m in messages if m != "Not OK"]  # the linter's closing line adds nothing
        raise PetabError(yaml_path, message="PEtab lint failed: " + "; ".join(summary))

    model = read_sbml(folder / entry["sbml_files"][0])
    for name, parameter in parameters.items():
        if name in model.parameters:
            model.parameters[name] = parameter
    for column in problem.condition_df.columns.drop("conditionName", errors="ignore"):
        if column not in model.parameters and column not in model.states:
            raise PetabError(files["condition_files"], column=column,
                             expected="a model parameter, compartment or species id")
    observables = _observables(problem.observable_df, model, parameters, files["observable_files"])
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
            if not _missing(value) and value not in ids:
                raise PetabError(files["measurement_files"], row=position + 2, column=column,
                                 expected=f"an id from the {kind} table", found=value)


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
        parameters[name] = Parameter(name, nominal, lower, upper, scale, bool(int(row["estimate"])))
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


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _text(value: object, default: str) -> str:
    return default if _missing(value) else str(value)


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
        self.jac = sympy.lambdify((TIME, xs, ps), jacobian, modules="math", cse=True)
        initial = [sympy.sympify(model.initial[s]).xreplace({TIME: 0}) for s in model.states]
        self.initial = sympy.lambdify((ps,), initial, modules="math")

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


def _condition(problem: PetabProblem, condition_id: str, values: Mapping[str, float]) -> tuple[dict, dict]:
    """(parameter values, state initial values) under one condition of the condition table."""
    parameters = dict(values)
    states = {}
    row = problem.condition_table.loc[condition_id]
    for column, raw in row.drop("conditionName", errors="ignore").items():
        if _missing(raw):
            continue
        value = _value(raw, values, problem.files["condition_files"], column)
        if math.isnan(value):
            continue
        (states if column in problem.model.states else parameters)[column] = value
    return parameters, states


def _replacements(problem: PetabProblem, row: int, column: str, placeholders: Sequence[sympy.Symbol],
                  values: Mapping[str, float]) -> list[float]:
    """The numbers a measurement row gives for an observable's placeholders."""
    table = problem.measurement_table
    raw = table[column].iat[row] if column in table else math.nan
    entries = petab_v1.split_parameter_replacement_list(raw)
    if len(entries) != len(placeholders):
        raise PetabError(problem.files["measurement_files"], row=row + 2, column=column,
                         expected=f"{len(placeholders)} value(s) separated by ';'", found=raw)
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
