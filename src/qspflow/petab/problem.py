"""Loading a PEtab (v1) problem onto an `OdeModel`, and reading its table cells.

`load_problem` reads the YAML (safe YAML, a mapping, version 1, one problem with one SBML
model) and checks the tables as text cells before the PEtab library reads anything: files
that exist and are UTF-8, required columns, unique ids, numbers where numbers belong
(`nominalValue`, `estimate` 0/1, ordered bounds, positive bounds on log scale), measurements
that are finite at a time ≥ 0 (or inf, the steady state) for known observables and
conditions, formulas that parse and name known symbols, objective priors of a known type with
valid parameters (`qspflow.petab.priors`). A nominal value outside its bounds is evaluated as
given, with a warning (the specification does not forbid it; a calibration starts inside the
bounds). It then reads the SBML model, runs the PEtab linter (`lint`, one line, for what is
left) and applies the parameter table (value, bounds, scale, estimate) onto the model. Observable and noise formulas
are read into model symbols with their `observableParameter{n}_{id}` / `noiseParameter{n}_{id}`
placeholders.

`condition_cells` and `replacement_cells` give the raw cells a condition or a measurement row
sets; both the reference simulation (`qspflow.petab.reference`) and `qspflow.calibrate` read
the problem through them, so the two agree on what a cell means.

Table rows in error messages are numbered as lines of the file: the header is row 1.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import petab.v1 as petab_v1
import sympy
from petab.v1 import C
from petab.v1.math import sympify_petab

from qspflow.errors import PetabError
from qspflow.io import parse_user_yaml
from qspflow.model import SCALES, TIME, OdeModel, Parameter, symbol
from qspflow.model.sbml import read_sbml
from qspflow.petab.priors import PARAMETER_NAMES, PRIOR_TYPES, Prior, scaled

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = {
    C.CONDITION_FILES: (C.CONDITION_ID,),
    C.MEASUREMENT_FILES: (C.OBSERVABLE_ID, C.SIMULATION_CONDITION_ID, C.MEASUREMENT, C.TIME),
    C.OBSERVABLE_FILES: (C.OBSERVABLE_ID, C.OBSERVABLE_FORMULA, C.NOISE_FORMULA),
    C.PARAMETER_FILE: (C.PARAMETER_ID, C.PARAMETER_SCALE, C.LOWER_BOUND, C.UPPER_BOUND, C.NOMINAL_VALUE,
                       C.ESTIMATE),
}
ID_COLUMNS = {C.CONDITION_FILES: C.CONDITION_ID, C.OBSERVABLE_FILES: C.OBSERVABLE_ID,
              C.PARAMETER_FILE: C.PARAMETER_ID}
TABLE_KINDS = (C.CONDITION_FILES, C.MEASUREMENT_FILES, C.OBSERVABLE_FILES)
TRANSFORMATIONS = (C.LIN, C.LOG, C.LOG10)
DISTRIBUTIONS = (C.NORMAL, C.LAPLACE)
OBSERVABLE_HOLDER, NOISE_HOLDER = "observableParameter", "noiseParameter"


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
    `priors`: the objective priors of estimated parameters, by parameter id.
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
    priors: dict[str, Prior] = field(default_factory=dict)


@dataclass
class _Table:
    """One table file as its text cells ('' where empty); `rows()` numbers rows as lines (header: 1)."""

    path: Path
    cells: pd.DataFrame

    def rows(self) -> Iterator[tuple[int, pd.Series]]:
        for position, (_, row) in enumerate(self.cells.iterrows()):
            yield position + 2, row


def load_problem(yaml_path: str | Path) -> PetabProblem:
    """Load, check and lint a PEtab v1 problem (one SBML model) into a `PetabProblem`.

    Everything qspflow can name by file, row and column is checked here, before the PEtab
    library reads the problem; its linter runs last, for what is left.
    """
    yaml_path = Path(yaml_path)
    folder = yaml_path.parent
    config = _read_config(yaml_path)
    entry = _problem_entry(config, yaml_path)
    paths = {C.PARAMETER_FILE: [folder / config[C.PARAMETER_FILE]]}
    paths |= {kind: [folder / name for name in entry[kind]] for kind in TABLE_KINDS}
    tables = {kind: [_read_table(path, kind, yaml_path) for path in found] for kind, found in paths.items()}
    files = {kind: ", ".join(str(path) for path in found) for kind, found in paths.items()}

    parameter_table = tables[C.PARAMETER_FILE][0]
    parameters, priors = _parameters(parameter_table)
    observable_ids = {i for t in tables[C.OBSERVABLE_FILES] for i in t.cells[C.OBSERVABLE_ID]}
    condition_ids = {i for t in tables[C.CONDITION_FILES] for i in t.cells[C.CONDITION_ID]}
    for table in tables[C.MEASUREMENT_FILES]:
        _check_measurements(table, observable_ids, condition_ids)

    sbml_path = folder / entry[C.SBML_FILES][0]
    _check_file(sbml_path, "an SBML file", yaml_path, C.SBML_FILES)
    model = read_sbml(sbml_path)
    for table in tables[C.CONDITION_FILES]:
        _check_conditions(table, model, parameters)
    observables = {}
    for table in tables[C.OBSERVABLE_FILES]:
        observables |= _observables(table, model, parameters)
    for table in tables[C.MEASUREMENT_FILES]:
        _check_replacements(table, observables, model, parameters)

    try:
        problem = petab_v1.Problem.from_yaml(yaml_path)
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise PetabError(yaml_path, message=f"cannot read the problem: {_one_line(str(exc))}") from exc
    lint(problem, yaml_path)

    for name, parameter in parameters.items():
        if name in model.parameters:
            model.parameters[name] = parameter
    model.check_start(source=str(sbml_path))
    return PetabProblem(yaml_path, model, parameters, observables, problem.condition_df, problem.measurement_df,
                        problem.observable_df, problem.parameter_df, files, priors)


# ------------------------------------------------------------------------- files and the YAML


def problem_files(yaml_path: str | Path) -> list[Path]:
    """Every file a PEtab problem consists of: its YAML, then the parameter table, the SBML model, the
    other tables and any visualization tables, as the YAML names them (what a submission package bundles)."""
    yaml_path = Path(yaml_path)
    config = _read_config(yaml_path)
    entry = _problem_entry(config, yaml_path)
    names = [config[C.PARAMETER_FILE], *entry[C.SBML_FILES], *(n for kind in TABLE_KINDS for n in entry[kind]),
             *(entry.get(C.VISUALIZATION_FILES) or ())]
    return [yaml_path, *(yaml_path.parent / name for name in names)]



def _check_file(path: Path, expected: str, named_by: Path, key: str) -> None:
    """A file the problem YAML names exists and is a file."""
    if path.is_dir():
        raise PetabError(path, expected=expected, message=f"found a folder (named by {named_by}, key '{key}')")
    if not path.exists():
        raise PetabError(path, expected=expected, message=f"the file does not exist (named by {named_by}, "
                                                          f"key '{key}')")


def _read_text(path: Path, expected: str) -> str:
    """A file's text (UTF-8); a folder, a missing file or other bytes raise `PetabError`."""
    if path.is_dir():
        raise PetabError(path, expected=expected, message="found a folder")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PetabError(path, expected=expected, message="the file does not exist") from None
    except OSError as exc:
        raise PetabError(path, expected=expected, message=exc.strerror or str(exc)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise PetabError(path, line=line, expected="UTF-8 text",
                         message=f"found the byte 0x{data[exc.start]:02x} (save the file as UTF-8)") from None


def _read_config(path: Path) -> dict:
    """The problem YAML as a mapping; YAML errors name the line and column."""
    text = _read_text(path, "a PEtab problem (YAML)")
    config = parse_user_yaml(text, path, PetabError)
    if not isinstance(config, dict):
        raise PetabError(path, expected=f"a mapping with the keys {C.FORMAT_VERSION}, {C.PARAMETER_FILE} and "
                                        f"{C.PROBLEMS}", message=f"found {_describe(config)}")
    return config


def _problem_entry(config: dict, path: Path) -> dict:
    """The one problem of a PEtab v1 YAML, its file lists checked (one SBML model)."""
    version = config.get(C.FORMAT_VERSION)
    if str(version).split(".")[0] != "1":
        raise PetabError(path, key=C.FORMAT_VERSION, expected="1 (PEtab version 1)",
                         message=f"found {_describe(version)}")
    if not isinstance(config.get(C.PARAMETER_FILE), str) or not config[C.PARAMETER_FILE]:
        raise PetabError(path, key=C.PARAMETER_FILE, expected="a file name",
                         message=f"found {_describe(config.get(C.PARAMETER_FILE))}")
    problems = config.get(C.PROBLEMS)
    if not isinstance(problems, list) or len(problems) != 1 or not isinstance(problems[0], dict):
        found = f"{len(problems)} problems" if isinstance(problems, list) else _describe(problems)
        raise PetabError(path, key=C.PROBLEMS, expected="a list of exactly one problem (a mapping)",
                         message=f"found {found}")
    entry = problems[0]
    for kind in (C.SBML_FILES, *TABLE_KINDS):
        names = entry.get(kind)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise PetabError(path, key=kind, expected="a list of file names", message=f"found {_describe(names)}")
    if len(entry[C.SBML_FILES]) != 1:
        raise PetabError(path, key=C.SBML_FILES, expected="exactly one SBML file",
                         message=f"found {len(entry[C.SBML_FILES])}")
    return entry


def _describe(value: object) -> str:
    """What a YAML value is, for messages."""
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return f"'{value}'"


def _one_line(text: str) -> str:
    """A library's message on one line: whitespace runs (newlines too) become single spaces."""
    return " ".join(text.split())


# ---------------------------------------------------------------------------------- tables


def _read_table(path: Path, kind: str, named_by: Path) -> _Table:
    """A table file as text cells, with its required columns and unique, valid ids."""
    _check_file(path, "a PEtab table (TSV)", named_by, kind)
    text = _read_text(path, "a PEtab table (TSV)")
    lines = text.splitlines()
    width = len(lines[0].split("\t")) if lines else 0
    for row, line in enumerate(lines[1:], start=2):
        cells = len(line.split("\t"))
        if cells > width:  # pandas would silently take the extra cells' columns as an index
            raise PetabError(path, row=row, expected=f"at most {width} tab-separated cells (as in the header)",
                             message=f"found {cells}")
    try:
        cells = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise PetabError(path, expected="a PEtab table (TSV) with a header line", message="the file is empty") \
            from None
    except pd.errors.ParserError as exc:
        raise PetabError(path, expected="a tab-separated table",
                         message=_one_line(str(exc).split("C error: ")[-1])) from None
    for column in cells.columns:
        if column != column.strip():
            raise PetabError(path, column=column, expected="a column name without leading or trailing spaces")
    for column in REQUIRED_COLUMNS[kind]:
        if column not in cells.columns:
            raise PetabError(path, column=column, expected="a required column", message="missing")
    table = _Table(path, cells)
    if kind == C.MEASUREMENT_FILES and cells.empty:
        raise PetabError(path, expected="at least one measurement row", message="found only the header")
    if kind in ID_COLUMNS:
        column = ID_COLUMNS[kind]
        seen: dict[str, int] = {}
        for row, cell in table.rows():
            value = cell[column]
            if not petab_v1.is_valid_identifier(value):
                raise PetabError(path, row=row, column=column, found=value,
                                 expected="an id (letters, digits and '_', not starting with a digit)")
            if value in seen:
                raise PetabError(path, row=row, column=column, found=value,
                                 expected=f"a unique id (row {seen[value]} has it too)")
            seen[value] = row
    return table


def _number(cell: str, path: Path, row: int, column: str, expected: str, element: str | None = None) -> float:
    """A number cell; anything else raises `PetabError` naming the cell."""
    try:
        return float(cell)
    except ValueError:
        raise PetabError(path, row=row, column=column, element=element, expected=expected,
                         **({"found": cell} if cell else {"message": "the cell is empty"})) from None


def _parameters(table: _Table) -> tuple[dict[str, Parameter], dict[str, Prior]]:
    """Parameter-table rows as `Parameter`s (values and bounds on linear scale), and the estimated
    parameters' objective priors."""
    parameters, priors = {}, {}
    source = table.path
    for row, cell in table.rows():
        name = cell[C.PARAMETER_ID]
        where = {"element": name}
        scale = cell[C.PARAMETER_SCALE]
        if scale not in SCALES:
            raise PetabError(source, row=row, column=C.PARAMETER_SCALE, **where, expected=f"one of {SCALES}",
                             found=scale)
        flag = _number(cell[C.ESTIMATE], source, row, C.ESTIMATE, "0 or 1", name)
        if flag not in (0, 1):
            raise PetabError(source, row=row, column=C.ESTIMATE, **where, expected="0 or 1", found=cell[C.ESTIMATE])
        estimate = flag == 1
        # Empty bounds are unbounded; an estimated parameter needs both.
        lower, upper = (
            _number(cell[c], source, row, c, "a number", name) if cell[c] or estimate else default
            for c, default in ((C.LOWER_BOUND, -math.inf), (C.UPPER_BOUND, math.inf)))
        lower = -math.inf if math.isnan(lower) else lower
        upper = math.inf if math.isnan(upper) else upper
        if lower > upper:
            raise PetabError(source, row=row, column=C.LOWER_BOUND, **where, expected="lowerBound ≤ upperBound",
                             found=f"{cell[C.LOWER_BOUND]} > {cell[C.UPPER_BOUND]}")
        if estimate and scale != C.LIN:
            for column, bound in ((C.LOWER_BOUND, lower), (C.UPPER_BOUND, upper)):
                if bound <= 0:
                    raise PetabError(source, row=row, column=column, **where, found=cell[column],
                                     expected=f"a bound > 0 for a {scale}-scaled parameter")
        # A parameter that is estimated may leave its nominal value empty (PEtab v1).
        nominal = (_number(cell[C.NOMINAL_VALUE], source, row, C.NOMINAL_VALUE, "a number", name)
                   if cell[C.NOMINAL_VALUE] or not estimate else math.nan)
        if not lower <= nominal <= upper and not math.isnan(nominal):
            log.warning("%s, row %d: the nominal value %g of '%s' is outside its bounds [%g, %g]; it is "
                        "evaluated as given, and a calibration starts inside the bounds", source, row, nominal,
                        name, lower, upper)
        if estimate and cell.get(C.OBJECTIVE_PRIOR_TYPE, ""):
            priors[name] = _prior(cell, source, row, scale, lower, upper)
        parameters[name] = Parameter(name, nominal, lower, upper, scale, estimate)
    return parameters, priors


def _prior(cell: pd.Series, source: Path, row: int, scale: str, lower: float, upper: float) -> Prior:
    """An estimated parameter's objective prior: a known type and two numbers (parameterScaleUniform
    may leave them empty: the bounds on the parameter's scale, as the linter allows)."""
    name, kind = cell[C.PARAMETER_ID], cell[C.OBJECTIVE_PRIOR_TYPE]
    where = {"row": row, "element": name}
    if kind not in PRIOR_TYPES:
        raise PetabError(source, **where, column=C.OBJECTIVE_PRIOR_TYPE, found=kind,
                         expected=f"one of {', '.join(PRIOR_TYPES)} (or empty: no prior)")
    text = cell.get(C.OBJECTIVE_PRIOR_PARAMETERS, "").strip()
    if not text and kind == C.PARAMETER_SCALE_UNIFORM:
        return Prior(kind, _scaled_bounds(scale, lower, upper), scale)
    prior = Prior(kind, (math.nan, math.nan), scale)
    expected = f"two numbers '{PARAMETER_NAMES[prior.family]}' separated by ';' for a {kind} prior"
    try:
        a, b = (float(v) for v in text.split(C.PARAMETER_SEPARATOR))
    except ValueError:
        raise PetabError(source, **where, column=C.OBJECTIVE_PRIOR_PARAMETERS, expected=expected,
                         **({"found": text} if text else {"message": "the cell is empty"})) from None
    valid = a < b if prior.family == C.UNIFORM else b > 0
    if not (math.isfinite(a) and math.isfinite(b) and valid):
        condition = "lower < upper" if prior.family == C.UNIFORM else "a scale > 0"
        raise PetabError(source, **where, column=C.OBJECTIVE_PRIOR_PARAMETERS, found=text,
                         expected=f"{expected}, finite, with {condition}")
    return Prior(kind, (a, b), scale)


def _scaled_bounds(scale: str, lower: float, upper: float) -> tuple[float, float]:
    """Bounds (linear) on a parameter scale."""
    if scale == C.LIN:
        return lower, upper
    base = math.log if scale == C.LOG else math.log10
    return base(lower), base(upper)


def _check_measurements(table: _Table, observable_ids: set[str], condition_ids: set[str]) -> None:
    """Measurement rows name known observables and conditions, and hold a finite value at a time ≥ 0."""
    known = {C.OBSERVABLE_ID: ("observable", observable_ids), C.SIMULATION_CONDITION_ID: ("condition", condition_ids),
             C.PREEQUILIBRATION_CONDITION_ID: ("condition", condition_ids)}
    for row, cell in table.rows():
        for column, (kind, ids) in known.items():
            value = cell.get(column, "")
            if value not in ids and (value or column != C.PREEQUILIBRATION_CONDITION_ID):
                raise PetabError(table.path, row=row, column=column, expected=f"an id from the {kind} table",
                                 **({"found": value} if value else {"message": "the cell is empty"}))
        value = _number(cell[C.MEASUREMENT], table.path, row, C.MEASUREMENT, "a finite number")
        if not math.isfinite(value):
            raise PetabError(table.path, row=row, column=C.MEASUREMENT, expected="a finite number",
                             found=cell[C.MEASUREMENT])
        expected = "a number ≥ 0 (or inf: the steady state)"
        time = _number(cell[C.TIME], table.path, row, C.TIME, expected)
        if not time >= 0:
            raise PetabError(table.path, row=row, column=C.TIME, expected=expected, found=cell[C.TIME])


def _check_conditions(table: _Table, model: OdeModel, parameters: Mapping[str, Parameter]) -> None:
    """Condition columns are model ids; cells are numbers or parameter ids."""
    columns = [c for c in table.cells.columns if c not in (C.CONDITION_ID, C.CONDITION_NAME)]
    for column in columns:
        if column not in model.parameters and column not in model.states:
            raise PetabError(table.path, column=column, expected="a model parameter, compartment or species id")
    for row, cell in table.rows():
        for column in columns:
            _check_value(cell[column], table.path, row, column, model, parameters, element=cell[C.CONDITION_ID])


def _check_value(value: str | float, path: Path, row: int, column: str, model: OdeModel,
                 parameters: Mapping[str, Parameter], element: str | None = None) -> None:
    """A cell that may be empty, a number or a parameter id (as `cell_value` reads it)."""
    if isinstance(value, float) or value == "" or value in parameters or value in model.parameters:
        return
    try:
        float(value)
    except ValueError:
        raise PetabError(path, row=row, column=column, element=element, found=value,
                         expected="a number or a parameter id") from None


def _check_replacements(table: _Table, observables: Mapping[str, Observable], model: OdeModel,
                        parameters: Mapping[str, Parameter]) -> None:
    """A measurement row's observableParameters/noiseParameters: one number or parameter id per placeholder."""
    for row, cell in table.rows():
        observable = observables[cell[C.OBSERVABLE_ID]]
        for column, holders in ((C.OBSERVABLE_PARAMETERS, observable.observable_placeholders),
                                (C.NOISE_PARAMETERS, observable.noise_placeholders)):
            entries = petab_v1.split_parameter_replacement_list(cell.get(column, ""))
            if len(entries) != len(holders):
                raise PetabError(table.path, row=row, column=column, found=cell.get(column, ""),
                                 expected=f"{len(holders)} value(s) separated by ';' for observable "
                                          f"'{observable.id}'")
            for entry in entries:
                _check_value(entry, table.path, row, column, model, parameters)


def _observables(table: _Table, model: OdeModel, parameters: Mapping[str, Parameter]) -> dict[str, Observable]:
    """Observable-table rows with formulas in model symbols (expressions substituted)."""
    names: dict[str, sympy.Expr] = {n: symbol(n) for n in [*model.states, *model.parameters, *parameters]}
    names |= model.expressions
    names["time"] = TIME  # PEtab v1 formulas name the model time `time`
    observables = {}
    for row, cell in table.rows():
        oid = cell[C.OBSERVABLE_ID]
        where = {"source": table.path, "row": row, "element": oid}
        value, value_holders = _formula(cell[C.OBSERVABLE_FORMULA], (OBSERVABLE_HOLDER,), oid, names,
                                        column=C.OBSERVABLE_FORMULA, **where)
        # A noise formula may repeat the observable formula with its observableParameter placeholders
        # (PEtab 1, as clarified in PEtab-dev/PEtab#574; Raia_CancerResearch2011): the row's
        # observableParameters fill them there too.
        noise, noise_holders = _formula(cell[C.NOISE_FORMULA], (NOISE_HOLDER, OBSERVABLE_HOLDER), oid, names,
                                        column=C.NOISE_FORMULA, **where)
        shared = sorted({*value_holders[OBSERVABLE_HOLDER], *noise_holders[OBSERVABLE_HOLDER]},
                        key=lambda h: int(re.search(r"(\d+)_", h.name).group(1)))
        transformation = text_cell(cell.get(C.OBSERVABLE_TRANSFORMATION, ""), C.LIN)
        distribution = text_cell(cell.get(C.NOISE_DISTRIBUTION, ""), C.NORMAL)
        for column, found, allowed in ((C.OBSERVABLE_TRANSFORMATION, transformation, TRANSFORMATIONS),
                                       (C.NOISE_DISTRIBUTION, distribution, DISTRIBUTIONS)):
            if found not in allowed:
                raise PetabError(table.path, row=row, column=column, element=oid, found=found,
                                 expected=f"one of {', '.join(allowed)} (or empty)")
        observables[oid] = Observable(oid, value, noise, transformation, distribution, tuple(shared),
                                      noise_holders[NOISE_HOLDER])
    return observables


def _formula(formula: str, prefixes: tuple[str, ...], oid: str, names: Mapping[str, sympy.Expr], *, source: Path,
             row: int, column: str, element: str) -> tuple[sympy.Expr, dict[str, tuple[sympy.Symbol, ...]]]:
    """A PEtab formula over `names`, and for each prefix its placeholders `{prefix}{n}_{oid}` ordered by n."""
    patterns = {prefix: re.compile(rf"^{prefix}(\d+)_{re.escape(oid)}$") for prefix in prefixes}
    where = {"row": row, "column": column, "element": element}
    if not formula.strip():
        raise PetabError(source, **where, expected="a formula", message="the cell is empty")
    try:
        expr = sympify_petab(formula)
    except (ValueError, TypeError, sympy.SympifyError) as exc:
        detail = re.sub(r"^Error parsing '.*?': ", "", _one_line(str(exc)))
        raise PetabError(source, **where, expected="a formula", found=formula, message=detail) from None
    mapping: dict[sympy.Symbol, sympy.Expr] = {}
    holders: dict[str, list[sympy.Symbol]] = {prefix: [] for prefix in prefixes}
    for found in expr.free_symbols:
        prefix = next((p for p, pattern in patterns.items() if pattern.match(found.name)), None)
        if found.name in names:
            mapping[found] = names[found.name]
        elif prefix:
            mapping[found] = symbol(found.name)
            holders[prefix].append(mapping[found])
        else:
            allowed = " or ".join(f"{p}N_{oid}" for p in prefixes)
            raise PetabError(source, **where, found=found.name,
                             expected=f"a model id, a parameter-table id or {allowed}")
    ordered = {p: tuple(sorted(found, key=lambda s, p=p: int(patterns[p].match(s.name).group(1))))
               for p, found in holders.items()}
    return expr.xreplace(mapping), ordered


def lint(problem: petab_v1.Problem, source: str | Path) -> None:
    """Run the PEtab linter; its error messages become one one-line `PetabError` naming `source`.

    Its warnings are passed on as qspflow warnings, but for the missing visualization table,
    which is optional and which nobody asked for.
    """
    with _captured("petab") as records:
        try:
            failed = petab_v1.lint_problem(problem)
        except (AssertionError, ValueError, KeyError) as exc:  # some checks raise instead of logging
            records.append(logging.makeLogRecord({"levelno": logging.ERROR, "msg": str(exc)}))
            failed = True
    for record in records:
        message = _one_line(record.getMessage())
        if record.levelno == logging.WARNING and not message.startswith("Visualization table not available"):
            log.warning("%s: PEtab linter: %s", source, message)
    if failed:
        # libSBML's messages cite the spec section on a line of their own; the closing "Not OK" adds nothing.
        summary = [re.sub(r"Reference: \S+ Section [\d.]+ ?", "", _one_line(r.getMessage())) for r in records
                   if r.levelno >= logging.ERROR and r.getMessage() != "Not OK"]
        raise PetabError(source, message="PEtab lint failed: " + "; ".join(summary))


@contextlib.contextmanager
def _captured(logger_name: str) -> Iterator[list[logging.LogRecord]]:
    """Collect what a library logs (the PEtab linter reports through logging) instead of printing it."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


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


def log_prior(problem: PetabProblem, parameters: Mapping[str, float] | None = None) -> float:
    """Σ log p of the problem's objective priors at the nominal values, `parameters` (id → linear
    value) overriding them; 0 without priors, −inf outside a prior's support."""
    total = 0.0
    for name, prior in problem.priors.items():
        value = (parameters or {}).get(name, problem.parameters[name].value)
        total -= float(prior.terms(scaled(prior.scale, float(value)))[0])
    return total if not math.isnan(total) else -math.inf
