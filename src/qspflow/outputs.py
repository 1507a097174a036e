"""Model outputs: a quantity of a PEtab problem's model, summarized over time, under a condition.

API (used by `qspflow.sensitivity` and `qspflow.vpop`):

- `parse_outputs(items, key="sensitivity.outputs") -> list[Output]`: a config list of mappings
  `{name, kind, of, condition, time, window, threshold}` checked; errors name the key
  (`sensitivity.outputs[2].time`). `kind` is one of `KINDS`:
    value         `of` at `time` (required)
    auc           ∫ `of` dt over `window` [t0, t1] (required)
    cmax          the maximum of `of` over `window` (required)
    time_above    the time within `window` (required) during which `of` > `threshold` (required)
    steady_state  `of` at the steady state under the condition (no time, no window)
  `of`: an observable id of the problem (without placeholders), a state id, an observable of the
  model itself (`OdeModel.observables`, e.g. `C_drug` of `qspflow.convert.couple_pkpd`), a
  model expression id (SBML assignment rule, PySB expression), or a formula over the model's
  states, parameters and `time` (e.g. `A_c / pk_vc`). `condition`: a condition id of the
  problem's condition table, or a mapping {model parameter or state id: number or parameter id}
  of overrides (e.g. `{dose_drug: 300, input_EGF: 1}`); omitted: the model as it is.
- `check_outputs(problem, outputs)`: the ids and conditions checked against the problem, without
  compiling (for steps that must fail before long work).
- `OutputModel(problem, outputs, varying)`: compiles the problem's model once
  (`qspflow.simulate.compile_model`); `names`, `varying`, `columns` (the parameters `base` may set).
- `OutputModel.evaluate(params, *, base=None, threads=1) -> (values, failed)`: `params` is an
  (n, len(varying)) array on the linear scale; `base` {parameter id: linear value} overrides the
  problem's nominal values for the parameters that do not vary (e.g. the calibrated estimates);
  `values` is (n, len(outputs)), `failed` a bool array of the same shape: True where the
  simulation under that output's condition failed (its value is NaN). Nothing is dropped; rows are
  independent, so any split of `params` into chunks gives the same bits.

How each kind is computed (no post-hoc quadrature on a grid):
- auc and time_above are exact integrals of the ODE solution: the simulated model gets one
  quadrature state per quantity, dQ/dt = y (auc) or dQ/dt = 1 while y > threshold (time_above), and
  the output is Q(t1) − Q(t0), so its accuracy is the integrator's (rtol, atol). A time_above's
  dQ/dt is a mode (0 or 1) that two events switch where y crosses the threshold: the integrator's
  event root-finding ends a step at each crossing, so the crossings are located to the
  integrator's accuracy and no step straddles the jump.
- cmax samples `of` and its time derivative (∂y/∂x · f + ∂y/∂t, compiled with the model) on
  `CMAX_POINTS` equally spaced times of the window plus the model's breakpoints (dose times) in
  it, and refines the largest sample by the maximum of the cubic Hermite interpolant on the two
  intervals beside it (value error O(h⁴) for a smooth maximum; at a kink, a dose time, the grid
  holds the kink itself).
- steady_state integrates to 1, 10, …, 1e8 and takes the first horizon after which no state moves
  by more than ten times the tolerances (the rule of `qspflow.calibrate`'s steady states); not
  reached → failed.

Conditions are applied as PEtab does (and as `qspflow.calibrate.spec` and `qspflow.petab.reference`
do, through the same `qspflow.petab.condition_cells`): a column overrides a parameter, compartment or
species initial value; an empty cell keeps the model's value; a parameter id stands for that
parameter's value (varying or base). Initial values that are expressions of parameters are
evaluated under the condition. Preequilibration is not supported here.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import sympy

from qspflow.errors import ConfigError, ModelError
from qspflow.model import TIME, Event, OdeModel, Parameter, switch_times, symbol, unique_name
from qspflow.petab import PetabProblem, condition_cells, is_missing
from qspflow.simulate import compile_model

log = logging.getLogger("qspflow.outputs")

KINDS = ("value", "auc", "cmax", "time_above", "steady_state")
KEYS = ("name", "kind", "of", "condition", "time", "window", "threshold")
#: the keys each kind needs, besides name, kind, of (condition is optional everywhere)
NEEDS = {"value": ("time",), "auc": ("window",), "cmax": ("window",), "time_above": ("window", "threshold"),
         "steady_state": ()}
CMAX_POINTS = 201
STEADY_TIMES = 10.0 ** np.arange(0, 9)
RTOL, ATOL = 1e-8, 1e-10
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Output:
    """One model output (see the module docstring). `condition`: a condition id, or the overrides
    as sorted (id, value) pairs (value a number or a parameter id); `key`: where it was configured."""

    name: str
    kind: str
    of: str
    condition: str | tuple[tuple[str, float | str], ...] = ()
    time: float | None = None
    window: tuple[float, float] | None = None
    threshold: float | None = None
    key: str = "outputs[0]"

    @property
    def condition_label(self) -> str:
        if isinstance(self.condition, str):
            return self.condition
        return ", ".join(f"{k}={v}" for k, v in self.condition) or "(model)"


# ---------------------------------------------------------------------------------- parsing


def _number(key: str, value: object, *, minimum: float | None = None) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or (minimum is not None and value < minimum):
        raise ConfigError(None, key=key, expected="a finite number" + (f" ≥ {minimum:g}" if minimum is not None
                                                                         else ""), found=value)
    return float(value)


def parse_outputs(items: object, key: str = "sensitivity.outputs") -> list[Output]:
    """The config list of output mappings as `Output`s, checked (see the module docstring)."""
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(None, key=key, expected="a non-empty list of outputs (mappings with name, kind, of)",
                          found=items if not isinstance(items, list | tuple) else "an empty list")
    outputs: list[Output] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        here = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(None, key=here, expected="a mapping with name, kind, of", found=item)
        unknown = sorted(map(str, set(item) - set(KEYS)))
        if unknown:
            raise ConfigError(None, key=f"{here}.{unknown[0]}", expected=f"one of the keys {list(KEYS)}")
        for required in ("name", "kind", "of"):
            if required not in item:
                raise ConfigError(None, key=f"{here}.{required}", expected="this key (it has no default)")
        name = item["name"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(None, key=f"{here}.name", expected="a name (letters, digits, '_')", found=name)
        if name in seen:
            raise ConfigError(None, key=f"{here}.name", expected="a name no other output has", found=name)
        seen.add(name)
        kind = item["kind"]
        if kind not in KINDS:
            raise ConfigError(None, key=f"{here}.kind", expected=f"one of {list(KINDS)}", found=kind)
        of = item["of"]
        if not isinstance(of, str) or not of:
            raise ConfigError(None, key=f"{here}.of", expected="an observable, state or expression id", found=of)
        for option in ("time", "window", "threshold"):
            if option in item and option not in NEEDS[kind]:
                raise ConfigError(None, key=f"{here}.{option}", expected=f"no '{option}' for kind '{kind}' "
                                  f"(it takes {', '.join(NEEDS[kind]) or 'none of time, window, threshold'})")
            if option not in item and option in NEEDS[kind]:
                raise ConfigError(None, key=f"{here}.{option}", expected=f"this key (kind '{kind}' needs it)")
        time = _number(f"{here}.time", item["time"], minimum=0) if "time" in item else None
        window = None
        if "window" in item:
            raw = item["window"]
            if not isinstance(raw, list | tuple) or len(raw) != 2:
                raise ConfigError(None, key=f"{here}.window", expected="[t0, t1]", found=raw)
            t0 = _number(f"{here}.window[0]", raw[0], minimum=0)
            t1 = _number(f"{here}.window[1]", raw[1], minimum=0)
            if not t1 > t0:
                raise ConfigError(None, key=f"{here}.window", expected="[t0, t1] with t1 > t0", found=list(raw))
            window = (t0, t1)
        threshold = _number(f"{here}.threshold", item["threshold"]) if "threshold" in item else None
        condition = _parse_condition(item.get("condition", {}), f"{here}.condition")
        outputs.append(Output(name, kind, of, condition, time, window, threshold, here))
    return outputs


def _parse_condition(raw: object, key: str) -> str | tuple[tuple[str, float | str], ...]:
    if isinstance(raw, str) and raw:
        return raw
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ConfigError(None, key=key, expected="a condition id or a mapping {parameter or state id: value}",
                          found=raw)
    pairs = []
    for name, value in raw.items():
        if not isinstance(name, str):
            raise ConfigError(None, key=key, expected="parameter or state ids as keys", found=name)
        if isinstance(value, str):
            pairs.append((name, value))
        else:
            pairs.append((name, _number(f"{key}.{name}", value)))
    return tuple(sorted(pairs))


# ------------------------------------------------------------------------------ the evaluator


def check_outputs(problem: PetabProblem, outputs: Sequence[Output]) -> None:
    """Every output names a quantity and a condition of `problem` (what `OutputModel` checks, without
    compiling): raises `ConfigError` naming the key (`sensitivity.outputs[2].of`)."""
    for o in outputs:
        y = _target(problem, o)
        if o.kind == "steady_state" and TIME in y.free_symbols:
            raise ConfigError(None, key=f"{o.key}.of", found=o.of,
                              expected="a quantity that does not depend on time explicitly (kind steady_state)")
        _cells(problem, o)


def _known(problem: PetabProblem) -> set[str]:
    return set(problem.model.parameters) | set(problem.parameters)


def _target(problem: PetabProblem, o: Output) -> sympy.Expr:
    """The sympy expression of `o.of` in states, parameters and time."""
    model = problem.model
    if o.of in problem.observables:
        observable = problem.observables[o.of]
        if observable.observable_placeholders:
            raise ConfigError(None, key=f"{o.key}.of", found=o.of,
                              expected="an observable without observableParameter placeholders (their values "
                                       "come from measurement rows; name a state or expression instead)")
        return observable.formula
    if o.of in model.states:
        return symbol(o.of)
    if o.of in model.observables:
        return sympy.sympify(model.observables[o.of])
    if o.of in model.expressions:
        return _expanded(model, sympy.sympify(model.expressions[o.of]))
    return _formula(problem, o)


def _expanded(model: OdeModel, expr: sympy.Expr) -> sympy.Expr:
    """`expr` with the model's named expressions (which may name each other) replaced by their formulas."""
    expressions = {symbol(k): sympy.sympify(v) for k, v in model.expressions.items()}
    for _ in range(len(expressions) + 1):
        if not expr.free_symbols & set(expressions):
            break
        expr = expr.xreplace(expressions)
    return expr


