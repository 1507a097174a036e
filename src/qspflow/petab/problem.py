"""Loading a PEtab (v1) problem onto an `OdeModel`, and reading its table cells.

`load_problem` reads the YAML, checks what qspflow relies on itself (required columns, known
observable and condition ids, nominal values within bounds, flat priors only), runs the PEtab
linter (`lint`), reads the SBML model and applies the parameter table (value, bounds, scale,
estimate) onto it. Observable and noise formulas are read into model symbols with their
`observableParameter{n}_{id}` / `noiseParameter{n}_{id}` placeholders.

`condition_cells` and `replacement_cells` give the raw cells a condition or a measurement row
sets; both the reference simulation (`qspflow.petab.reference`) and `qspflow.calibrate` read
the problem through them, so the two agree on what a cell means.

Table rows in error messages are numbered as lines of the file: the header is row 1.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import petab.v1 as petab_v1
import sympy
from petab.v1 import C
from petab.v1.math import sympify_petab

from qspflow.errors import PetabError
from qspflow.model import SCALES, TIME, OdeModel, Parameter, symbol
from qspflow.model.sbml import read_sbml

REQUIRED_COLUMNS = {
    C.CONDITION_FILES: (C.CONDITION_ID,),
    C.MEASUREMENT_FILES: (C.OBSERVABLE_ID, C.SIMULATION_CONDITION_ID, C.MEASUREMENT, C.TIME),
    C.OBSERVABLE_FILES: (C.OBSERVABLE_ID, C.OBSERVABLE_FORMULA, C.NOISE_FORMULA),
    C.PARAMETER_FILE: (C.PARAMETER_ID, C.PARAMETER_SCALE, C.LOWER_BOUND, C.UPPER_BOUND, C.NOMINAL_VALUE,
                       C.ESTIMATE),
}
# Priors that are constant within the bounds leave the maximum-likelihood estimate unchanged.
FLAT_PRIORS = (C.UNIFORM, C.PARAMETER_SCALE_UNIFORM)


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
    files: dict[str, str]  # table kind (C.MEASUREMENT_FILES, …) → file name(s), for messages


def load_problem(yaml_path: str | Path) -> PetabProblem:
    """Load, check and lint a PEtab v1 problem (one SBML model) into a `PetabProblem`."""
    yaml_path = Path(yaml_path)
    try:
        config = petab_v1.yaml.load_yaml(yaml_path)
    except (OSError, ValueError) as exc:
        raise PetabError(yaml_path, expected="a PEtab YAML file", message=str(exc)) from exc
    if str(config.get(C.FORMAT_VERSION)) != "1" or len(config.get(C.PROBLEMS, [])) != 1:
        raise PetabError(yaml_path, key=C.FORMAT_VERSION,
                         expected="PEtab format version 1 with exactly one problem")
    entry = config[C.PROBLEMS][0]
    if len(entry.get(C.SBML_FILES, [])) != 1:
        raise PetabError(yaml_path, key=C.SBML_FILES, expected="exactly one SBML file")
    folder = yaml_path.parent
    files = {C.PARAMETER_FILE: str(folder / config[C.PARAMETER_FILE])}
    for kind in (C.CONDITION_FILES, C.MEASUREMENT_FILES, C.OBSERVABLE_FILES):
        files[kind] = ", ".join(str(folder / name) for name in entry.get(kind, []))
        for name in entry.get(kind, []):
            _check_columns(folder / name, kind)
    _check_columns(folder / config[C.PARAMETER_FILE], C.PARAMETER_FILE)

    try:
        problem = petab_v1.Problem.from_yaml(yaml_path)
    except (OSError, ValueError, KeyError) as exc:
        raise PetabError(yaml_path, message=f"cannot read the problem: {exc}") from exc
    _check_ids(problem, files)
    parameters = _parameters(problem.parameter_df, files[C.PARAMETER_FILE])
    lint(problem, yaml_path)

    model = read_sbml(folder / entry[C.SBML_FILES][0])
    for name, parameter in parameters.items():
        if name in model.parameters:
            model.parameters[name] = parameter
    for column in problem.condition_df.columns.drop(C.CONDITION_NAME, errors="ignore"):
        if column not in model.parameters and column not in model.states:
            raise PetabError(files[C.CONDITION_FILES], column=column,
                             expected="a model parameter, compartment or species id")
    observables = _observables(problem.observable_df, model, parameters, files[C.OBSERVABLE_FILES])
    model.check_start(source=str(folder / entry[C.SBML_FILES][0]))
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
        C.OBSERVABLE_ID: set(problem.observable_df.index),
        C.SIMULATION_CONDITION_ID: set(problem.condition_df.index),
        C.PREEQUILIBRATION_CONDITION_ID: set(problem.condition_df.index),
    }
    table = problem.measurement_df
    for column, ids in known.items():
        if column not in table:
            continue
        kind = "observable" if column == C.OBSERVABLE_ID else "condition"
        for position, value in enumerate(table[column]):
            if not is_missing(value) and value not in ids:
                raise PetabError(files[C.MEASUREMENT_FILES], row=position + 2, column=column,
                                 expected=f"an id from the {kind} table", found=value)


def _parameters(table: pd.DataFrame, source: str) -> dict[str, Parameter]:
    """Parameter-table rows as `Parameter`s (values and bounds on linear scale)."""
    parameters = {}
    for position, (name, row) in enumerate(table.iterrows()):
        lower, upper, nominal = (float(row[c]) for c in (C.LOWER_BOUND, C.UPPER_BOUND, C.NOMINAL_VALUE))
        lower = -math.inf if math.isnan(lower) else lower
        upper = math.inf if math.isnan(upper) else upper
        scale = str(row[C.PARAMETER_SCALE])
        if scale not in SCALES:
            raise PetabError(source, row=position + 2, column=C.PARAMETER_SCALE, element=name,
                             expected=f"one of {SCALES}", found=scale)
        if not lower <= nominal <= upper and not math.isnan(nominal):
            raise PetabError(source, row=position + 2, column=C.NOMINAL_VALUE, element=name,
                             expected=f"a value within the bounds [{lower:g}, {upper:g}]", found=nominal)
        estimate = bool(int(row[C.ESTIMATE]))
        prior = row.get(C.OBJECTIVE_PRIOR_TYPE)
        if estimate and not is_missing(prior) and str(prior) not in FLAT_PRIORS:
            raise PetabError(source, row=position + 2, column=C.OBJECTIVE_PRIOR_TYPE, element=name, found=prior,
                             expected=f"no prior or a flat one ({', '.join(FLAT_PRIORS)}): the objective is "
                                      "the likelihood, priors are not implemented")
        parameters[name] = Parameter(name, nominal, lower, upper, scale, estimate)
    return parameters


def _observables(table: pd.DataFrame, model: OdeModel, parameters: Mapping[str, Parameter],
                 source: str) -> dict[str, Observable]:
    """Observable-table rows with formulas in model symbols (expressions substituted)."""
    names: dict[str, sympy.Expr] = {n: symbol(n) for n in [*model.states, *model.parameters, *parameters]}
    names |= model.expressions
    names["time"] = TIME  # PEtab v1 formulas name the model time `time`
    observables = {}
    for position, (oid, row) in enumerate(table.iterrows()):
        where = {"source": source, "row": position + 2, "element": oid}
        value, value_holders = _formula(str(row[C.OBSERVABLE_FORMULA]), "observableParameter", oid, names,
                                        column=C.OBSERVABLE_FORMULA, **where)
        noise, noise_holders = _formula(str(row[C.NOISE_FORMULA]), "noiseParameter", oid, names,
                                        column=C.NOISE_FORMULA, **where)
        transformation = text_cell(row.get(C.OBSERVABLE_TRANSFORMATION), C.LIN)  # values checked by the linter
        distribution = text_cell(row.get(C.NOISE_DISTRIBUTION), C.NORMAL)
        observables[oid] = Observable(oid, value, noise, transformation, distribution,
                                      value_holders, noise_holders)
    return observables


def _formula(formula: str, prefix: str, oid: str, names: Mapping[str, sympy.Expr], *, source: str, row: int,
             column: str, element: str) -> tuple[sympy.Expr, tuple[sympy.Symbol, ...]]:
    """A PEtab formula over `names`, and its placeholders `{prefix}{n}_{oid}` ordered by n."""
    holder = re.compile(rf"^{prefix}(\d+)_{re.escape(oid)}$")
    expr = sympify_petab(formula)
    mapping, holders = {}, []
    for found in expr.free_symbols:
        if found.name in names:
            mapping[found] = names[found.name]
        elif holder.match(found.name):
            mapping[found] = symbol(found.name)
            holders.append(mapping[found])
        else:
            raise PetabError(source, row=row, column=column, element=element,
                             message=f"undefined symbol '{found.name}'")
    holders.sort(key=lambda s: int(holder.match(s.name).group(1)))
    return expr.xreplace(mapping), tuple(holders)


def lint(problem: petab_v1.Problem, source: str | Path) -> None:
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


# --------------------------------------------------------------------------------- table cells


def is_missing(value: object) -> bool:
    """An empty PEtab table cell (NaN, None or empty text)."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def text_cell(value: object, default: str) -> str:
    """A text cell, or `default` where it is empty."""
    return default if is_missing(value) else str(value)


def condition_cells(problem: PetabProblem, condition_id: str) -> list[tuple[str, object]]:
    """The (column, cell) pairs a condition sets: model parameter or species id, number or parameter id."""
    row = problem.condition_table.loc[condition_id]
    return [(column, raw) for column, raw in row.drop(C.CONDITION_NAME, errors="ignore").items()
            if not is_missing(raw)]


def replacement_cells(problem: PetabProblem, row: int, column: str, count: int) -> list[str]:
    """The ';'-separated cells of a measurement row's `observableParameters`/`noiseParameters`,
    checked against the `count` placeholders of its observable."""
    table = problem.measurement_table
    raw = table[column].iat[row] if column in table else math.nan
    entries = petab_v1.split_parameter_replacement_list(raw)
    if len(entries) != count:
        raise PetabError(problem.files[C.MEASUREMENT_FILES], row=row + 2, column=column,
                         expected=f"{count} value(s) separated by ';'", found=raw)
    return entries


def cell_value(raw: object, values: Mapping[str, float], source: str, column: str) -> float:
    """A table cell that is a number or a parameter id (looked up in `values`)."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            if raw not in values:
                raise PetabError(source, column=column, expected="a number or a parameter id",
                                 found=raw) from None
            return values[raw]
    return float(raw)
