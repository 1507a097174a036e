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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sympy
from petab.v1 import C

from qspflow.calibrate.objective import LN10, STEADY_TIMES, BatchProblem, measurement_term
from qspflow.calibrate.spec import CalibrationSpec, Experiment, Measurement
from qspflow.model import derivative
from qspflow.simulate import STATUS_MESSAGES
from qspflow.simulate.sensitivity import CompiledSensitivities, compile_sensitivities

# Integration tolerances of the gradient: tighter than the global search's, so that the gradient
# is accurate where the trust region needs it (near an optimum).
RTOL, ATOL = 1e-8, 1e-10
# Rodas4 throughout: its LU is of the states' block only (kernel._solve_w), so a step costs about
# what an explicit one does, and the explicit phase before the stiffness test would cost up to 5×
# as much on stiff models (measured on Fujita_SciSignal2010).
METHOD = "implicit"
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


class _Observation:
    """One measurement's h, σ and their partial derivatives in the states and θ (linear)."""

    def __init__(self, m: Measurement, states: Sequence[sympy.Symbol], theta: Sequence[sympy.Symbol]) -> None:
        exprs = [m.simulation, m.sigma]
        exprs += [derivative(e, v) for e in (m.simulation, m.sigma) for v in (*states, *theta)]
        self.function = sympy.lambdify([states, theta], exprs, "numpy")
        self.n, self.p = len(states), len(theta)

    def __call__(self, x: np.ndarray, L: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray,
                                                              np.ndarray]:
        v = np.asarray(self.function(x, L), dtype=float)
        n, p = self.n, self.p
        h_x, h_t = v[2:2 + n], v[2 + n:2 + n + p]
        s_x, s_t = v[2 + n + p:2 + 2 * n + p], v[2 + 2 * n + p:]
        return float(v[0]), float(v[1]), h_x, h_t, s_x, s_t


class _Experiment:
    """One experiment's condition columns, initial values and observations, differentiable in θ."""

    def __init__(self, experiment: Experiment, spec: CalibrationSpec, varying: list[str],
                 cache: dict[tuple, _Observation]) -> None:
        self.experiment = experiment
        theta = spec.symbols
        self.n_columns = len(varying)
        self.columns = _lambdify(theta, [experiment.parameters[n] for n in varying])
        self.initial = _lambdify(theta, [e if e is not None else sympy.Integer(0) for e in experiment.initial])
        self.from_pre = np.array([e is None for e in experiment.initial])
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
        self.observations = []
        for m in experiment.measurements:
            key = (m.simulation, m.sigma)
            if key not in cache:
                cache[key] = _Observation(m, spec.state_symbols, theta)
            self.observations.append(cache[key])

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
        cache: dict[tuple, _Observation] = {}
        self._experiments = [_Experiment(e, spec, batch.varying, cache) for e in spec.experiments]
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
            for m, observe in zip(e.experiment.measurements, e.observations):
                x_m, dx_m = run[m.time]
                h, sigma, h_x, h_t, s_x, s_t = observe(x_m, L)
                dh = h_x @ dx_m + h_t
                ds = s_x @ dx_m + s_t
                term = float(measurement_term(m.value, np.array([h]), np.array([sigma]), m.transformation,
                                              m.distribution)[0])
                if not math.isfinite(term):
                    reason = f"the likelihood of measurement row {m.row + 2} is not finite (simulation {h:g})"
                    return Evaluation(math.inf, np.full(d, np.nan), np.full((d, d), np.nan), reason)
                r, dr = _residual(m, h, dh)
                nll += term
                if m.distribution == C.LAPLACE:
                    gradient += ds / sigma + math.copysign(1.0, r) * dr / sigma - abs(r) * ds / sigma**2
                    fim += (np.outer(dr, dr) + np.outer(ds, ds)) / sigma**2
                else:
                    gradient += ds / sigma + r * dr / sigma**2 - r * r * ds / sigma**3
                    fim += (np.outer(dr, dr) + 2.0 * np.outer(ds, ds)) / sigma**2
        # To the parameters' scales: dθ/dx = θ·ln b on a log scale (b = e or 10), 1 on the linear scale.
        chain = np.where(self._log_factor > 0, L * self._log_factor, 1.0)
        prior, prior_gradient, prior_information = (v[0] for v in spec.neg_log_prior(x[None, :]))
        if not math.isfinite(prior):
            return Evaluation(math.inf, np.full(d, np.nan), np.full((d, d), np.nan),
                              "outside the support of an objective prior")
        return Evaluation(nll + float(prior), gradient * chain + prior_gradient,
                          fim * np.outer(chain, chain) + np.diag(prior_information))

    def _experiment(self, e: _Experiment, L: np.ndarray) -> dict[float, tuple[np.ndarray, np.ndarray]] | str:
        """{time: (states, d states/dθ)} at the experiment's measurement times (inf: its steady
        state), or the reason it cannot be simulated."""
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
        out: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        times = e.experiment.times
        if len(times):
            run = {"rtol": self.rtol, "atol": self.atol, "threads": self.threads, "method": METHOD,
                   "breakpoints": e.experiment.breakpoints}
            result = self.simulator.simulate(params[None, :], times, **run)
            if result.status[0] != 0:
                result = self._with_states_controlled().simulate(params[None, :], times, **run)
            if result.status[0] != 0:
                return f"condition {e.experiment.condition}: {STATUS_MESSAGES[int(result.status[0])]}"
            for j, t in enumerate(times):
                out[float(t)] = (result.states[0, j], result.sensitivities[0, j] @ d_params[self._moved])
        if e.experiment.steady_state_measured:
            steady = self._steady(params, e.experiment.breakpoints)
            if isinstance(steady, str):
                return f"condition {e.experiment.condition}, steady state: {steady}"
            out[math.inf] = (steady[0], steady[1] @ d_params[self._moved])
        return out

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


def _residual(m: Measurement, h: float, dh: np.ndarray) -> tuple[float, np.ndarray]:
    """The residual on the observable's transformed scale and its gradient."""
    if m.transformation == C.LOG:
        return math.log(m.value) - math.log(h), -dh / h
    if m.transformation == C.LOG10:
        return math.log10(m.value) - math.log10(h), -dh / (h * LN10)
    return m.value - h, -dh