def _formula(problem: PetabProblem, o: Output) -> sympy.Expr:
    """`o.of` as a formula over the model's states, parameters, expressions and `time` (e.g. a drug's
    concentration `A_c / pk_vc`, which the model folds into its rates and so does not name)."""
    model = problem.model
    names = {*model.states, *model.parameters, *problem.parameters, *model.expressions, "time"}
    expected = ("an observable id of the problem, a state, observable or expression id of its model, or a "
                "formula over its states, parameters and time")
    try:
        expr = sympy.sympify(o.of, locals={n: symbol(n) for n in names} | {"time": TIME})
    except (sympy.SympifyError, SyntaxError, TypeError):
        raise ConfigError(None, key=f"{o.key}.of", found=o.of, expected=expected) from None
    unknown = sorted(str(x) for x in getattr(expr, "free_symbols", set()) if x.name not in names)
    if not isinstance(expr, sympy.Expr) or unknown:
        raise ConfigError(None, key=f"{o.key}.of", found=o.of, expected=expected)
    return _expanded(model, expr)


def _slug(text: str) -> str:
    """An identifier made of `text` (an id, or a formula's characters) for the names of derived quantities."""
    return re.sub(r"\W+", "_", text).strip("_") or "q"


def _cells(problem: PetabProblem, o: Output) -> list[tuple[str, float | str]]:
    """(column, number or parameter id) pairs the output's condition sets, checked."""
    model = problem.model
    if isinstance(o.condition, str):
        if o.condition not in problem.condition_table.index:
            raise ConfigError(None, key=f"{o.key}.condition", found=o.condition,
                              expected="a condition id of the problem's condition table or a mapping of overrides")
        pairs = []
        for column, raw in condition_cells(problem, o.condition):
            if isinstance(raw, str):
                try:
                    raw = float(raw)
                except ValueError:
                    pass
            if is_missing(raw) or (isinstance(raw, float) and math.isnan(raw)):
                continue
            pairs.append((column, raw))
    else:
        pairs = list(o.condition)
        where = f"{o.key}.condition"
    if isinstance(o.condition, str):
        return pairs  # `load_problem` checked the condition table's columns and cells
    for column, value in pairs:
        if column not in model.parameters and column not in model.states:
            raise ConfigError(None, key=f"{where}.{column}",
                              expected="a model parameter, compartment or species id")
        if isinstance(value, str) and value not in _known(problem):
            raise ConfigError(None, key=f"{where}.{column}", expected="a number or a parameter id",
                              found=value)
    return pairs




