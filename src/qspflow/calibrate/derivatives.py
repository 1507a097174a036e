"""The negative log-likelihood with its gradient and Fisher information, by forward sensitivities.

`GradientProblem` evaluates, at one scaled parameter vector, what a trust-region Newton method
needs: the value (the same PEtab density as `objective.measurement_term`), its gradient and the
Fisher information matrix (the Gauss–Newton Hessian of the negative log-likelihood, positive
semi-definite, exact at a perfect fit). The states and their sensitivities to the simulator's
parameters come from one compiled system (`qspflow.simulate.sensitivity`); the chain rule to the
estimated parameters runs through the sympy Jacobians of each experiment's condition columns,
initial values and measurement formulas. A steady state (preequilibration, or measured at t = ∞)
gets its sensitivities from the linear system they satisfy there (`_steady`).

For a measurement with residual r on the transformed scale and noise σ, both functions of θ:
    normal:  −log p = log σ + ½ log 2π + ½ r²/σ²,  ∇ = ∇σ/σ + r∇r/σ² − r²∇σ/σ³,
             FIM = ∇r∇rᵀ/σ² + 2∇σ∇σᵀ/σ²
    Laplace: −log p = log 2σ + |r|/σ,  ∇ = ∇σ/σ + sign(r)∇r/σ − |r|∇σ/σ²,  FIM = (∇r∇rᵀ + ∇σ∇σᵀ)/σ²
(plus the change of variables of a log-transformed observable, which does not depend on θ).
Objective priors add their terms on the parameters' scales (`CalibrationSpec.neg_log_prior`): −log p,
its gradient and its Fisher information (a diagonal), so that the value is the negative
log-posterior and the trust region's Hessian stays positive semi-definite.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
from petab.v1 import C

from qspflow.calibrate.objective import (
    LN10,
    STEADY_TIMES,
    BatchProblem,
    MeasurementGroup,
    measurement_groups,
    measurement_term,
)
from qspflow.calibrate.spec import CalibrationSpec, Experiment
from qspflow.model import derivative
from qspflow.simulate import STATUS_MESSAGES
from qspflow.simulate.sensitivity import CompiledSensitivities, compile_sensitivities

# Integration tolerances of the gradient: tighter than the global search's, so that the gradient
# is accurate where the trust region needs it (near an optimum).
RTOL, ATOL = 1e-8, 1e-10
# Each experiment is integrated by "auto" (Dormand–Prince, switching to Rodas4 where the stiffness test
# fires) unless it is stiff at the problem's nominal parameters: then by Rodas4 throughout, as the explicit
# phase before the stiffness test cost up to 5× as much there (Fujita_SciSignal2010). On the example's
# models, which are not stiff, "auto" costs a quarter of Rodas4 (0.05 s against 0.21 s a gradient).
METHODS = ("auto", "implicit")
# Singular values of the Jacobian at a steady state below this (relative) span its conserved moieties.
NULL_TOLERANCE = 1e-10


@dataclass
class Evaluation:
    """The negative log-likelihood, its gradient and Fisher information at a scaled vector;
    `nll` is inf and `reason` says why where the model cannot be simulated there."""

    nll: float
    gradient: np.ndarray
    fim: np.ndarray
    reason: str = ""


def _lambdify(theta: Sequence[sympy.Symbol], exprs: Sequence[sympy.Expr]) -> tuple:
    """(values, Jacobian) of `exprs` in θ as functions of the linear parameter vector."""
    exprs = list(exprs)
    jacobian = [[derivative(e, v) for v in theta] for e in exprs]
    return sympy.lambdify([theta], exprs, "numpy"), sympy.lambdify([theta], jacobian, "numpy")


def _matrix(function, L: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(function(L), dtype=float).reshape(shape)


class _Observations:
    """A `MeasurementGroup`'s h, σ and their partial derivatives in the states and θ (linear), evaluated
    at once at each measurement's states."""

    def __init__(self, group: MeasurementGroup, states: Sequence[sympy.Symbol], theta: Sequence[sympy.Symbol],
                 functions: dict[sympy.Expr, tuple[Callable, np.ndarray]]) -> None:
        self.group = group
        self.n, self.p = len(states), len(theta)
        self.simulation = self._function(group.simulation, states, theta, functions)
        self.sigma = None if group.sigma is None else self._function(group.sigma, states, theta, functions)

    @staticmethod
    def _function(expr: sympy.Expr, states: Sequence[sympy.Symbol], theta: Sequence[sympy.Symbol],
                  functions: dict[sympy.Expr, tuple[Callable, np.ndarray]]) -> tuple[Callable, np.ndarray]:
        """The expression and those of its derivatives in the states and θ that are not identically zero,
        lambdified once per problem, and their positions in (value, ∂/∂states, ∂/∂θ): most derivatives of
        an observable are zero, and broadcasting each to the group's size was a third of Weber_BMC2015's
        gradient."""
        if expr not in functions:
            exprs = [expr, *(derivative(expr, v) for v in (*states, *theta))]
            nonzero = np.array([0, *(i for i, e in enumerate(exprs) if i and e != 0)])
            functions[expr] = (sympy.lambdify([states, theta], [exprs[i] for i in nonzero], "numpy"), nonzero)
        return functions[expr]

    def _evaluate(self, function: tuple[Callable, np.ndarray], x: np.ndarray,
                  L: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value (k,), ∂/∂states (k, n), ∂/∂θ (k, p)) at the group's states x (k, n)."""
        evaluate, nonzero = function
        values = np.zeros((1 + self.n + self.p, len(x)))
        for i, v in zip(nonzero, evaluate(list(x.T), L)):
            values[i] = v
        return values[0], values[1:1 + self.n].T, values[1 + self.n:].T

    def __call__(self, x: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, ...]:
        """h, σ (k,), ∂h/∂x, ∂σ/∂x (k, n), ∂h/∂θ, ∂σ/∂θ (k, p) at the group's states x (k, n)."""
        h, h_x, h_t = self._evaluate(self.simulation, x, L)
        if self.sigma is None:
            k = len(x)
            return h, self.group.constant, h_x, h_t, np.zeros((k, self.n)), np.zeros((k, self.p))
        sigma, s_x, s_t = self._evaluate(self.sigma, x, L)
        return h, sigma, h_x, h_t, s_x, s_t


