"""The one objective of a calibration: the negative log-likelihood of a `CalibrationSpec`.

`measurement_term` is the PEtab density of one measurement written once, over a math namespace
(`Namespace`): `NUMPY` evaluates it on arrays (the batch objective of the global stage, here), and
`qspflow.calibrate.transcription` gives it a Pyomo namespace to build the NLP's objective. The data
transformation (lin, log, log10) and its Jacobian are shared as written; for the noise the NLP
passes σ as (log σ, 1/σ, 1/σ²) and, for Laplace noise, |r| as r⁺ + r⁻, so that its terms are smooth
and linear in a log-scale noise parameter (`noise_term` with those arguments), while the arrays use
σ itself. The two noise forms are equal in exact arithmetic but not in floating point, and each
stage's results (the global search's archive, Ipopt's iterates) depend on the bits of its form, so
both are kept, side by side here. `qspflow.petab.log_likelihood`, which does not read this module,
stays the independent reference that verifies every optimum.

`BatchProblem` compiles the model once for all experiments of a spec: the parameters a condition
changes and the initial states are parameters of the compiled simulator, the others are folded in.
`BatchProblem.objective(X)` is the negative log-likelihood (with the objective priors' terms, the
negative log-posterior) of N scaled parameter vectors at once (a set whose simulation fails gets
+inf); `trajectories` gives the states that initialize the NLP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import sympy

from qspflow.calibrate.spec import CalibrationSpec, Experiment, Measurement, to_scaled
from qspflow.model import OdeModel, Parameter, symbol, unique_name
from qspflow.simulate import compile_model

LN10 = math.log(10.0)
LOG_2PI = math.log(2 * math.pi)
LOG_2 = math.log(2)
# Steady states: integrate to 1, 10, …, 1e8 and take the first horizon after which no state moves
# by more than ten times the integration tolerances.
STEADY_TIMES = 10.0 ** np.arange(0, 9)


@dataclass(frozen=True)
class Namespace:
    """The functions `measurement_term` needs: `log`, `log10` of model quantities (arrays or
    expressions) and `data_log`, `data_log10` of measured values (plain numbers)."""

    log: Callable
    log10: Callable
    data_log: Callable
    data_log10: Callable


NUMPY = Namespace(log=np.log, log10=np.log10, data_log=np.log, data_log10=np.log10)


def transformed_residual(value: float, simulation: object, transformation: str,
                         ns: Namespace = NUMPY) -> tuple[object, object]:
    """(r, log |Jacobian|): the residual on the observable's transformed scale and the density's
    change of variables back to the measured scale (0 for lin)."""
    if transformation == "log":
        return ns.data_log(value) - ns.log(simulation), ns.data_log(value)
    if transformation == "log10":
        return ns.data_log10(value) - ns.log10(simulation), ns.data_log(value * LN10)
    return value - simulation, 0.0


def noise_term(distribution: str, jacobian: object, log_sigma: object, inverse: object, square: object,
               r: object = None, absolute: object = None) -> object:
    """−log p in the log-σ form (the NLP's): log σ, 1/σ and 1/σ² given, r for normal noise, |r| for
    Laplace noise."""
    if distribution == "laplace":
        return LOG_2 + log_sigma + absolute * inverse + jacobian
    return log_sigma + 0.5 * LOG_2PI + 0.5 * r**2 * square + jacobian


def measurement_term(value: float, simulation: np.ndarray, sigma: np.ndarray, transformation: str,
                     distribution: str) -> np.ndarray:
    """−log p(value | simulation, σ) elementwise on arrays, as `qspflow.petab.log_likelihood` defines it."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r, jacobian = transformed_residual(value, simulation, transformation, NUMPY)
        if distribution == "laplace":
            return np.log(2 * sigma) + np.abs(r) / sigma + jacobian
        return 0.5 * np.log(2 * np.pi * sigma**2) + 0.5 * (r / sigma) ** 2 + jacobian


class BatchProblem:
    """Every experiment of `spec` on one compiled simulator, for batches of parameter vectors."""

    def __init__(self, spec: CalibrationSpec, *, threads: int | None = None, rtol: float = 1e-6,
                 atol: float = 1e-8, cache_dir: str | None = None) -> None:
        self.spec = spec
        self.threads = None if threads is None else max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
        self.rtol, self.atol = rtol, atol
        model = spec.problem.model
        conditions = [e.parameters for e in spec.experiments]
        conditions += [e.pre_parameters for e in spec.experiments if e.pre_parameters is not None]
        varying = [n for n in model.parameters
                   if len({c[n] for c in conditions}) > 1 or not conditions[0][n].is_Number]
        taken = set(model.parameters)
        starts = [unique_name(f"x0_{i}", taken) for i in range(len(spec.states))]
        parameters = {n: Parameter(n, float(conditions[0][n]) if n not in varying else 0.0) for n in model.parameters}
        parameters.update({n: Parameter(n, 0.0) for n in starts})
        initial = {s: symbol(n) for s, n in zip(spec.states, starts)}
        self.model = OdeModel(model.name, list(spec.states), parameters, dict(model.rhs), initial,
                              events=model.events)
        self.cache_dir = cache_dir
        self.compiled = compile_model(self.model, varying=[*varying, *starts], cache_dir=cache_dir)
        self.varying = varying
        functions: dict[sympy.Expr, Callable] = {}
        self._experiments = [_Compiled(e, spec, varying, functions) for e in spec.experiments]

    # ---------------------------------------------------------------------------- simulation

    def terms(self, X: np.ndarray, *, optimal_scalings: bool = False) -> np.ndarray:
        """−log p of every measurement (columns in measurement-table order) for each row of X; with
        `optimal_scalings`, at each row's `optimal_scalings` instead of its own."""
        return self._terms(X, optimal_scalings)[0]

    def objective(self, X: np.ndarray, *, optimal_scalings: bool = False) -> np.ndarray:
        """Negative log-likelihood (plus −log prior: the negative log-posterior, where the problem has
        objective priors) of each row of X (scaled parameters); +inf where it is undefined. With
        `optimal_scalings`, each row's scaling factors (`CalibrationSpec.scalings`) are at their optimum
        given its other parameters, whatever X holds for them (`optimal_scalings`)."""
        terms, X = self._terms(X, optimal_scalings)
        total = terms.sum(axis=1) + self.spec.neg_log_prior(X)[0]
        return np.where(np.isfinite(total), total, np.inf)

    def optimal_scalings(self, X: np.ndarray) -> np.ndarray:
        """X with each row's scaling factors (`CalibrationSpec.scalings`) where the likelihood is largest
        given its other parameters: Σ y·h/σ² / Σ h²/σ² over the measurements they scale (h the simulated
        value at factor 1), clipped to their bounds; a row that does not simulate keeps its own."""
        X = np.array(np.atleast_2d(X), dtype=float)
        return self._optimal_scalings(X, self._runs(X)) if self.spec.scalings else X

    def _terms(self, X: np.ndarray, optimal_scalings: bool) -> tuple[np.ndarray, np.ndarray]:
        """(terms, X with its scalings at their optimum where asked)."""
        X = np.array(np.atleast_2d(X), dtype=float)
        runs = self._runs(X)
        if optimal_scalings and self.spec.scalings:
            X = self._optimal_scalings(X, runs)
        theta = _columns(self.spec.linear_matrix(X))
        out = np.full((X.shape[0], self.spec.n_data), np.inf)
        for compiled, (states, ok) in zip(self._experiments, runs):
            for group, simulation, sigma in compiled.evaluate(states, theta):
                term = measurement_term(group.values, simulation, sigma, group.transformation, group.distribution)
                out[:, group.rows] = np.where(ok[:, None], term, np.inf)
        return out, X

    def _optimal_scalings(self, X: np.ndarray, runs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        spec = self.spec
        at_one = X.copy()
        at_one[:, spec.scalings] = [to_scaled(spec.scales[i], 1.0) for i in spec.scalings]
        theta = _columns(spec.linear_matrix(at_one))
        weighted = {i: np.zeros((2, len(X))) for i in spec.scalings}  # Σ y·h/σ², Σ h²/σ² per row
        ok = np.ones(len(X), dtype=bool)
        for compiled, (states, ok_run) in zip(self._experiments, runs):
            ok &= ok_run
            for (group, h, sigma), i in zip(compiled.evaluate(states, theta), compiled.scaling):
                if i is not None:
                    with np.errstate(invalid="ignore", over="ignore"):
                        weighted[i] += [(group.values * h / sigma**2).sum(axis=1), (h**2 / sigma**2).sum(axis=1)]
        for i, (yh, hh) in weighted.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                best = np.clip(to_scaled(spec.scales[i], np.maximum(yh / hh, 0.0)), spec.lower[i], spec.upper[i])
            X[:, i] = np.where(ok & np.isfinite(best) & (hh > 0), best, X[:, i])
        return X

    def _runs(self, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """`_states` of every experiment for the rows of X (scaled)."""
        L = self.spec.linear_matrix(X)
        return [self._states(compiled, L) for compiled in self._experiments]

    def _states(self, compiled: _Compiled, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(states at the experiment's times, its steady state appended where measured; whether each row of
        L simulated)."""
        run = self._simulate(compiled, L, compiled.experiment.times, self.rtol, self.atol)
        states = run["states"]
        if run["steady"] is not None:
            states = np.concatenate([states, run["steady"][:, None, :]], axis=1)
        return states, run["ok"]

    def trajectories(self, x: np.ndarray, times: list[np.ndarray], *, rtol: float = 1e-8,
                     atol: float = 1e-10) -> list[dict[str, np.ndarray | None]] | None:
        """States of one scaled parameter vector per experiment: "states" at `times[k]` (sorted,
        ≥ 0), "pre" the preequilibration steady state and "steady" the condition's own (when
        measured), or None where there is none. None if a simulation fails.
        """
        L = self.spec.linear_matrix(np.asarray(x, dtype=float)[None, :])
        out = []
        for compiled, t in zip(self._experiments, times):
            run = self._simulate(compiled, L, np.asarray(t, dtype=float), rtol, atol)
            if not run["ok"][0]:
                return None
            out.append({k: None if run[k] is None else run[k][0] for k in ("states", "pre", "steady")})
        return out

    def _simulate(self, compiled: _Compiled, L: np.ndarray, times: np.ndarray, rtol: float,
                  atol: float) -> dict[str, np.ndarray | None]:
        """One experiment for each row of L: "states" (N × times × states), "pre", "steady", "ok"."""
        n = L.shape[0]
        ok = np.ones(n, dtype=bool)
        columns, x0 = compiled.columns(L), compiled.initial(L)
        pre = steady = None
        experiment = compiled.experiment
        if experiment.preequilibration:
            pre, ok = self.steady(np.hstack([compiled.pre_columns(L), compiled.pre_initial(L)]), rtol, atol,
                                  experiment.pre_breakpoints)
            x0 = np.where(compiled.from_pre, pre, x0)
        states = np.empty((n, 0, len(self.spec.states)))
        if len(times):
            states, ok_run = self._run(np.hstack([columns, x0]), times, rtol, atol, experiment.breakpoints)
            ok &= ok_run
        if experiment.steady_state_measured:
            steady, ok_steady = self.steady(np.hstack([columns, x0]), rtol, atol, experiment.breakpoints)
            ok &= ok_steady
        return {"states": states, "pre": pre, "steady": steady, "ok": ok}

    def _run(self, params: np.ndarray, times: np.ndarray, rtol: float, atol: float,
             breakpoints: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
        """States at `times` for each row of `params`, and whether the row simulated (`breakpoints`: the
        condition's, `Experiment.breakpoints`)."""
        finite = np.all(np.isfinite(params), axis=1)
        result = self.compiled.simulate(np.where(finite[:, None], params, 0.0), times, rtol=rtol, atol=atol,
                                        what="states", threads=self.threads, breakpoints=breakpoints)
        return result.values, finite & (result.status == 0)

    def steady(self, params: np.ndarray, rtol: float, atol: float,
               breakpoints: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Steady states for rows of simulator parameters (condition columns, x0) and whether each
        was reached."""
        v, ok = self._run(params, STEADY_TIMES, rtol, atol, breakpoints)
        settled = np.all(np.abs(v[:, 1:] - v[:, :-1]) <= 10 * (rtol * np.abs(v[:, 1:]) + atol), axis=2)
        first = np.argmax(settled, axis=1)
        return v[np.arange(len(v)), first + 1], ok & settled.any(axis=1)


class ScalingsAtOptimum:
    """The batch objective over the estimated parameters other than the scaling factors (`free`, bounds
    `lower`, `upper`), each factor at its optimum given them (`BatchProblem.optimal_scalings`): the global
    stage searches this space, whose points `full` completes.

    Why: over a factor's bounds (Fujita_SciSignal2010's span 16 decades) the likelihood of a point is
    mostly its factors' misfit. Over 200 uniform points, the median −llh was 9,972,861 with their own
    factors and 9,932 at their optimum (Weber_BMC2015: 1.2e12 and 181,770), at the same simulations.
    """

    def __init__(self, batch: BatchProblem) -> None:
        self.batch = batch
        spec = batch.spec
        self.free = np.array([i for i in range(spec.dimension) if i not in spec.scalings], dtype=int)
        self.lower, self.upper = spec.lower[self.free], spec.upper[self.free]

    def objective(self, X: np.ndarray) -> np.ndarray:
        return self.batch.objective(self._embed(X), optimal_scalings=True)

    def full(self, X: np.ndarray) -> np.ndarray:
        """Rows of the free parameters → full scaled vectors, their scaling factors at their optimum (where a
        row does not simulate: their nominal values)."""
        return self.batch.optimal_scalings(self._embed(X))

    def _embed(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=float))
        out = np.tile(self.batch.spec.nominal, (len(X), 1))
        out[:, self.free] = X
        return out


@dataclass(frozen=True)
class MeasurementGroup:
    """An experiment's measurements of one observable formula, one noise formula (where σ is not a
    number), one transformation and one distribution, evaluated at once: `rows` their columns of the
    measurement table, `at` the index of each one's time in the experiment's simulated times (one past
    the last: its steady state), `values` the measured values; `sigma` is None where every σ is a number,
    then `constant` holds them."""

    rows: np.ndarray
    at: np.ndarray
    values: np.ndarray
    simulation: sympy.Expr
    sigma: sympy.Expr | None
    constant: np.ndarray | None
    transformation: str
    distribution: str


def measurement_groups(experiment: Experiment) -> list[MeasurementGroup]:
    """The experiment's measurements as `MeasurementGroup`s. A group is lambdified and evaluated at once:
    lambdifying each of the example's 882 measurements cost every job that loaded it 4.2 s (grouped: 0.66 s)."""
    members: dict[tuple, list[Measurement]] = {}
    for m in experiment.measurements:
        key = (m.simulation, None if m.sigma.is_Number else m.sigma, m.transformation, m.distribution)
        members.setdefault(key, []).append(m)
    times = experiment.times
    return [MeasurementGroup(np.array([m.row for m in group]),
                             np.array([len(times) if math.isinf(m.time) else int(np.searchsorted(times, m.time))
                                       for m in group]),
                             np.array([m.value for m in group]), simulation, sigma,
                             np.array([float(m.sigma) for m in group]) if sigma is None else None,
                             transformation, distribution)
            for (simulation, sigma, transformation, distribution), group in members.items()]


def _columns(L: np.ndarray) -> list[np.ndarray]:
    """The columns of L as N × 1 arrays: θ broadcast over a group's measurements."""
    return [L[:, j, None] for j in range(L.shape[1])]


class _Compiled:
    """One experiment's numeric functions: simulator columns, x(0) and its measurements' groups."""

    def __init__(self, experiment: Experiment, spec: CalibrationSpec, varying: list[str],
                 functions: dict[sympy.Expr, Callable]) -> None:
        self.experiment = experiment
        theta = spec.symbols
        self._columns = sympy.lambdify([theta], [experiment.parameters[n] for n in varying], "numpy")
        self._initial = sympy.lambdify([theta], [e if e is not None else sympy.Integer(0)
                                                 for e in experiment.initial], "numpy")
        self.from_pre = np.array([e is None for e in experiment.initial])
        if experiment.preequilibration:
            self._pre_columns = sympy.lambdify([theta], [experiment.pre_parameters[n] for n in varying], "numpy")
            self._pre_initial = sympy.lambdify([theta], experiment.pre_initial, "numpy")

        def function(expr: sympy.Expr) -> Callable:
            if expr not in functions:
                functions[expr] = sympy.lambdify([spec.state_symbols, theta], expr, "numpy")
            return functions[expr]

        # Each group with its functions of (states, θ): the simulated values and σ (None: `constant`).
        self.groups = [(g, function(g.simulation), None if g.sigma is None else function(g.sigma))
                       for g in measurement_groups(experiment)]
        # The estimated parameter (its index) that scales each group's simulated values, or None.
        factors = {spec.symbols[i]: i for i in spec.scalings}
        self.scaling = [next((factors[s] for s in g.simulation.free_symbols if s in factors), None)
                        for g, _, _ in self.groups]

    def evaluate(self, states: np.ndarray, theta: list[np.ndarray]) -> Iterator[tuple[MeasurementGroup, np.ndarray,
                                                                                      np.ndarray]]:
        """(group, simulated values, σ), each N × the group's measurements, for states N × times × states and θ
        as columns N × 1 (`_columns`)."""
        for group, simulation_of, sigma_of in self.groups:
            x = states[:, group.at, :]
            shape, arguments = x.shape[:2], [x[..., i] for i in range(x.shape[2])]
            simulation = np.broadcast_to(np.asarray(simulation_of(arguments, theta), dtype=float), shape)
            sigma = np.broadcast_to(group.constant if sigma_of is None
                                    else np.asarray(sigma_of(arguments, theta), dtype=float), shape)
            yield group, simulation, sigma

    @staticmethod
    def _matrix(function: Callable, L: np.ndarray) -> np.ndarray:
        values = function([L[:, j] for j in range(L.shape[1])])
        if not values:
            return np.empty((L.shape[0], 0))
        return np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), (L.shape[0],)) for v in values])

    def columns(self, L: np.ndarray) -> np.ndarray:
        return self._matrix(self._columns, L)

    def initial(self, L: np.ndarray) -> np.ndarray:
        return self._matrix(self._initial, L)

    def pre_columns(self, L: np.ndarray) -> np.ndarray:
        return self._matrix(self._pre_columns, L)

    def pre_initial(self, L: np.ndarray) -> np.ndarray:
        return self._matrix(self._pre_initial, L)