@dataclass
class _Condition:
    """One distinct condition: overrides as (column index, constant | source column index)."""

    label: str
    parameters: list[tuple[int, float | None, int | None]]
    species: list[tuple[int, float | None, int | None]]
    times: np.ndarray
    steady: bool
    outputs: list[int]
    breakpoints: list[float]  # the model's and those the condition's constants set (a dose time)


class OutputModel:
    """Evaluate `outputs` of `problem` for batches of the `varying` parameters (module docstring)."""

    def __init__(self, problem: PetabProblem, outputs: Sequence[Output], varying: Sequence[str], *,
                 rtol: float = RTOL, atol: float = ATOL, cache_dir: str | None = None) -> None:
        self.problem = problem
        self.outputs = list(outputs)
        self.names = [o.name for o in self.outputs]
        self.varying = list(varying)
        self.rtol, self.atol = rtol, atol
        model = problem.model
        if len(set(self.varying)) != len(self.varying):
            raise ModelError(None, element="varying", expected="distinct parameter ids", found=self.varying)
        # Every parameter-table id and model parameter with its nominal (linear) value.
        self._nominal = {n: p.value for n, p in model.parameters.items()}
        self._nominal.update({n: p.value for n, p in problem.parameters.items()})
        for name in self.varying:
            if name not in self._nominal:
                raise ModelError(None, element=name, expected="a parameter of the problem (a varying parameter)")
        check_outputs(problem, self.outputs)
        targets = {o.of: _target(problem, o) for o in self.outputs}
        conditions = {self._condition_key(o): o for o in self.outputs}
        # Columns of the compiled simulator: the varying parameters, the estimated ones (which `base`
        # may set), every parameter a condition sets or refers to; the rest is folded at its nominal value.
        used = set().union(*(e.free_symbols for e in targets.values())) | set().union(
            *(sympy.sympify(e).free_symbols for e in model.rhs.values()))
        referenced = {v for o in conditions.values() for _, v in self._cells_of(o) if isinstance(v, str)}
        set_by_conditions = {c for o in conditions.values() for c, _ in self._cells_of(o) if c in model.parameters}
        extra = [n for n in problem.parameters if n not in model.parameters
                 and (symbol(n) in used or n in self.varying or n in referenced)]
        wanted = set(self.varying) | referenced | set_by_conditions
        wanted |= {n for n, p in problem.parameters.items() if p.estimate}
        self.columns = [n for n in [*model.parameters, *extra] if n in wanted]
        self._column = {n: i for i, n in enumerate(self.columns)}

        # Quadrature states and observed quantities of the compiled model.
        taken = set(model.states) | set(model.parameters) | set(extra) | {e.id for e in model.events}
        starts = [unique_name(f"x0_{s}", taken) for s in model.states]
        initial: dict[str, sympy.Expr] = {s: symbol(x) for s, x in zip(model.states, starts)}
        at_start = {symbol(s): v for s, v in initial.items()} | {TIME: sympy.Integer(0)}
        quad_states: dict[tuple, str] = {}
        quad_rhs: dict[str, sympy.Expr] = {}
        modes: dict[str, sympy.Expr] = {}
        crossings: list[Event] = []
        for o in self.outputs:
            key = (o.kind, o.of, o.threshold)
            if o.kind in ("auc", "time_above") and key not in quad_states:
                name = unique_name(f"q_{o.kind}_{_slug(o.of)}", taken)
                quad_states[key] = name
                y = targets[o.of]
                if o.kind == "auc":
                    quad_rhs[name] = y
                    continue
                # dQ/dt = m, a mode that two events switch where y crosses the threshold: the
                # integrator's root-finding ends a step there, so no step straddles the jump and none
                # of a step's stages sees the other side (as [y > threshold] in the rhs would).
                above = y > sympy.Float(o.threshold)
                mode = unique_name(f"above_{name}", taken)
                modes[mode] = sympy.Piecewise((sympy.Integer(1), above.xreplace(at_start)), (sympy.Integer(0), True))
                quad_rhs[name] = symbol(mode)
                crossings += [Event(unique_name(f"up_{name}", taken), above, {mode: sympy.Integer(1)}),
                              Event(unique_name(f"down_{name}", taken), sympy.Not(above), {mode: sympy.Integer(0)})]
        self._quad = quad_states
        states = [*model.states, *quad_states.values(), *modes]
        parameters = {n: Parameter(n, float(self._nominal[n])) for n in [*model.parameters, *extra]}
        parameters.update({n: Parameter(n, 0.0) for n in starts})
        initial.update({q: sympy.Integer(0) for q in quad_states.values()})
        initial.update(modes)
        quad_rhs.update({m: sympy.Integer(0) for m in modes})
        # dy/dt = ∂y/∂x · f + ∂y/∂t of the quantities whose maximum is sought (Hermite interpolation).
        slopes = {}
        for o in self.outputs:
            if o.kind == "cmax" and o.of not in slopes:
                y = targets[o.of]
                slopes[o.of] = sum((sympy.diff(y, symbol(s)) * sympy.sympify(model.rhs[s]) for s in model.states),
                                   sympy.diff(y, TIME))
        observed = {unique_name(f"y_{_slug(k)}", taken): e for k, e in targets.items()}
        observed.update({unique_name(f"y_{q}", taken): symbol(q) for q in quad_states.values()})
        observed.update({unique_name(f"dy_{_slug(k)}", taken): e for k, e in slopes.items()})
        self._observed = {name: i for i, name in enumerate([*targets, *quad_states.values()])}
        self._slope = {k: len(self._observed) + i for i, k in enumerate(slopes)}
        simulated = OdeModel(model.name, states, parameters, {**dict(model.rhs), **quad_rhs}, initial,
                             observables=observed, events=[*model.events, *crossings])
        self.compiled = compile_model(simulated, varying=[*self.columns, *starts], cache_dir=cache_dir)

        # x(0) as a function of the columns (other parameters folded), nested initial values resolved.
        fold = {symbol(n): sympy.Float(v) for n, v in self._nominal.items() if n not in self._column
                and not (isinstance(v, float) and math.isnan(v))}
        init = {symbol(s): sympy.sympify(model.initial[s]) for s in model.states}
        for _ in model.states:
            init = {k: v.xreplace({TIME: sympy.Integer(0)}).xreplace(init) for k, v in init.items()}
        column_symbols = [symbol(n) for n in self.columns]
        self._initial = sympy.lambdify([column_symbols], [init[symbol(s)].xreplace(fold) for s in model.states],
                                       "numpy")
        state_symbols = [symbol(s) for s in model.states]
        # Steady-state values: a time-dependent quantity has none (checked above).
        self._targets = sympy.lambdify([state_symbols, column_symbols],
                                       [targets[o.of].xreplace(fold).xreplace({TIME: sympy.nan})
                                        for o in self.outputs], "numpy")
        self._conditions = self._plan(conditions, fold)
        for o in conditions.values():
            fixed = sorted({c for c, _ in self._cells_of(o)} & set(self.varying))
            if fixed:
                log.warning("condition %s sets %s: the varying value does not reach outputs under it",
                            o.condition_label, ", ".join(fixed))

    # ---------------------------------------------------------------------------- set-up

    def _condition_key(self, o: Output) -> object:
        return o.condition

    def _cells_of(self, o: Output) -> list[tuple[str, float | str]]:
        return _cells(self.problem, o)

    def _plan(self, conditions: Mapping[object, Output], fold: Mapping[sympy.Symbol, sympy.Expr]) -> list[_Condition]:
        model = self.problem.model
        plans = []
        for key, first in conditions.items():
            members = [i for i, o in enumerate(self.outputs) if o.condition == key]
            parameters, species = [], []
            for column, value in self._cells_of(first):
                constant = None if isinstance(value, str) else float(value)
                source = value if isinstance(value, str) else None
                if isinstance(value, str) and value not in self._column:
                    constant, source = float(self._nominal[value]), None
                entry = (constant, None if source is None else self._column[source])
                if column in model.states:
                    species.append((model.states.index(column), *entry))
                else:
                    parameters.append((self._column[column], *entry))
            constants = {symbol(self.columns[i]): sympy.Float(c) for i, c, _ in parameters if c is not None}
            breakpoints = switch_times([*model.rhs.values(), *model.observables.values()], {**fold, **constants})
            times: set[float] = set()
            for i in members:
                o = self.outputs[i]
                if o.kind == "value":
                    times.add(o.time)
                elif o.kind in ("auc", "time_above"):
                    times.update(o.window)
                elif o.kind == "cmax":
                    times.update(np.linspace(*o.window, CMAX_POINTS).tolist())
                    times.update(b for b in breakpoints if o.window[0] < b < o.window[1])
            steady = any(self.outputs[i].kind == "steady_state" for i in members)
            plans.append(_Condition(first.condition_label, parameters, species, np.array(sorted(times)), steady,
                                    members, breakpoints))
        return plans

    # ---------------------------------------------------------------------------- evaluation

    def base_columns(self, base: Mapping[str, float] | None) -> np.ndarray:
        """The column values (linear) at the nominal values overridden by `base`."""
        values = np.array([float(self._nominal[n]) for n in self.columns])
        for name, value in (base or {}).items():
            if name in self._column:
                values[self._column[name]] = float(value)
            elif name not in self._nominal:
                raise ModelError(None, element=name, expected="a parameter id of the problem (in base)")
            elif not float(value) == float(self._nominal[name]) and name in self.problem.model.parameters:
                raise ModelError(None, element=name, found=value,
                                 expected=f"its nominal value {self._nominal[name]:g}: it is neither varying nor "
                                          "estimated, so the compiled model folds it in")
        return values

    def evaluate(self, params: np.ndarray, *, base: Mapping[str, float] | None = None,
                 threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Every output for each row of `params` (linear values of `varying`): (values, failed)."""
        params = np.asarray(params, dtype=float)
        if params.ndim != 2 or params.shape[1] != len(self.varying):
            raise ModelError(None, element="params", expected=f"an array of shape (n, {len(self.varying)}) "
                             f"for {self.varying}", found=f"shape {params.shape}")
        n = params.shape[0]
        threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
        columns = np.tile(self.base_columns(base), (n, 1))
        for k, name in enumerate(self.varying):
            if name in self._column:
                columns[:, self._column[name]] = params[:, k]
        values = np.full((n, len(self.outputs)), np.nan)
        failed = np.ones((n, len(self.outputs)), dtype=bool)
        if n == 0:
            return values, failed
        for plan in self._conditions:
            self._evaluate_condition(plan, columns, values, failed, threads)
        bad = ~np.isfinite(values)
        failed |= bad
        values[failed] = np.nan
        return values, failed

    def _evaluate_condition(self, plan: _Condition, columns: np.ndarray, values: np.ndarray, failed: np.ndarray,
                            threads: int) -> None:
        n = columns.shape[0]
        here = columns.copy()
        for index, constant, source in plan.parameters:
            here[:, index] = columns[:, source] if source is not None else constant
        with np.errstate(all="ignore"):
            x0 = self._matrix(self._initial([here[:, j] for j in range(here.shape[1])]), n)
        for index, constant, source in plan.species:
            x0[:, index] = columns[:, source] if source is not None else constant
        full = np.hstack([here, x0])
        ok_input = np.all(np.isfinite(full), axis=1)
        full = np.where(ok_input[:, None], full, 1.0)
        run = run_ok = None
        if plan.times.size:
            result = self.compiled.simulate(full, plan.times, rtol=self.rtol, atol=self.atol, threads=threads,
                                            breakpoints=plan.breakpoints)
            run, run_ok = result.values, ok_input & (result.status == 0)
        steady = steady_ok = None
        if plan.steady:
            result = self.compiled.simulate(full, STEADY_TIMES, rtol=self.rtol, atol=self.atol, threads=threads,
                                            what="states", breakpoints=plan.breakpoints)
            m = len(self.problem.model.states)
            v = result.values[:, :, :m]
            settled = np.all(np.abs(v[:, 1:] - v[:, :-1]) <= 10 * (self.rtol * np.abs(v[:, 1:]) + self.atol), axis=2)
            first = np.argmax(settled, axis=1)
            x = v[np.arange(n), first + 1]
            with np.errstate(all="ignore"):
                steady = self._matrix(self._targets([x[:, j] for j in range(m)],
                                                    [here[:, j] for j in range(here.shape[1])]), n)
            steady_ok = ok_input & (result.status == 0) & settled.any(axis=1)
        for i in plan.outputs:
            o = self.outputs[i]
            if o.kind == "steady_state":
                values[:, i], failed[:, i] = steady[:, i], ~steady_ok
                continue
            failed[:, i] = ~run_ok
            t = plan.times
            if o.kind == "value":
                values[:, i] = run[:, int(np.searchsorted(t, o.time)), self._observed[o.of]]
            elif o.kind in ("auc", "time_above"):
                q = run[:, :, self._observed[self._quad[(o.kind, o.of, o.threshold)]]]
                values[:, i] = q[:, int(np.searchsorted(t, o.window[1]))] - q[:, int(np.searchsorted(t, o.window[0]))]
            else:
                lo, hi = int(np.searchsorted(t, o.window[0])), int(np.searchsorted(t, o.window[1]))
                values[:, i] = _maximum(t[lo:hi + 1], run[:, lo:hi + 1, self._observed[o.of]],
                                        run[:, lo:hi + 1, self._slope[o.of]])

    @staticmethod
    def _matrix(values: list, n: int) -> np.ndarray:
        if not values:
            return np.empty((n, 0))
        return np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in values])


def _maximum(t: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Row maxima of y (n × len(t)) with slopes dy: the largest of the samples and of the maxima of
    the cubic Hermite interpolants on the two intervals beside the largest sample."""
    with np.errstate(all="ignore"):
        rows = np.arange(y.shape[0])
        k = np.argmax(np.where(np.isnan(y), -np.inf, y), axis=1)
        best = y[rows, k]
        for left in (k - 1, k):
            inside = (left >= 0) & (left < len(t) - 1)
            j = np.clip(left, 0, len(t) - 2)
            h = t[j + 1] - t[j]
            y0, y1, m0, m1 = y[rows, j], y[rows, j + 1], h * dy[rows, j], h * dy[rows, j + 1]
            # p(s) on s ∈ [0, 1]; p'(s) = a s² + b s + c
            a = 6 * (y0 - y1) + 3 * (m0 + m1)
            b = 6 * (y1 - y0) - 4 * m0 - 2 * m1
            c = m0
            disc = np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))
            linear = np.abs(a) < 1e-300
            for s in (np.where(linear, -c / b, (-b + disc) / (2 * a)), np.where(linear, -c / b, (-b - disc) / (2 * a))):
                p = ((2 * s**3 - 3 * s**2 + 1) * y0 + (s**3 - 2 * s**2 + s) * m0 + (-2 * s**3 + 3 * s**2) * y1
                     + (s**3 - s**2) * m1)
                use = inside & (s > 0) & (s < 1) & np.isfinite(p) & (p > best)
                best = np.where(use, p, best)
        return best