class _Experiment:
    """One experiment's condition columns, initial values and observations, differentiable in θ."""

    def __init__(self, experiment: Experiment, spec: CalibrationSpec, varying: list[str],
                 functions: dict[sympy.Expr, tuple[Callable, np.ndarray]]) -> None:
        self.experiment = experiment
        theta = spec.symbols
        self.n_columns = len(varying)
        self.columns = _lambdify(theta, [experiment.parameters[n] for n in varying])
        self.initial = _lambdify(theta, [e if e is not None else sympy.Integer(0) for e in experiment.initial])
        self.from_pre = np.array([e is None for e in experiment.initial])
        self.method = METHODS[1]  # until `GradientProblem._choose_methods` chooses
        if experiment.preequilibration:
            self.pre_columns = _lambdify(theta, [experiment.pre_parameters[n] for n in varying])
            self.pre_initial = _lambdify(theta, experiment.pre_initial)
        exprs = [[experiment.parameters[n] for n in varying]
                 + [e if e is not None else sympy.Integer(0) for e in experiment.initial]]
        if experiment.preequilibration:
            exprs.append([experiment.pre_parameters[n] for n in varying] + list(experiment.pre_initial))
        self._moved = {k for row in exprs for k, e in enumerate(row) if e.free_symbols & set(theta)}
        # A state that starts from the preequilibration's steady state starts where θ puts it.
        self._moved |= {len(varying) + i for i, e in enumerate(experiment.initial) if e is None}
        self.observations = [_Observations(group, spec.state_symbols, theta, functions)
                             for group in measurement_groups(experiment)]

    def moves(self, k: int) -> bool:
        """Simulator parameter k (condition columns, then initial states) depends on θ here."""
        return k in self._moved


