"""The reference simulation and log-likelihood of a PEtab problem.

Independent of `qspflow.calibrate` and `qspflow.simulate` on purpose: calibration results are
re-checked against this plain implementation (sympy lambdify + scipy LSODA at tight
tolerances), so it must not share their objective, transcription or compiled simulator. Do not
merge it with them.

Simulation follows PEtab semantics: a condition's columns override parameters, compartment
sizes or species initial values (NaN keeps the model's value; a parameter id stands for its
value); a preequilibration condition is simulated to steady state, and the simulation
condition continues from that state, its species columns overriding where given. Observable
and noise formulas have their `observableParameter{n}_{id}` / `noiseParameter{n}_{id}`
placeholders filled per measurement row.

Integration is one function, `_integrate` (scipy `solve_ivp`, LSODA, rtol 1e-10, atol 1e-12,
restarted at breakpoints; a segment where LSODA fails or crawls is integrated by BDF). Events
(`qspflow.model.Event`) are handled there too, in their own way: a trigger's relations in time
alone make integration stop at their instants, the others are scipy's event functions (lhs − rhs,
searched in the one direction in which the relation would change); at each stop or root the
triggers are evaluated and the events that fire are executed by `_Events.fire`, or queued until
their delay ends (another stop). A measurement at an event's instant sees the states after the event.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import sympy
from petab.v1 import C
from scipy.integrate import solve_ivp
from scipy.optimize import OptimizeResult

from qspflow.errors import PetabError
from qspflow.model import TIME, OdeModel, right_limit, symbol, trigger_relations
from qspflow.petab.problem import (
    Observable,
    PetabProblem,
    cell_value,
    condition_cells,
    replacement_cells,
    text_cell,
)

log = logging.getLogger(__name__)

RTOL = 1e-10
ATOL = 1e-12
# Right-hand side evaluations after which LSODA is taken to crawl and the segment goes to BDF: 20 times the
# most a segment took at the published fits of the six reference problems of the README and at Weber_BMC2015's
# optima (5,227), ≈ 1 s; where LSODA crawled (Weber, with the analytic Jacobian) BDF took 0.5 s.
LSODA_EVALUATIONS = 100_000
STEADY_STATE_TOLERANCE = 1e-8  # |dx/dt| · t, or x's move over the horizon, ≤ tol · (|x| + atol)


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
        self.events = _Events(model) if model.events else None

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


class _Events:
    """A model's events as Python functions, and their execution (SBML's rules, `Event`'s docstring)."""

    # Executions at one instant before a cascade of events counts as endless.
    MAX_EXECUTIONS = 10_000

    def __init__(self, model: OdeModel) -> None:
        self.events = model.events
        xs, ps = model.state_symbols, model.parameter_symbols
        instants: dict[sympy.Basic, sympy.Expr] = {}
        conditions: list[sympy.Basic] = []
        for event in model.events:
            relations = trigger_relations(event.trigger, xs)
            instants.update(relations.times)
            conditions += [r for r in relations.states if r not in conditions]
        self.timed = list(instants)
        self.instants = sympy.lambdify((ps,), list(instants.values()), modules="math")
        at_instant = [right_limit(r, c) for r, c in instants.items()]
        self.timed_truth = sympy.lambdify((TIME, ps), at_instant, modules="math")
        self.condition_truth = sympy.lambdify((TIME, xs, ps), conditions, modules="math")
        # lhs − rhs of each condition, as scipy's event functions; `rising[i]`: the relation is true above 0.
        self.gaps = [sympy.lambdify((TIME, xs, ps), c.lhs - c.rhs, modules="math") for c in conditions]
        self.rising = [isinstance(c, (sympy.Gt, sympy.Ge)) for c in conditions]
        names = sympy.symbols(f"b0:{len(self.timed) + len(conditions)}")
        replace = dict(zip([*self.timed, *conditions], names))
        self.triggers = [sympy.lambdify((names,), sympy.sympify(e.trigger).xreplace(replace), modules="math")
                         for e in model.events]
        self.targets = [[model.states.index(s) for s in e.assignments] for e in model.events]
        self.values = [sympy.lambdify((TIME, xs, ps), list(e.assignments.values()), modules="math")
                       for e in model.events]
        self.priorities = [None if e.priority is None else sympy.lambdify((TIME, xs, ps), e.priority, modules="math")
                           for e in model.events]
        self.delays = [None if e.delay is None else sympy.lambdify((ps,), e.delay, modules="math")
                       for e in model.events]

    def truth(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Every relation's value at t (a relation in time alone: its value right after t)."""
        return np.array([*self.timed_truth(t, p), *self.condition_truth(t, x, p)], dtype=bool)

    def trigger_values(self, relations: np.ndarray) -> np.ndarray:
        return np.array([bool(trigger(relations)) for trigger in self.triggers])

    def functions(self, p: np.ndarray, relations: np.ndarray) -> list:
        """scipy event functions: each condition's lhs − rhs, terminal, watched in the direction
        that would change its present value."""
        functions = []
        for i, (gap, rising) in enumerate(zip(self.gaps, self.rising)):
            true = relations[len(self.timed) + i]

            def function(t: float, x: np.ndarray, gap=gap) -> float:
                return gap(t, x, p)

            function.terminal = True
            function.direction = -1.0 if true == rising else 1.0
            functions.append(function)
        return functions

    def fire(self, t: float, x: np.ndarray, p: np.ndarray, relations: np.ndarray, memory: dict) -> np.ndarray:
        """Execute the events due at t: those whose triggers turned true (from `memory["before"]`)
        without a delay and those whose delay ends, one by one by priority, every trigger evaluated
        again after each; a delayed one joins `memory["queue"]`. Returns the states after; `memory`
        gets the relations and trigger values after."""
        queue = memory["queue"]
        now = self.trigger_values(relations)
        pending: list[tuple[int, object]] = []

        def start(turned: np.ndarray, now: np.ndarray, x: np.ndarray) -> None:
            queue[:] = [q for q in queue if self.events[q[1]].persistent or now[q[1]]]
            for k in np.flatnonzero(turned):
                values = self.values[k](t, x, p) if self.events[k].use_values_from_trigger_time else None
                delay = 0.0 if self.delays[k] is None else float(self.delays[k](p))
                if delay < 0:
                    raise SimulationFailure(f"event {self.events[k].id}: negative delay {delay:g}")
                if delay > 0:
                    queue.append((t + delay, k, values))
                else:
                    pending.append((k, values))

        start(now & ~memory["before"], now, x)
        pending += [(k, values) for due, k, values in queue if due == t]
        queue[:] = [q for q in queue if q[0] != t]
        for _ in range(self.MAX_EXECUTIONS):
            if not pending:
                memory["relations"], memory["before"] = relations, now
                return x
            ranks = [(-math.inf if self.priorities[k] is None else self.priorities[k](t, x, p), -k) for k, _ in pending]
            k, values = pending.pop(ranks.index(max(ranks)))
            if not self.events[k].persistent and not now[k]:
                continue
            x = x.copy()
            x[self.targets[k]] = self.values[k](t, x, p) if values is None else values
            relations = np.array([*relations[:len(self.timed)], *self.condition_truth(t, x, p)], dtype=bool)
            later = self.trigger_values(relations)
            start(later & ~now, later, x)
            now = later
        raise SimulationFailure(f"events keep firing at t = {t:g} (more than {self.MAX_EXECUTIONS} executions)")


class SimulationFailure(Exception):
    """The integrator did not reach the end (`simulate_problem` records NaN and goes on)."""


class _Overtime(Exception):
    """Raised from the right-hand side past a deadline: it ends the integrator's call at once."""


class _Crawl(Exception):
    """Raised from the right-hand side after LSODA_EVALUATIONS calls: the segment goes to BDF."""


def _integrate(numeric: NumericModel, p: np.ndarray, x0: np.ndarray, times: np.ndarray,
               breakpoints: Sequence[float], *, t0: float = 0.0, rtol: float = RTOL,
               atol: float = ATOL, memory: dict | None = None, deadline: float | None = None) -> np.ndarray:
    """States at `times` (≥ t0, sorted) from x(t0) = x0, restarting at each breakpoint and event.

    The one integrator call of the module. `memory` carries the events' relation and trigger
    values from one call to the next (empty or None: the simulation starts at t0, where triggers
    that are true and were not initially fire). Past `deadline` (time.monotonic) it raises
    `SimulationFailure`.
    """
    out = np.empty((len(times), len(x0)))
    end = float(times[-1]) if len(times) else t0
    events = numeric.events
    x = np.asarray(x0, dtype=float)
    stops = {b for b in breakpoints if t0 < b < end}
    if events is not None:
        stops |= {c for c in events.instants(p) if t0 < c <= end}
        memory = {} if memory is None else memory
        if not memory:
            memory.update(before=np.array([e.initial_value for e in events.events]), queue=[])
            x = events.fire(t0, x, p, events.truth(t0, x, p), memory)
    done = int(np.searchsorted(times, t0, side="right"))
    out[:done] = x
    t = t0
    while t < end:
        b = min(e for e in (*stops, end) if e > t)
        if events is not None:
            b = min([b, *(due for due, *_ in memory["queue"] if due > t)])
        here = times[done:][times[done:] <= b]
        t_eval = np.unique(np.append(here, b))
        functions = events.functions(p, memory["relations"]) if events is not None else None
        sol = _solve_segment(numeric, p, (t, b), x, t_eval, rtol, atol, functions, deadline)
        reached = here[: np.searchsorted(here, sol.t[-1], side="right")] if len(sol.t) else here[:0]
        if len(reached):
            out[done:done + len(reached)] = sol.y[:, np.searchsorted(sol.t, reached)].T
            done += len(reached)
        if events is None:
            x, t = sol.y[:, -1], b
            continue
        relations = memory["relations"].copy()
        if sol.status == 1:  # a condition of a trigger changed: the first root ends the run
            crossed = [i for i, found in enumerate(sol.t_events) if len(found)]
            first = min(crossed, key=lambda i: sol.t_events[i][0])
            t, x = float(sol.t_events[first][0]), sol.y_events[first][0]
            for i in crossed:
                if sol.t_events[i][0] == t:
                    relations[len(events.timed) + i] = not relations[len(events.timed) + i]
        else:
            x, t = sol.y[:, -1], b
            relations[:len(events.timed)] = events.timed_truth(b, p)
        x = events.fire(t, x, p, relations, memory)
        out[np.flatnonzero(times[:done] == t)] = x  # an output at an event's instant sees the states after it
    out[done:] = x  # times equal to t0 only
    return out


def _solve_segment(numeric: NumericModel, p: np.ndarray, span: tuple[float, float], x: np.ndarray,
                   t_eval: np.ndarray, rtol: float, atol: float, events: list | None,
                   deadline: float | None) -> OptimizeResult:
    """One segment by LSODA, and by BDF where LSODA fails or crawls (LSODA_EVALUATIONS): at some parameters
    of stiff models LSODA reports "repeated convergence failures", or takes minutes, where BDF, with its own
    step and order control, integrates the segment at the same tolerances in a second (Weber_BMC2015's
    optima: `tests/cases/test_reference_simulation.py`). Past `deadline` (time.monotonic) it raises
    `SimulationFailure`."""
    failures = []
    for method, most in (("LSODA", LSODA_EVALUATIONS), ("BDF", math.inf)):
        evaluations = 0

        def rhs(t: float, y: np.ndarray) -> np.ndarray:
            nonlocal evaluations
            evaluations += 1
            if evaluations > most:
                raise _Crawl
            if deadline is not None and time.monotonic() > deadline:
                raise _Overtime
            return numeric.rhs(t, y, p)

        try:
            with warnings.catch_warnings(record=True) as caught:  # LSODA's failures come as warnings too
                warnings.simplefilter("always")
                sol = solve_ivp(rhs, span, x, method=method, t_eval=t_eval, rtol=rtol, atol=atol,
                                jac=lambda t, y: numeric.jac(t, y, p), events=events)
        except (ArithmeticError, ValueError) as exc:
            failures.append(f"{method}: {exc}")
            continue
        except _Crawl:
            failures.append(f"{method}: {most} evaluations of the right-hand side did not end the segment")
            continue
        except _Overtime:
            raise SimulationFailure(f"still integrating at t = {span[0]:g} when its time ran out") from None
        if sol.status != -1:
            return sol
        failures.append(f"{method}: {'; '.join([*(str(w.message) for w in caught), sol.message])}")
    raise SimulationFailure(f"from t = {span[0]:g} to {span[1]:g}: " + " — ".join(failures))


def _steady_state(numeric: NumericModel, p: np.ndarray, x0: np.ndarray, breakpoints: Sequence[float], *,
                  rtol: float, atol: float, deadline: float | None = None) -> np.ndarray:
    """Integrate over growing horizons (1, 10, …, 1e12) until the rate no longer moves x: judged by the
    rate at the horizon's end, or by the integration over the horizon itself where that rate is the
    cancellation noise of large fluxes (Weber_BMC2015's optima: |dx/dt| 1e-10 at x = 1490, with fluxes
    of 1e4, which would move x by 0.1 over 1e9; x moved by 5e-13 from 1e6 to 1e7)."""
    x, t = np.asarray(x0, dtype=float), 0.0
    memory: dict = {}
    for end in 10.0 ** np.arange(13):
        before = x
        x = _integrate(numeric, p, x, np.array([end]), breakpoints, t0=t, rtol=rtol, atol=atol, memory=memory,
                       deadline=deadline)[0]
        t = end
        rate = np.abs(np.asarray(numeric.rhs(t, x, p), dtype=float))
        tolerance = STEADY_STATE_TOLERANCE * (np.abs(x) + atol)
        if np.all(rate * t <= tolerance) or np.all(np.abs(x - before) <= tolerance):
            return x
    raise SimulationFailure("no steady state reached by t = 1e12")


def simulate_condition(model: OdeModel, parameter_values: Mapping[str, float], times: Sequence[float], *,
                       initial_values: Mapping[str, float] | None = None, numeric: NumericModel | None = None,
                       rtol: float = RTOL, atol: float = ATOL, deadline: float | None = None) -> np.ndarray:
    """States of one condition (rows: `times`, columns: `model.states`) from time 0.

    `parameter_values` override `Parameter.value` by name; `initial_values` override x(0) by
    state name; a time of `inf` means the steady state. Raises `SimulationFailure`, also when
    still integrating past `deadline` (time.monotonic).
    """
    numeric = numeric or NumericModel(model)
    p = numeric.vector(parameter_values)
    x0 = np.array(numeric.initial(p), dtype=float)
    for name, value in (initial_values or {}).items():
        x0[model.states.index(name)] = value
    breakpoints = model.breakpoints(dict(zip(numeric.parameters, p)))
    times = np.asarray(times, dtype=float)
    finite = np.unique(times[np.isfinite(times)])
    states = _integrate(numeric, p, x0, finite, breakpoints, rtol=rtol, atol=atol, deadline=deadline)
    out = np.full((len(times), len(model.states)), np.nan)
    out[np.isfinite(times)] = states[np.searchsorted(finite, times[np.isfinite(times)])]
    if np.isinf(times).any():
        out[np.isinf(times)] = _steady_state(numeric, p, x0, breakpoints, rtol=rtol, atol=atol, deadline=deadline)
    return out


# --------------------------------------------------------------------- simulation table, llh


def simulate_problem(problem: PetabProblem, parameters: Mapping[str, float] | None = None) -> pd.DataFrame:
    """A PEtab simulation table: the measurement table with `simulation` for `measurement`.

    `parameters` (parameter id → value on linear scale) override nominal values. A condition
    whose integration fails gets NaN simulations (logged), so one stiff case is not fatal.
    """
    simulation, _ = _evaluate(problem, parameters)
    table = problem.measurement_table.rename(columns={C.MEASUREMENT: C.SIMULATION})
    table[C.SIMULATION] = simulation
    return table


def log_likelihood(problem: PetabProblem, parameters: Mapping[str, float] | None = None, *,
                   max_seconds: float | None = None) -> float:
    """Σ log p(measurement | simulation, σ) over all rows.

    normal: −½[log(2πσ²) + r²/σ²], laplace: −[log(2σ) + |r|/σ]; for log/log10 transformations
    r is the difference of the transformed values and the Jacobian term −log(m) (−log(m·ln 10))
    keeps the density in measurement units (as AMICI does). −inf when a term is not finite
    (a failed simulation, a non-positive value under a log transformation, σ ≤ 0), and when the
    simulation takes longer than `max_seconds` (a safety cap: at some parameters of some models
    LSODA crawls for hours).
    """
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    simulation, sigma = _evaluate(problem, parameters, deadline)
    observables = [problem.observables[oid] for oid in problem.measurement_table[C.OBSERVABLE_ID]]
    m = problem.measurement_table[C.MEASUREMENT].to_numpy(dtype=float)
    transformation = np.array([o.transformation for o in observables])
    laplace = np.array([o.distribution == C.LAPLACE for o in observables])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.select([transformation == C.LOG, transformation == C.LOG10],
                      [np.log(m) - np.log(simulation), np.log10(m) - np.log10(simulation)], m - simulation)
        jacobian = np.select([transformation == C.LOG, transformation == C.LOG10],
                             [np.log(m), np.log(m * np.log(10))], 0.0)
        terms = np.where(laplace, -(np.log(2 * sigma) + np.abs(r) / sigma),
                         -0.5 * (np.log(2 * np.pi * sigma**2) + (r / sigma) ** 2)) - jacobian
    total = float(np.sum(terms))
    return total if math.isfinite(total) else -math.inf


def _evaluate(problem: PetabProblem, parameters: Mapping[str, float] | None,
              deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Simulated observable and σ per measurement row."""
    model = problem.model
    values = {name: p.value for name, p in model.parameters.items()}
    values.update({name: p.value for name, p in problem.parameters.items()})
    for name, value in (parameters or {}).items():
        if name not in values:
            raise PetabError(problem.files[C.PARAMETER_FILE], element=name, message="unknown parameter id")
        values[name] = float(value)
    numeric = NumericModel(model)
    extra = [n for n in problem.parameters if n not in model.parameters]
    table = problem.measurement_table
    pre = table.get(C.PREEQUILIBRATION_CONDITION_ID, pd.Series("", index=table.index)).map(
        lambda v: text_cell(v, ""))
    sim = table[C.SIMULATION_CONDITION_ID]
    times = table[C.TIME].astype(float).to_numpy()
    simulation = np.full(len(table), np.nan)
    sigma = np.full(len(table), np.nan)
    functions = {oid: _observable_functions(o, model, extra) for oid, o in problem.observables.items()}

    steady_states: dict[str, np.ndarray] = {}  # one preequilibration serves every condition that follows it
    for pre_id, sim_id in dict.fromkeys(zip(pre, sim)):
        rows = np.flatnonzero((pre == pre_id).to_numpy() & (sim == sim_id).to_numpy())
        p_values, x_values = _condition(problem, sim_id, values)
        try:
            if pre_id:
                if pre_id not in steady_states:
                    pre_p, pre_x = _condition(problem, pre_id, values)
                    steady_states[pre_id] = simulate_condition(model, pre_p, [math.inf], initial_values=pre_x,
                                                               numeric=numeric, deadline=deadline)[0]
                x_values = {**dict(zip(model.states, steady_states[pre_id])), **x_values}
            states = simulate_condition(model, p_values, times[rows], initial_values=x_values, numeric=numeric,
                                        deadline=deadline)
        except SimulationFailure as exc:
            condition = f"{pre_id} → {sim_id}" if pre_id else sim_id
            log.warning("condition %s: simulation failed (%s)", condition, exc)
            continue
        p = numeric.vector(p_values)
        q = [values[n] for n in extra]
        for row, x in zip(rows, states):
            observable = problem.observables[table[C.OBSERVABLE_ID].iat[row]]
            value, noise = functions[observable.id]
            own = _replacements(problem, row, C.OBSERVABLE_PARAMETERS, observable.observable_placeholders,
                                values)
            simulation[row] = value(times[row], x, p, q, own)
            own += _replacements(problem, row, C.NOISE_PARAMETERS, observable.noise_placeholders, values)
            sigma[row] = noise(times[row], x, p, q, own)
    return simulation, sigma


def _observable_functions(observable: Observable, model: OdeModel, extra: Sequence[str]) -> tuple:
    """(value, noise) as functions of (t, x, p, extra parameters, placeholder values)."""
    xs, ps = model.state_symbols, model.parameter_symbols
    qs = [symbol(n) for n in extra]
    value = sympy.lambdify((TIME, xs, ps, qs, observable.observable_placeholders), observable.formula,
                           modules="math")
    # A noise formula may hold the observable's placeholders too (PEtab-dev/PEtab#574).
    noise = sympy.lambdify((TIME, xs, ps, qs, [*observable.observable_placeholders, *observable.noise_placeholders]),
                           observable.noise, modules="math")
    return value, noise


def _condition(problem: PetabProblem, condition_id: str, values: Mapping[str, float]) -> tuple[dict, dict]:
    """(parameter values, state initial values) under one condition of the condition table."""
    parameters = dict(values)
    states = {}
    for column, raw in condition_cells(problem, condition_id):
        value = cell_value(raw, values, problem.files[C.CONDITION_FILES], column)
        if math.isnan(value):
            continue
        (states if column in problem.model.states else parameters)[column] = value
    return parameters, states


def _replacements(problem: PetabProblem, row: int, column: str, placeholders: Sequence[sympy.Symbol],
                  values: Mapping[str, float]) -> list[float]:
    """The numbers a measurement row gives for an observable's placeholders."""
    entries = replacement_cells(problem, row, column, len(placeholders))
    return [cell_value(e, values, problem.files[C.MEASUREMENT_FILES], column) for e in entries]
