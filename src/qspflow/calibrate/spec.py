"""The calibration view of a PEtab problem: what is estimated, on which scale, and each experiment's
dynamics and measurements as sympy expressions in the states and the estimated parameters.

The batch objective (`qspflow.calibrate.objective`) and the Pyomo transcription
(`qspflow.calibrate.transcription`) both read this one description, so they cannot disagree about condition
overrides, placeholders or noise formulas; `qspflow.petab.log_likelihood`, which does not read it,
stays the independent reference that verifies every optimum.

Objective priors (`qspflow.petab.priors`) make the objective the negative log-posterior:
`neg_log_prior` gives their terms for batches of scaled vectors, and `simulated_llh` adds their
log-density to the simulated log-likelihood, so that a calibration ranks its optima by the
posterior (a MAP estimate) and profiles the posterior. Without priors both are the likelihood's.

An *experiment* is one (preequilibration, simulation) condition pair of the measurement table.
Fixed parameters are numbers in its expressions; an estimated parameter appears as the sympy symbol
of its id and stands for its value on the linear scale.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sympy
from petab.v1 import C

from qspflow.errors import PetabError
from qspflow.model import TIME, switch_times
from qspflow.petab import PetabProblem, condition_cells, is_missing, log_likelihood, log_prior, replacement_cells

TRANSFORMATIONS = (C.LIN, C.LOG, C.LOG10)
DISTRIBUTIONS = (C.NORMAL, C.LAPLACE)


def _positive(number: sympy.Expr) -> bool:
    """A sympy number is real, finite and > 0 (not nan, zoo or complex)."""
    try:
        return math.isfinite(value := float(number)) and value > 0
    except TypeError:
        return False


def to_linear(scale: str, value: float | np.ndarray) -> float | np.ndarray:
    """A value on a PEtab parameter scale (lin, log, log10) on the linear scale."""
    if scale == C.LOG:
        return np.exp(value)
    if scale == C.LOG10:
        return np.power(10.0, value)
    return value


def to_scaled(scale: str, value: float | np.ndarray) -> float | np.ndarray:
    """A linear value on a PEtab parameter scale; 0 on a log scale is −inf."""
    with np.errstate(divide="ignore"):
        if scale == C.LOG:
            return np.log(value)
        if scale == C.LOG10:
            return np.log10(value)
    return value


@dataclass(frozen=True)
class Measurement:
    """One measurement-table row with its simulated value and σ as expressions.

    `simulation` and `sigma` are in the state symbols and the estimated parameters (time already
    substituted); `row` is the position in the measurement table.
    """

    row: int
    observable: str
    time: float
    value: float
    simulation: sympy.Expr
    sigma: sympy.Expr
    transformation: str
    distribution: str


@dataclass
class Experiment:
    """One (preequilibration, simulation) condition pair and its measurements.

    `parameters` maps every model parameter to its value under the condition (a number or an
    estimated parameter's symbol); `rhs` is the model's right-hand side with them substituted
    (states and `TIME` stay symbols). `initial[i]` is x_i(0), or None where the state starts from the
    preequilibration steady state. The `pre_*` fields describe the preequilibration condition.
    `breakpoints` (`pre_breakpoints`): the times at which `rhs` (`pre_rhs`) switches, the model's own and
    those the condition sets (a dose time in the condition table, which the compiled model only sees as
    a varying parameter: Weber_BMC2015's PdBu_time).
    """

    condition: str
    preequilibration: str
    parameters: dict[str, sympy.Expr]
    rhs: list[sympy.Expr]
    initial: list[sympy.Expr | None]
    measurements: list[Measurement]
    pre_parameters: dict[str, sympy.Expr] | None = None
    pre_rhs: list[sympy.Expr] | None = None
    pre_initial: list[sympy.Expr] | None = None
    times: np.ndarray = field(init=False)
    breakpoints: tuple[float, ...] = field(init=False)
    pre_breakpoints: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        finite = [m.time for m in self.measurements if math.isfinite(m.time)]
        self.times = np.unique(np.array(finite, dtype=float))
        self.breakpoints = tuple(switch_times(self.rhs))
        self.pre_breakpoints = tuple(switch_times(self.pre_rhs or ()))

    @property
    def label(self) -> str:
        return f"{self.preequilibration} → {self.condition}" if self.preequilibration else self.condition

    @property
    def steady_state_measured(self) -> bool:
        """Some measurement is at time `inf` (the condition's own steady state)."""
        return any(math.isinf(m.time) for m in self.measurements)


class CalibrationSpec:
    """What a calibration of `problem` estimates and fits (see the module docstring).

    `names`, `scales`, `lower`, `upper`: the estimated parameters in parameter-table order with their
    bounds on their scales; `nominal` their nominal values on their scales, moved into the bounds
    where the table puts them outside (where a calibration may start); `noise` the indices of those
    that appear in noise formulas only; `scalings` those that are observation scaling factors
    (`_scaling_parameters`); `blocks` those of each state's equation (found when first asked for);
    `priors` their objective priors (None: no prior).
    """

    def __init__(self, problem: PetabProblem) -> None:
        self.problem = problem
        model = problem.model
        source = problem.files[C.PARAMETER_FILE]
        estimated = [p for p in problem.parameters.values() if p.estimate]
        if not estimated:
            raise PetabError(source, column=C.ESTIMATE, expected="at least one estimated parameter")
        self.names = [p.name for p in estimated]
        self.scales = [p.scale for p in estimated]
        self.symbols = [model.symbol(n) for n in self.names]
        self.lower = np.array([to_scaled(p.scale, p.lower) for p in estimated], dtype=float)
        self.upper = np.array([to_scaled(p.scale, p.upper) for p in estimated], dtype=float)
        self.nominal = np.clip(np.array([to_scaled(p.scale, p.value) for p in estimated], dtype=float),
                               self.lower, self.upper)
        self.priors = [problem.priors.get(n) for n in self.names]
        rows = {name: k + 2 for k, name in enumerate(problem.parameter_table.index)}  # header: row 1
        for i, p in enumerate(estimated):
            # The search samples the box between the bounds on the parameter's scale: it needs a finite, open one.
            if not (np.isfinite(self.lower[i]) and np.isfinite(self.upper[i]) and self.lower[i] < self.upper[i]):
                raise PetabError(source, row=rows.get(p.name), element=p.name, column=C.LOWER_BOUND,
                                 expected=f"finite bounds with lowerBound < upperBound on the {p.scale} scale for "
                                          "an estimated parameter (one value: set estimate to 0)",
                                 found=f"[{p.lower:g}, {p.upper:g}]")
        self.states = list(model.states)
        self.state_symbols = model.state_symbols

        # Every id a table may name → its value: a number, or the symbol of an estimated parameter.
        self._values: dict[str, sympy.Expr] = {n: sympy.Float(p.value) for n, p in model.parameters.items()}
        for name, p in problem.parameters.items():
            self._values[name] = model.symbol(name) if p.estimate else sympy.Float(p.value)
        self.experiments = self._experiments()
        self.n_data = sum(len(e.measurements) for e in self.experiments)
        self.noise = self._noise_parameters()
        self.scalings = self._scaling_parameters()

    # ------------------------------------------------------------------------- parameters

    @property
    def dimension(self) -> int:
        return len(self.names)

    def linear(self, x: Sequence[float]) -> dict[str, float]:
        """Scaled parameter vector → {parameter id: value on the linear scale}."""
        return {n: float(to_linear(s, float(v))) for n, s, v in zip(self.names, self.scales, x)}

    def linear_matrix(self, X: np.ndarray) -> np.ndarray:
        """Rows of scaled parameter vectors → the same rows on the linear scale."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        return np.column_stack([to_linear(s, X[:, i]) for i, s in enumerate(self.scales)])

    def simulated_llh(self, x: Sequence[float], max_seconds: float | None = None) -> float:
        """The log-likelihood at `x` by `qspflow.petab` (tight-tolerance integration, independent code),
        plus the log-prior where the problem has objective priors (the log-posterior up to its evidence);
        −inf when the simulation takes longer than `max_seconds`."""
        values = self.linear(x)
        return log_likelihood(self.problem, values, max_seconds=max_seconds) + log_prior(self.problem, values)

    def neg_log_prior(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(−log prior, its gradient, the diagonal of its Fisher information) for rows X of scaled
        vectors: shapes N, N × d, N × d; zeros without priors."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        value, gradient, information = np.zeros(len(X)), np.zeros(X.shape), np.zeros(X.shape)
        for i, prior in enumerate(self.priors):
            if prior is not None:
                v, gradient[:, i], information[:, i] = (np.broadcast_to(t, (len(X),)) for t in prior.terms(X[:, i]))
                value += v
        return value, gradient, information

    def _noise_parameters(self) -> list[int]:
        """Indices of the estimated parameters that appear in noise formulas only."""
        dynamic: set[sympy.Symbol] = set()
        noisy: set[sympy.Symbol] = set()
        for e in self.experiments:
            exprs = [*e.rhs, *(v for v in e.initial if v is not None), *(e.pre_rhs or []), *(e.pre_initial or [])]
            exprs += [m.simulation for m in e.measurements]
            dynamic.update(*(x.free_symbols for x in exprs))
            noisy.update(*(m.sigma.free_symbols for m in e.measurements))
        return [i for i, s in enumerate(self.symbols) if s in noisy and s not in dynamic]

    def _scaling_parameters(self) -> list[int]:
        """Indices of the estimated parameters that are observation scaling factors: each one a factor of
        the simulated value of every measurement it appears in, with lin transformation and normal noise,
        and in nothing else (no dynamics, σ, other scaling factor or prior). Given the others, the
        likelihood is a quadratic in it with a closed-form optimum (`BatchProblem.objective` with
        `optimal_scalings`; the hierarchical optimization of Loos et al. 2018)."""
        candidates = {s: i for i, s in enumerate(self.symbols) if self.priors[i] is None}
        excluded: set[sympy.Symbol] = set()
        for e in self.experiments:
            exprs = [*e.rhs, *(v for v in e.initial if v is not None), *(e.pre_rhs or []), *(e.pre_initial or [])]
            exprs += [m.sigma for m in e.measurements]
            excluded.update(*(x.free_symbols for x in exprs))
            for m in e.measurements:
                factors = m.simulation.free_symbols & candidates.keys()
                if len(factors) > 1 or (factors and (m.transformation != C.LIN or m.distribution != C.NORMAL)):
                    excluded.update(factors)
                elif factors:
                    factor = next(iter(factors))
                    rest = m.simulation.diff(factor)
                    if factor in rest.free_symbols or sympy.expand(m.simulation - factor * rest) != 0:
                        excluded.add(factor)
        return sorted(i for s, i in candidates.items() if s not in excluded
                      and any(s in m.simulation.free_symbols for e in self.experiments for m in e.measurements))

    @functools.cached_property
    def blocks(self) -> list[tuple[int, ...]]:
        """Indices of the estimated parameters in each state's equation (its right-hand side and initial value
        in any experiment, preequilibration included), one tuple per distinct set in state order, leaving out
        the empty set and the set of every parameter: the model's modules, whose parameters an optimum may
        have wrong together (basin hopping's block hops, `CalibrationSession.hop`). Only basin hopping asks."""
        index = {s: i for i, s in enumerate(self.symbols)}
        found: list[set[int]] = [set() for _ in self.states]
        for e in self.experiments:
            for i in range(len(self.states)):
                exprs = [e.rhs[i], e.initial[i], *([e.pre_rhs[i], e.pre_initial[i]] if e.pre_rhs else [])]
                for x in exprs:
                    if x is not None:
                        found[i].update(index[s] for s in x.free_symbols if s in index)
        distinct = dict.fromkeys(tuple(sorted(b)) for b in found)
        return [block for block in distinct if 0 < len(block) < self.dimension]

    # ------------------------------------------------------------------------ experiments

    def _experiments(self) -> list[Experiment]:
        table = self.problem.measurement_table
        pre = (table[C.PREEQUILIBRATION_CONDITION_ID] if C.PREEQUILIBRATION_CONDITION_ID in table
               else pd.Series("", index=table.index))
        pre = pre.map(lambda v: "" if is_missing(v) else str(v))
        rows: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(pre, table[C.SIMULATION_CONDITION_ID].astype(str))):
            rows.setdefault(key, []).append(i)
        return [self._experiment(pre_id, sim_id, positions) for (pre_id, sim_id), positions in rows.items()]

    def _experiment(self, pre_id: str, sim_id: str, positions: list[int]) -> Experiment:
        model = self.problem.model
        parameters, species = self._condition(sim_id)
        substitute = {model.symbol(n): v for n, v in parameters.items()}
        rhs = [sympy.sympify(model.rhs[s]).xreplace(substitute) for s in self.states]
        if pre_id:
            pre_parameters, pre_species = self._condition(pre_id)
            pre_substitute = {model.symbol(n): v for n, v in pre_parameters.items()}
            pre_rhs = [sympy.sympify(model.rhs[s]).xreplace(pre_substitute) for s in self.states]
            pre_initial = self._initial(pre_substitute, pre_species)
            initial = [species.get(s) for s in self.states]
        else:
            pre_parameters = pre_rhs = pre_initial = None
            initial = self._initial(substitute, species)
        measurements = [self._measurement(i, substitute) for i in positions]
        return Experiment(sim_id, pre_id, parameters, rhs, initial, measurements, pre_parameters, pre_rhs,
                          pre_initial)

    def _condition(self, condition_id: str) -> tuple[dict[str, sympy.Expr], dict[str, sympy.Expr]]:
        """(model parameter → value, species → initial value override) under one condition."""
        model = self.problem.model
        parameters = {n: self._values[n] for n in model.parameters}
        species = {}
        for column, raw in condition_cells(self.problem, condition_id):
            value = self._value(raw, self.problem.files[C.CONDITION_FILES], column)
            (species if column in model.states else parameters)[column] = value
        return parameters, species

    def _initial(self, substitute: Mapping[sympy.Symbol, sympy.Expr],
                 species: Mapping[str, sympy.Expr]) -> list[sympy.Expr]:
        """x(0) under a condition; initial values may name other states' initial values."""
        model = self.problem.model
        initial = {model.symbol(s): species.get(s, sympy.sympify(model.initial[s]).xreplace(substitute))
                   for s in self.states}
        for _ in self.states:
            initial = {k: v.xreplace({TIME: sympy.Integer(0)}).xreplace(initial) for k, v in initial.items()}
        return [initial[model.symbol(s)] for s in self.states]

    def _measurement(self, i: int, substitute: Mapping[sympy.Symbol, sympy.Expr]) -> Measurement:
        problem = self.problem
        table = problem.measurement_table
        observable = problem.observables[table[C.OBSERVABLE_ID].iat[i]]
        source = problem.files[C.MEASUREMENT_FILES]
        replace = {problem.model.symbol(n): v for n, v in self._values.items()
                   if n not in problem.model.parameters}
        replace.update(substitute)
        for column, holders in ((C.OBSERVABLE_PARAMETERS, observable.observable_placeholders),
                                (C.NOISE_PARAMETERS, observable.noise_placeholders)):
            entries = replacement_cells(problem, i, column, len(holders))
            replace.update({h: self._value(e, source, column) for h, e in zip(holders, entries)})
        time = float(table[C.TIME].iat[i])
        at = {TIME: sympy.Float(time)} if math.isfinite(time) else {}
        simulation = observable.formula.xreplace(replace).xreplace(at)
        sigma = observable.noise.xreplace(replace).xreplace(at)
        if sigma.is_number and not _positive(sigma):  # no parameter can make the likelihood finite
            formula = problem.observable_table.loc[observable.id, C.NOISE_FORMULA]
            raise PetabError(source, row=i + 2, element=observable.id,
                             expected=f"a noise σ > 0 (noiseFormula '{formula}' with this row's "
                                      "noiseParameters and the fixed parameters' values)",
                             found=format(float(sigma), "g") if sigma.is_real else sigma)
        if observable.transformation not in TRANSFORMATIONS or observable.distribution not in DISTRIBUTIONS:
            raise PetabError(problem.files[C.OBSERVABLE_FILES], element=observable.id,
                             expected=f"a transformation in {TRANSFORMATIONS} and a distribution in {DISTRIBUTIONS}",
                             found=f"{observable.transformation}, {observable.distribution}")
        return Measurement(i, observable.id, time, float(table[C.MEASUREMENT].iat[i]), simulation, sigma,
                           observable.transformation, observable.distribution)

    def _value(self, raw: object, source: str, column: str) -> sympy.Expr:
        """A table cell that is a number or a parameter id."""
        if isinstance(raw, str):
            try:
                return sympy.Float(float(raw))
            except ValueError:
                if raw not in self._values:
                    raise PetabError(source, column=column, expected="a number or a parameter id",
                                     found=raw) from None
                return self._values[raw]
        return sympy.Float(float(raw))