class GradientProblem:
    """Value, gradient and Fisher information of the negative log-likelihood of `batch.spec`
    (see the module docstring); the sensitivity system is compiled once, on construction."""

    def __init__(self, batch: BatchProblem, *, rtol: float = RTOL, atol: float = ATOL) -> None:
        self.spec = spec = batch.spec
        self.rtol, self.atol = rtol, atol
        self.threads = 1
        self._batch = batch
        functions: dict[sympy.Expr, tuple[Callable, np.ndarray]] = {}
        self._experiments = [_Experiment(e, spec, batch.varying, functions) for e in spec.experiments]
        # Sensitivities only to the simulator parameters that some θ moves: the others' are never used.
        varying = batch.compiled.varying
        self._moved = np.flatnonzero([any(e.moves(k) for e in self._experiments) for k in range(len(varying))])
        self.simulator = compile_sensitivities(batch.model, varying=varying, wrt=[varying[k] for k in self._moved],
                                               cache_dir=batch.cache_dir)
        self._states_controlled: list[CompiledSensitivities] = []  # shared with `with_tolerances` views
        # ∂x(0)/∂p of the simulator: 1 where p is a state's initial-value parameter (after the columns).
        n = len(spec.states)
        self._initial_sensitivity = np.zeros((n, len(self._moved)))
        for k, position in enumerate(self._moved):
            if position >= len(batch.varying):
                self._initial_sensitivity[position - len(batch.varying), k] = 1.0
        self._log_factor = np.array([LN10 if s == C.LOG10 else 1.0 if s == C.LOG else 0.0 for s in spec.scales])
        self._choose_methods()

    def _choose_methods(self) -> None:
        """Each experiment's integration method, from the problem alone (so every process chooses the same):
        Rodas4 where the experiment is stiff at the nominal parameters or cannot be simulated there."""
        L = self.spec.linear_matrix(self.spec.nominal[None, :])[0]
        for e in self._experiments:
            e.method = METHODS[0]
            run = self._experiment(e, L)
            if isinstance(run, str) or run[2]:
                e.method = METHODS[1]

    def with_tolerances(self, rtol: float, atol: float) -> GradientProblem:
        """The same problem integrated at other tolerances (sharing the compiled system)."""
        view = copy.copy(self)
        view.rtol, view.atol = rtol, atol
        return view

    def evaluate(self, x: Sequence[float]) -> Evaluation:
        """The negative log-likelihood at the scaled vector x, its gradient and FIM in x."""
        spec = self.spec
        x = np.asarray(x, dtype=float)
        d = spec.dimension
        if not np.isfinite(x).all():  # fides' trust-region subproblem can propose NaN (Fujita_SciSignal2010)
            return Evaluation(math.inf, np.full(d, np.nan), np.full((d, d), np.nan), "non-finite parameters proposed")
        L = spec.linear_matrix(x[None, :])[0]
        nll, gradient, fim = 0.0, np.zeros(d), np.zeros((d, d))
        for e in self._experiments:
            run = self._experiment(e, L)
            if isinstance(run, str):
                return Evaluation(math.inf, np.full(d, np.nan), np.full((d, d), np.nan), run)
            states, sensitivities, _ = run
            for observations in e.observations:
                group = observations.group
                x_m, dx_m = states[group.at], sensitivities[group.at]
                h, sigma, h_x, h_t, s_x, s_t = observations(x_m, L)
                dh = np.einsum("kn,knd->kd", h_x, dx_m) + h_t
                ds = np.einsum("kn,knd->kd", s_x, dx_m) + s_t
                term = measurement_term(group.values, h, sigma, group.transformation, group.distribution)
                if not np.isfinite(term).all():
                    k = int(np.flatnonzero(~np.isfinite(term))[0])
                    reason = (f"the likelihood of measurement row {group.rows[k] + 2} is not finite "
                              f"(simulation {h[k]:g})")
                    return Evaluation(math.inf, np.full(d, np.nan), np.full((d, d), np.nan), reason)
                r, dr = _residual(group.transformation, group.values, h, dh)
                nll += float(term.sum())
                dr_s, ds_s = dr / sigma[:, None], ds / sigma[:, None]
                if group.distribution == C.LAPLACE:
                    gradient += (ds_s + np.copysign(1.0, r)[:, None] * dr_s
                                 - (np.abs(r) / sigma)[:, None] * ds_s).sum(0)
                    fim += dr_s.T @ dr_s + ds_s.T @ ds_s
                else:
                    gradient += (ds_s + (r / sigma)[:, None] * dr_s - ((r / sigma) ** 2)[:, None] * ds_s).sum(0)
                    fim += dr_s.T @ dr_s + 2.0 * ds_s.T @ ds_s
        # To the parameters' scales: dθ/dx = θ·ln b on a log scale (b = e or 10), 1 on the linear scale.
        chain = np.where(self._log_factor > 0, L * self._log_factor, 1.0)
        prior, prior_gradient, prior_information = (v[0] for v in spec.neg_log_prior(x[None, :]))
        if not math.isfinite(prior):
            return Evaluation(math.inf, np.full(d, np.nan), np.full((d, d), np.nan),
                              "outside the support of an objective prior")
        return Evaluation(nll + float(prior), gradient * chain + prior_gradient,
                          fim * np.outer(chain, chain) + np.diag(prior_information))

    def _experiment(self, e: _Experiment, L: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool] | str:
        """(states (T, n), d states/dθ (T, n, d)) at the experiment's measurement times and then, where
        measured, its steady state, and whether its integration found it stiff; or the reason it cannot
        be simulated."""
        n, d = len(self.spec.states), self.spec.dimension
        x0 = _matrix(e.initial[0], L, (n,))
        dx0 = _matrix(e.initial[1], L, (n, d))
        if e.experiment.preequilibration:
            columns = _matrix(e.pre_columns[0], L, (e.n_columns,))
            d_params = np.vstack([_matrix(e.pre_columns[1], L, (e.n_columns, d)),
                                  _matrix(e.pre_initial[1], L, (n, d))])
            steady = self._steady(np.concatenate([columns, _matrix(e.pre_initial[0], L, (n,))]),
                                  e.experiment.pre_breakpoints)
            if isinstance(steady, str):
                return f"preequilibration {e.experiment.preequilibration}: {steady}"
            x_pre, s_pre = steady
            x0 = np.where(e.from_pre, x_pre, x0)
            dx0 = np.where(e.from_pre[:, None], s_pre @ d_params[self._moved], dx0)
        columns = _matrix(e.columns[0], L, (e.n_columns,))
        params = np.concatenate([columns, x0])
        d_params = np.vstack([_matrix(e.columns[1], L, (e.n_columns, d)), dx0])
        times = e.experiment.times
        states, sensitivities, stiff = np.empty((0, n)), np.empty((0, n, d)), False
        if len(times):
            run = {"rtol": self.rtol, "atol": self.atol, "threads": self.threads, "method": e.method,
                   "breakpoints": e.experiment.breakpoints}
            result = self.simulator.simulate(params[None, :], times, **run)
            if result.status[0] != 0:
                result = self._with_states_controlled().simulate(params[None, :], times, **run)
            if result.status[0] != 0:
                return f"condition {e.experiment.condition}: {STATUS_MESSAGES[int(result.status[0])]}"
            states, sensitivities = result.states[0], result.sensitivities[0] @ d_params[self._moved]
            stiff = bool(result.stiff[0])
        if e.experiment.steady_state_measured:
            steady = self._steady(params, e.experiment.breakpoints)
            if isinstance(steady, str):
                return f"condition {e.experiment.condition}, steady state: {steady}"
            states = np.vstack([states, steady[0]])
            sensitivities = np.concatenate([sensitivities, (steady[1] @ d_params[self._moved])[None]])
        return states, sensitivities, stiff

    def _with_states_controlled(self) -> CompiledSensitivities:
        """The system whose step size the states alone control (CVODES's default, errconS off), compiled on
        first need: where the sensitivities' error control drives the step size to underflow while the
        states integrate (Weber_BMC2015, far from the optimum), their values at the states' steps still
        give the trust region a usable gradient."""
        if not self._states_controlled:
            self._states_controlled.append(compile_sensitivities(
                self._batch.model, varying=self.simulator.varying, wrt=self.simulator.wrt, error_control=False,
                cache_dir=self._batch.cache_dir))
        return self._states_controlled[0]

    def _steady(self, params: np.ndarray, breakpoints: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | str:
        """The steady state from the simulator parameters `params` and its sensitivities.

        The state is the batch objective's (simulated until nothing moves, `BatchProblem.steady`).
        Its sensitivities solve J·S = −∂f/∂p, and C·S = C·∂x(0)/∂p for the conserved moieties C (the
        left null space of J, where the steady state depends on where it started): exact, and far
        cheaper and sturdier than integrating the sensitivities to t = ∞ (as AMICI's Newton step).
        """
        states, ok = self._batch.steady(params[None, :], self.rtol, self.atol, breakpoints)
        if not ok[0]:
            return f"no steady state by t = {STEADY_TIMES[-1]:g}"
        x = states[0]
        n, p = len(x), len(self.simulator.wrt)
        jacobian = self._batch.compiled.jacobian(0.0, x, params)
        rates = self.simulator.compiled.rhs(0.0, np.concatenate([x, np.zeros(n * p)]), params)
        f_p = rates[n:].reshape(p, n).T  # ds/dt at s = 0 is ∂f/∂p
        u, singular, _ = np.linalg.svd(jacobian)
        conserved = u[:, singular <= NULL_TOLERANCE * max(singular.max(), 1.0)].T
        solution, *_ = np.linalg.lstsq(np.vstack([jacobian, conserved]),
                                       np.vstack([-f_p, conserved @ self._initial_sensitivity]), rcond=None)
        return x, solution


def _residual(transformation: str, value: np.ndarray, h: np.ndarray, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The residuals (k,) on the observable's transformed scale and their gradients (k, d)."""
    if transformation == C.LOG:
        return np.log(value) - np.log(h), -dh / h[:, None]
    if transformation == C.LOG10:
        return np.log10(value) - np.log10(h), -dh / (h * LN10)[:, None]
    return value - h, -dh
