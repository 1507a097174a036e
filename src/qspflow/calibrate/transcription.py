"""Direct transcription of a PEtab problem into one Pyomo NLP, solved locally by Ipopt or ripopt.

Each experiment of a `CalibrationSpec` becomes a block: its states on a `pyomo.dae` ContinuousSet
discretized by Radau collocation (3 points per element). The set holds time 0, every measurement
time and every time at which a piecewise input switches (`knots`), and each interval between knots is
split into `n_elements` equal elements: the fast early transients get as many elements as the slow
tail, and no element sees a discontinuous right-hand side — a piecewise condition in time is decided
once per element, at its midpoint. x(0) is fixed (or tied to estimated parameters or to the
preequilibration steady state). A steady state (preequilibration, or a measurement at time `inf`)
is the algebraic system rhs(x) = 0 with one equation per conservation law replaced by that law.

Time-triggered events (`time >= c`, c and any delay numbers under each condition: doses) are element
boundaries at their instants; the state is x = x̃ + Σ Δ_e over the events before t, x̃ the
collocated (continuous) part and Δ_e a variable per event instant and assigned state, tied to the
assignments at x(c⁻) (in the events' execution order; `useValuesFromTriggerTime` honoured, except
that a delayed event may not take states from its trigger time). A measurement at c sees the state
after the events. State-triggered events are refused (`check_transcribable`): their instants are
unknowns.

Parameters are estimated on their PEtab scales within bounds, p ∈ [lower, upper], entering the model
as exp(ln10·p) (log10), exp(p) (log) or p (lin). The objective is the negative log-likelihood
(`qspflow.calibrate.objective`, in its log-σ form):
normal noise as log σ + ½ log 2π + ½ r²·exp(−2 log σ), with log σ = ln10·p_σ when σ is a log10
parameter; Laplace noise as log 2σ + (r⁺ + r⁻)/σ with r = r⁺ − r⁻, r⁺, r⁻ ≥ 0 (smooth, and exact at
an optimum). The Ipopt options that make such problems converge (notes/stack.md): `mu_init=1e-6`,
`bound_push=bound_frac=1e-8`; with the defaults even a start at the optimum drifts away from it,
because the optimum has parameters at their bounds and states near 0.

A local estimate (`PyomoProblem.estimate`) fits in two solves, each kept to a box around the current
parameters that moves with the solution: first with the noise parameters held at the start, then
everything. On Boehm et al. 2014 from ±1 log10 of the optimum, one unconstrained solve reached the
optimum from 4–6 of 12 starts (stalling on plateaus or crossing into the −145.76 basin along the flat
k_imp_homo direction); the two boxed solves from 31 of 32.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import importlib
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import sympy
from sympy.core.relational import Relational

from qspflow.calibrate.objective import LN10, BatchProblem, Namespace, noise_term, transformed_residual
from qspflow.calibrate.options import SOLVERS
from qspflow.calibrate.solvers import configure_pyomo, startup_floating_point_environment
from qspflow.calibrate.spec import CalibrationSpec, Experiment, Measurement
from qspflow.errors import ConfigError, ModelError, SolverError
from qspflow.model import TIME, Event, right_limit, symbol, trigger_relations

configure_pyomo()
import pyomo.environ as pyo  # noqa: E402  (configure_pyomo must run first)
from pyomo.common.errors import PyomoException  # noqa: E402
from pyomo.dae import ContinuousSet, DerivativeVar  # noqa: E402

log = logging.getLogger("qspflow.calibrate")

COLLOCATION_POINTS = 3
CONVERGED = ("optimal", "locallyOptimal", "globallyOptimal")
# Ipopt options that let direct-transcription fits converge (see the module docstring).
INTERIOR_POINT_OPTIONS = {"mu_init": 1e-6, "bound_push": 1e-8, "bound_frac": 1e-8, "print_level": 0}
# MUMPS's own row/column scaling made each factorization of the example study's NLP (39,000
# variables, 33 parameters coupling all of them) ~10x slower: 31 s of linear algebra for a 14-iteration
# solve, 3.5 s without it, same iterates' quality (benchmarks/calibrate.py).
IPOPT_OPTIONS = {"sb": "yes", "mumps_scaling": 0}
_PYOMO_FUNCTIONS = {
    "exp": pyo.exp, "log": pyo.log, "sqrt": pyo.sqrt, "sin": pyo.sin, "cos": pyo.cos, "tan": pyo.tan,
    "sinh": pyo.sinh, "cosh": pyo.cosh, "tanh": pyo.tanh, "asin": pyo.asin, "acos": pyo.acos,
    "atan": pyo.atan, "Abs": abs, "pi": math.pi, "E": math.e,
}
# The math of `qspflow.calibrate.objective` on Pyomo expressions (measured values stay numbers).
PYOMO = Namespace(log=pyo.log, log10=lambda e: pyo.log(e) / LN10, data_log=math.log, data_log10=math.log10)
# x^n with a non-integer or estimated n becomes (x² + ε²)^(n/2): at x = 0 (an unstimulated input,
# no drug) x^n has no derivative in n (0·log 0) nor a finite second derivative in x, and Ipopt stops
# with "can't evaluate pow"; collocation may also visit x slightly below 0. The change in value is
# at most ε^n ≤ 1e-4 for n ≥ 0.5, far below any noise level, and every optimum is verified against
# the unchanged model by simulation.
SMOOTHING = 1e-8


# --------------------------------------------------------------------------------- solvers


def check_transcribable(spec: CalibrationSpec) -> None:
    """Raise `ConfigError` for events the transcription cannot hold (it holds `time >= c` with c a
    number under every condition, see the module docstring) and for objective priors (its objective
    is the likelihood alone); `local_method: shooting` handles both."""
    with_prior = [name for name, prior in zip(spec.names, spec.priors) if prior is not None]
    if with_prior:
        raise ConfigError(spec.problem.path, key="calibrate.local_method", found="transcription",
                          message=f"objective priors (on {', '.join(with_prior)}), which the Pyomo transcription's "
                                  "objective does not include; use local_method: shooting (a MAP estimate)")
    for experiment in spec.experiments:
        event_instants(spec, experiment)


def transcribable(spec: CalibrationSpec) -> bool:
    """Whether `check_transcribable` passes."""
    try:
        check_transcribable(spec)
    except ConfigError:
        return False
    return True


@dataclass(frozen=True)
class Jump:
    """The events that fire at one instant of an experiment, in execution order, as expressions in
    the states and the estimated parameters."""

    time: float
    events: tuple[Event, ...]

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(t for e in self.events for t in e.assignments))


def event_instants(spec: CalibrationSpec, experiment: Experiment) -> list[Jump]:
    """The experiment's time-triggered events grouped by instant (after time 0, in order); anything
    else raises `ConfigError` naming the event."""
    model = spec.problem.model
    if not model.events:
        return []

    def refuse(event: Event, why: str) -> ConfigError:
        return ConfigError(spec.problem.path, key="calibrate.local_method", found="transcription",
                           message=f"event '{event.id}' {why}, which the Pyomo transcription does not support; "
                                   "use local_method: shooting")

    if experiment.preequilibration or experiment.steady_state_measured:
        raise refuse(model.events[0], "with a steady state (preequilibration or a measurement at time inf)")
    values = {symbol(n): v for n, v in experiment.parameters.items()}
    by_time: dict[float, list[tuple[float, int, Event]]] = {}
    for index, event in enumerate(model.events):
        relations = trigger_relations(event.trigger, spec.state_symbols)
        if (relations.states or len(relations.times) != 1 or event.trigger != relations.times[0][0]
                or not isinstance(right_limit(*relations.times[0]), sympy.Ge)):
            raise refuse(event, "is not triggered by `time >= c` alone")
        instant = (relations.times[0][1] + (event.delay if event.delay is not None else 0)).xreplace(values)
        if event.delay is not None and event.use_values_from_trigger_time and any(
                sympy.sympify(e).free_symbols & {*spec.state_symbols, TIME} for e in event.assignments.values()):
            raise refuse(event, "takes values from the states at its trigger, before its delay")
        priority = -math.inf if event.priority is None else event.priority.xreplace(values)
        if not (instant.is_number and sympy.sympify(priority).is_number):
            raise refuse(event, "has an instant or priority that is estimated")
        if float(instant) <= 0.0:
            if not event.initial_value:
                raise refuse(event, "fires at time 0")
            continue
        event = dataclasses.replace(event, assignments={k: sympy.sympify(v).xreplace(values)
                                                        for k, v in event.assignments.items()})
        by_time.setdefault(float(instant), []).append((-float(priority), index, event))
    return [Jump(t, tuple(e for *_, e in sorted(events, key=lambda item: item[:2])))
            for t, events in sorted(by_time.items())]


def _pynumero_available() -> bool:
    """Whether Pyomo's PyNumero ASL library (built by bin/setup) loads."""
    try:
        from pyomo.contrib.pynumero.asl import AmplInterface
    except ImportError:
        return False
    return bool(AmplInterface.available())


def check_solver(name: str) -> None:
    """Raise `SolverError` (with what to install) unless solver `name` can solve here."""
    if name not in SOLVERS:
        raise ConfigError(None, key="calibrate.solver", expected=f"one of {list(SOLVERS)}", found=name)
    if name == "ipopt":
        try:
            import cyipopt  # noqa: F401
        except ImportError as exc:
            raise SolverError(None, key="calibrate.solver", found=name,
                              message="Ipopt (cyipopt) is not installed: run bin/setup "
                                      "(or pip install cyipopt-wheels)") from exc
        if not _pynumero_available():
            raise SolverError(None, key="calibrate.solver", found=name,
                              message="Pyomo's PyNumero library for Ipopt is missing: run bin/setup, which "
                                      "builds it into .venv/share/pyomo (PYOMO_CONFIG_DIR)")
    else:
        try:
            importlib.import_module("pyomo_ripopt")  # registers 'ripopt' with Pyomo's SolverFactory
        except ImportError as exc:
            raise SolverError(None, key="calibrate.solver", found=name,
                              message="ripopt is not installed: pip install pyomo-ripopt") from exc
        with _quiet("pyomo"):
            available = pyo.SolverFactory("ripopt").available(exception_flag=False)
        if not available:
            raise SolverError(None, key="calibrate.solver", found=name,
                              message="the ripopt executable was not found: pip install --force-reinstall pyomo-ripopt")


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence library loggers: Pyomo logs the failures it also raises (each start records its
    status instead), values a hair outside bounds on loading a solution, and cyipopt chatters."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# ------------------------------------------------------------------------ sympy → Pyomo


def _pyomo_function(args: Sequence, exprs: Sequence[sympy.Expr], where: str) -> Callable:
    """A function building Pyomo expressions from `exprs` (common subexpressions shared); a
    function or condition Pyomo cannot express raises `ModelError` naming `where`."""
    function = sympy.lambdify(args, [smooth_powers(e) for e in exprs], modules=[_PYOMO_FUNCTIONS], cse=True)

    def build(*values: object) -> list:
        try:
            return function(*values)
        except (NameError, TypeError, PyomoException) as exc:
            raise ModelError(None, element=where, expected="smooth functions and conditions in time only "
                                                           "(what the Pyomo transcription supports)",
                             message=str(exc).splitlines()[0]) from exc

    return build


def smooth_powers(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with every x^n whose n is not an integer, and x not a number, replaced by
    (x² + SMOOTHING²)^(n/2) (|x| drops out of the square)."""
    return expr.replace(
        lambda e: e.is_Pow and not e.exp.is_integer and not e.base.is_number,
        lambda e: (e.base**2 + SMOOTHING**2) ** (e.exp / 2))


def _decide_conditions(exprs: Sequence[sympy.Expr], at: sympy.Expr,
                       where: str) -> tuple[tuple[bool, ...], list[sympy.Expr]]:
    """Evaluate every relational in `exprs` at time `at`: (truth pattern, expressions without them)."""
    relations = sorted(set().union(*(e.atoms(Relational) for e in exprs)), key=sympy.default_sort_key)
    decided = {}
    for relation in relations:
        value = relation.xreplace({TIME: at})
        if value not in (sympy.true, sympy.false):
            raise ModelError(None, element=where, expected="piecewise conditions in time only",
                             found=str(relation))
        decided[relation] = value
    return tuple(bool(v) for v in decided.values()), [e.xreplace(decided) for e in exprs]


def knots(experiment: Experiment) -> list[float]:
    """0, the finite measurement times and the switching times of piecewise inputs in between."""
    end = float(experiment.times[-1]) if len(experiment.times) else 0.0
    return sorted({0.0, *map(float, experiment.times), *(b for b in experiment.breakpoints if 0.0 < b < end)})


def element_grid(points: Sequence[float], n_elements: int) -> list[float]:
    """Element boundaries: each interval between knots split into `n_elements` equal elements."""
    grid = [points[0]]
    for a, b in itertools.pairwise(points):
        grid += [a + (b - a) * j / n_elements for j in range(1, n_elements)] + [b]
    return grid


def conservation_laws(rhs: Sequence[sympy.Expr], states: Sequence[sympy.Symbol],
                      others: Sequence[sympy.Symbol]) -> tuple[np.ndarray, list[int]]:
    """Linear conservation laws C·x = const of dx/dt = rhs, in reduced form, and their pivot states.

    C spans the left null space of rhs values sampled at random positive points (the weights of a
    law must not depend on parameters); each law is scaled to 1 at its pivot state, which no other
    law contains, so the law can replace that state's equation rhs = 0.
    """
    f = sympy.lambdify([list(states), list(others)], list(rhs), "math")
    rng = np.random.default_rng(0)
    n = len(states)
    samples = np.array([f(list(rng.uniform(0.5, 2.0, n)), list(rng.uniform(0.5, 2.0, len(others))))
                        for _ in range(2 * n + 5)], dtype=float).T
    u, s, _ = np.linalg.svd(samples)
    rank = int(np.sum(s > max(samples.shape) * np.finfo(float).eps * 1e3 * (s[0] if s.size else 0.0)))
    laws = u[:, rank:].T
    if not len(laws):
        return np.empty((0, n)), []
    pivots = [int(i) for i in scipy.linalg.qr(laws, pivoting=True)[2][: len(laws)]]
    reduced = np.linalg.solve(laws[:, pivots], laws)
    reduced[np.abs(reduced) < 1e-12] = 0.0
    return reduced, pivots


# ------------------------------------------------------------------------------- the NLP


@dataclass
class LocalSolution:
    """One local solve: the scaled parameters it ended at and how it ended."""

    x: np.ndarray
    nll: float
    status: str
    converged: bool
    seconds: float


class PyomoProblem:
    """The NLP of a `CalibrationSpec` (see the module docstring), reusable across starts.

    `estimate(x0)` is a local estimate from x0; `initialize(x)` sets the parameters and every state
    from a simulation at x; `solve()` runs the local solver from the current values (so a profile
    warm-starts from its last point).
    """

    def __init__(self, spec: CalibrationSpec, batch: BatchProblem, *, n_elements: int = 4,
                 solver: str = "ipopt", max_iter: int = 3000, max_cpu_time: float = 120.0) -> None:
        if n_elements < 1:
            raise ConfigError(None, key="calibrate.n_elements", expected="an integer ≥ 1", found=n_elements)
        check_transcribable(spec)
        check_solver(solver)
        self.spec, self.batch, self.n_elements, self.solver = spec, batch, n_elements, solver
        self.options = {**INTERIOR_POINT_OPTIONS, "max_iter": int(max_iter), "max_cpu_time": float(max_cpu_time)}
        if solver == "ipopt":
            self.options.update(IPOPT_OPTIONS)
        m = self.model = pyo.ConcreteModel(name=spec.problem.model.name)
        d = spec.dimension
        m.p = pyo.Var(range(d), bounds=lambda _, i: (spec.lower[i], spec.upper[i]),
                      initialize=lambda _, i: float(np.clip(spec.nominal[i], spec.lower[i], spec.upper[i])))
        self.theta = [self._linear(i, scale) for i, scale in enumerate(spec.scales)]
        self.log_theta = [self._log_linear(i, scale) for i, scale in enumerate(spec.scales)]
        self._theta_index = {s: i for i, s in enumerate(spec.symbols)}
        self._rhs: list[dict[float, list]] = []
        self._jumps: list[list[Jump]] = []
        self._residuals: list[tuple[pyo.Var, pyo.Var, object]] = []
        terms = []
        m.experiment = pyo.Block(range(len(spec.experiments)))
        for k, experiment in enumerate(spec.experiments):
            terms += self._experiment(m.experiment[k], experiment)
        m.objective = pyo.Objective(expr=sum(terms), sense=pyo.minimize)

    def _linear(self, i: int, scale: str) -> object:
        p = self.model.p[i]
        return pyo.exp(LN10 * p) if scale == "log10" else pyo.exp(p) if scale == "log" else p

    def _log_linear(self, i: int, scale: str) -> object:
        p = self.model.p[i]
        return LN10 * p if scale == "log10" else p if scale == "log" else pyo.log(p)

    def _of_theta(self, exprs: Sequence[sympy.Expr]) -> list:
        """Expressions in the estimated parameters as Pyomo expressions (numbers stay floats)."""
        values = _pyomo_function([self.spec.symbols], exprs, "initial values")(self.theta)
        return [float(v) if isinstance(v, (int, float)) else v for v in values]

    # ------------------------------------------------------------------------ building

    def _experiment(self, b: pyo.Block, experiment: Experiment) -> list:
        spec = self.spec
        n = len(spec.states)
        end = float(experiment.times[-1]) if len(experiment.times) else 0.0
        jumps = [jump for jump in event_instants(spec, experiment) if jump.time <= end]
        self._jumps.append(jumps)
        b.grid = element_grid(sorted({*knots(experiment), *(jump.time for jump in jumps)}), self.n_elements)
        horizon = len(b.grid) > 1
        rhs_cache: dict[float, list] = {}
        self._rhs.append(rhs_cache)
        if horizon:
            b.t = ContinuousSet(initialize=b.grid)
            b.x = pyo.Var(range(n), b.t)
            b.dx = DerivativeVar(b.x, wrt=b.t)
            b.delta = pyo.Var([(e, spec.states.index(name)) for e, jump in enumerate(jumps) for name in jump.targets],
                              initialize=0.0)
            functions: dict[tuple[bool, ...], Callable] = {}

            def state(t: float, after: bool) -> list:
                """x(t) = x̃(t) + the jumps before t (and at t, `after` them)."""
                x = [b.x[i, t] for i in range(n)]
                for e, jump in enumerate(jumps):
                    if jump.time < t or (after and jump.time == t):
                        for name in jump.targets:
                            i = spec.states.index(name)
                            x[i] = x[i] + b.delta[e, i]
                return x

            def rhs_at(t: float) -> list:
                if t not in rhs_cache:
                    j = bisect.bisect_left(b.grid, t)
                    middle = sympy.Float((b.grid[j - 1] + b.grid[j]) / 2)
                    pattern, exprs = _decide_conditions(experiment.rhs, middle, experiment.label)
                    if pattern not in functions:
                        functions[pattern] = _pyomo_function([TIME, spec.state_symbols, spec.symbols], exprs,
                                                             experiment.label)
                    rhs_cache[t] = functions[pattern](t, state(t, after=False), self.theta)
                return rhs_cache[t]

            b.jumps = pyo.ConstraintList()
            for e, jump in enumerate(jumps):
                self._jump_constraints(b, e, jump, state(jump.time, after=False))

            b.ode = pyo.Constraint(range(n), b.t, rule=lambda b, i, t: pyo.Constraint.Skip if t == b.grid[0]
                                   else b.dx[i, t] == rhs_at(t)[i])
            pyo.TransformationFactory("dae.collocation").apply_to(
                b, wrt=b.t, nfe=len(b.grid) - 1, ncp=COLLOCATION_POINTS, scheme="LAGRANGE-RADAU")
            start = [b.x[i, 0.0] for i in range(n)]
        else:
            b.x0 = pyo.Var(range(n))
            start = [b.x0[i] for i in range(n)]

        if experiment.preequilibration:
            b.pre = pyo.Block()
            initial = self._steady_state(b.pre, experiment.pre_rhs, self._of_theta(experiment.pre_initial),
                                         f"{experiment.label} (preequilibration)")
            for i, e in enumerate(experiment.initial):
                if e is not None:
                    initial[i] = self._of_theta([e])[0]
        else:
            initial = self._of_theta(experiment.initial)
        b.initial = pyo.ConstraintList()
        for var, value in zip(start, initial):
            if isinstance(value, float):
                var.fix(value)
            else:
                b.initial.add(var == value)

        steady = None
        if experiment.steady_state_measured:
            b.steady = pyo.Block()
            steady = self._steady_state(b.steady, experiment.rhs, start, f"{experiment.label} (steady state)")

        def states_at(t: float) -> list:
            if math.isinf(t):
                return steady
            return state(t, after=True) if horizon else start

        b.residual = pyo.ConstraintList()
        return [self._term(b, m, states_at(m.time)) for m in experiment.measurements]

    def _jump_constraints(self, b: pyo.Block, e: int, jump: Jump, before: list) -> None:
        """Δ_e = the state after the jump's events, executed in order, minus the state before."""
        spec = self.spec
        args = [TIME, spec.state_symbols, spec.symbols]
        assign = {event.id: _pyomo_function(args, list(event.assignments.values()), event.id) for event in jump.events}
        early = {event.id: assign[event.id](jump.time, before, self.theta) for event in jump.events
                 if event.use_values_from_trigger_time}
        x = list(before)
        for event in jump.events:
            values = early[event.id] if event.id in early else assign[event.id](jump.time, x, self.theta)
            for name, value in zip(event.assignments, values):
                x[spec.states.index(name)] = value
        for name in jump.targets:
            i = spec.states.index(name)
            b.jumps.add(b.delta[e, i] == x[i] - before[i])

    def _steady_state(self, block: pyo.Block, rhs: Sequence[sympy.Expr], initial: Sequence,
                      where: str) -> list:
        """Vars x with rhs(x) = 0, conservation laws carried over from `initial`; returns x."""
        spec = self.spec
        _, exprs = _decide_conditions(rhs, sympy.oo, where)
        if any(TIME in e.free_symbols for e in exprs):
            raise ModelError(None, element=where, expected="a right-hand side that does not depend on time "
                                                           "(a steady state is computed)")
        n = len(spec.states)
        block.x = pyo.Var(range(n))
        x = [block.x[i] for i in range(n)]
        laws, pivots = conservation_laws(exprs, spec.state_symbols, spec.symbols)
        f = _pyomo_function([spec.state_symbols, spec.symbols], exprs, where)(x, self.theta)
        block.balance = pyo.ConstraintList()
        for i in range(n):
            if i in pivots:
                c = laws[pivots.index(i)]
                block.balance.add(sum(c[j] * x[j] for j in range(n) if c[j])
                                  == sum(c[j] * initial[j] for j in range(n) if c[j]))
            else:
                block.balance.add(f[i] == 0)
        return x

    def _term(self, b: pyo.Block, m: Measurement, x: list) -> object:
        """−log p of one measurement as a Pyomo expression."""
        simulation, sigma = _pyomo_function([self.spec.state_symbols, self.spec.symbols], [m.simulation, m.sigma],
                                            f"observable {m.observable}")(x, self.theta)
        r, jacobian = transformed_residual(m.value, simulation, m.transformation, PYOMO)
        if m.sigma in self._theta_index:  # log σ is then linear in p for a log10 or log parameter
            log_sigma = self.log_theta[self._theta_index[m.sigma]]
            inverse, square = pyo.exp(-log_sigma), pyo.exp(-2 * log_sigma)
        elif m.sigma.is_Number:
            log_sigma, inverse = math.log(float(m.sigma)), 1.0 / float(m.sigma)
            square = inverse * inverse
        else:
            log_sigma, inverse, square = pyo.log(sigma), 1.0 / sigma, sigma**-2
        if m.distribution == "laplace":
            b.add_component(f"r_plus_{m.row}", pyo.Var(bounds=(0, None), initialize=0.0))
            b.add_component(f"r_minus_{m.row}", pyo.Var(bounds=(0, None), initialize=0.0))
            plus, minus = b.component(f"r_plus_{m.row}"), b.component(f"r_minus_{m.row}")
            b.residual.add(plus - minus == r)
            self._residuals.append((plus, minus, r))
            return noise_term(m.distribution, jacobian, log_sigma, inverse, square, absolute=plus + minus)
        return noise_term(m.distribution, jacobian, log_sigma, inverse, square, r=r)

    # ------------------------------------------------------------------ initial values, solves

    def time_points(self, k: int) -> list[float]:
        """All time points (element boundaries and collocation points) of experiment k."""
        b = self.model.experiment[k]
        return list(b.t) if hasattr(b, "t") else [0.0]

    def initialize(self, x: Sequence[float]) -> bool:
        """Set the parameters to x and every state, derivative and residual from a simulation at x.

        Returns False (states left as they were) if the simulation fails.
        """
        m = self.model
        for i, v in enumerate(x):
            m.p[i].set_value(float(np.clip(v, self.spec.lower[i], self.spec.upper[i])))
        # The jumps' instants are asked for just before, too: x̃ there is the state before the events.
        times = [np.unique([*self.time_points(k), *(np.nextafter(j.time, -np.inf) for j in self._jumps[k])])
                 for k in range(len(self.spec.experiments))]
        runs = self.batch.trajectories(np.array([m.p[i].value for i in range(self.spec.dimension)]), times)
        if runs is None:
            return False
        n = len(self.spec.states)
        for k, run in enumerate(runs):
            b = m.experiment[k]
            if hasattr(b, "t"):
                row_at = dict(zip(times[k], run["states"]))
                jumps = self._jumps[k]
                deltas = [row_at[j.time] - row_at[np.nextafter(j.time, -np.inf)] for j in jumps]
                for e, jump in enumerate(jumps):
                    for name in jump.targets:
                        i = self.spec.states.index(name)
                        b.delta[e, i].set_value(float(deltas[e][i]))
                for t in b.t:
                    before = sum((d for j, d in zip(jumps, deltas) if j.time < t), np.zeros(n))
                    at_jump = any(j.time == t for j in jumps)
                    row = row_at[np.nextafter(t, -np.inf) if at_jump else t] - before
                    for i in range(n):
                        if not b.x[i, t].fixed:
                            b.x[i, t].set_value(float(row[i]))
                for t, f in self._rhs[k].items():
                    for i in range(n):
                        b.dx[i, t].set_value(_value_or(f[i], 0.0))
            else:
                for i in range(n):
                    if not b.x0[i].fixed:
                        b.x0[i].set_value(float(run["states"][0][i]))
            for name, key in (("pre", "pre"), ("steady", "steady")):
                if hasattr(b, name) and run[key] is not None:
                    for i in range(n):
                        getattr(b, name).x[i].set_value(float(run[key][i]))
        for plus, minus, r in self._residuals:
            value = _value_or(r, 0.0)
            plus.set_value(max(value, 0.0))
            minus.set_value(max(-value, 0.0))
        return True

    def parameters(self) -> np.ndarray:
        """The scaled parameters, within their bounds (Ipopt may end a hair outside)."""
        values = np.array([pyo.value(self.model.p[i]) for i in range(self.spec.dimension)])
        return np.clip(values, self.spec.lower, self.spec.upper)

    def snapshot(self) -> list[float | None]:
        """Every variable's value (to warm-start from later)."""
        return [v.value for v in self.model.component_data_objects(pyo.Var, descend_into=True)]

    def restore(self, values: Sequence[float | None]) -> None:
        for v, value in zip(self.model.component_data_objects(pyo.Var, descend_into=True), values):
            if not v.fixed:
                v.set_value(value, skip_validation=True)

    def solve(self, fixed: Mapping[int, float] | None = None, box: tuple[np.ndarray, np.ndarray] | None = None,
              time_limit: float | None = None, max_iter: int | None = None) -> LocalSolution:
        """Run the local solver from the current values; parameters in `fixed` (index → scaled
        value) are held there, the others kept within `box` (scaled lower, upper) if given. The
        solver stops after `time_limit` seconds (default: the `max_cpu_time` of the problem) or
        `max_iter` iterations (default: the problem's). The solver's termination condition is checked
        and reported.
        """
        m = self.model
        for i, v in (fixed or {}).items():
            m.p[i].fix(float(v))
        if box is not None:
            for i in range(self.spec.dimension):
                m.p[i].setlb(float(box[0][i]))
                m.p[i].setub(float(box[1][i]))
        options = dict(self.options)
        if time_limit is not None:
            options["max_cpu_time"] = max(1.0, min(time_limit, options["max_cpu_time"]))
        if max_iter is not None:
            options["max_iter"] = min(max_iter, options["max_iter"])
        started = time.perf_counter()
        try:
            status = self._run(options)
        except Exception as exc:  # any solver failure is this start's result, not fatal
            status = f"error: {type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            for i in fixed or {}:
                m.p[i].unfix()
            for i in range(self.spec.dimension):
                m.p[i].setlb(float(self.spec.lower[i]))
                m.p[i].setub(float(self.spec.upper[i]))
        seconds = time.perf_counter() - started
        # Ipopt relaxes bounds by ~1e-8, so r⁺ and r⁻ may both end slightly negative; project them
        # onto r⁺, r⁻ ≥ 0 with the same difference, so the objective is the likelihood of |r|.
        for plus, minus, _ in self._residuals:
            r = (plus.value or 0.0) - (minus.value or 0.0)
            plus.set_value(max(r, 0.0))
            minus.set_value(max(-r, 0.0))
        nll = _value_or(m.objective, math.nan)
        return LocalSolution(self.parameters(), nll, status, status in CONVERGED, seconds)

    def estimate(self, x0: Sequence[float], half_width: float, time_limit: float | None = None) -> LocalSolution | None:
        """A local estimate from x0 (None if the model cannot be simulated at x0), its solves together
        within `time_limit` seconds (default: the problem's `max_cpu_time`).

        States start from a simulation at x0. The noise parameters are first held at x0 while the
        others are fitted, then everything is fitted; both solves keep to a moving box (`solve_local`).
        Fitting all at once from a poor start lets σ absorb the misfit: the likelihood flattens and
        the interior-point iterations stall on a plateau far from any optimum.
        """
        if not self.initialize(x0):
            return None
        budget = float(self.options["max_cpu_time"]) if time_limit is None else time_limit
        seconds = 0.0
        if self.spec.noise:
            first = self.solve_local(half_width, fixed={i: x0[i] for i in self.spec.noise}, time_limit=budget)
            seconds = first.seconds
            if not first.converged:  # start the full fit afresh rather than from a failed one
                self.initialize(x0)
        solution = self.solve_local(half_width, time_limit=budget - seconds)
        return dataclasses.replace(solution, seconds=seconds + solution.seconds)

    def solve_local(self, half_width: float, fixed: Mapping[int, float] | None = None,
                    time_limit: float | None = None, max_moves: int = 10, max_iter: int | None = None) -> LocalSolution:
        """Solve from the current values within a box of `half_width` (a fraction of each bound
        width) around the current parameters; while the optimum sits on a face of the box that is
        not a bound, move the box there and solve again (warm-started). All solves together stop
        after `time_limit` seconds.

        The box keeps the solve local: along flat directions of the likelihood an unconstrained
        interior-point path can travel several orders of magnitude into another basin.
        """
        width = self.spec.upper - self.spec.lower
        time_limit = float(self.options["max_cpu_time"]) if time_limit is None else time_limit
        seconds = 0.0
        for _ in range(max_moves):
            centre = self.parameters()
            lower = np.maximum(self.spec.lower, centre - half_width * width)
            upper = np.minimum(self.spec.upper, centre + half_width * width)
            solution = self.solve(fixed, box=(lower, upper), time_limit=time_limit - seconds, max_iter=max_iter)
            seconds += solution.seconds
            tight = 1e-6 * width
            on_face = ((solution.x <= lower + tight) & (lower > self.spec.lower)) | \
                      ((solution.x >= upper - tight) & (upper < self.spec.upper))
            on_face[list(fixed or {})] = False
            if not solution.converged or not on_face.any() or seconds >= time_limit:
                break
        return dataclasses.replace(solution, seconds=seconds)

    def _run(self, options: Mapping[str, object]) -> str:
        if self.solver == "ipopt":
            with _quiet("pyomo", "cyipopt"), startup_floating_point_environment():
                results = pyo.SolverFactory("cyipopt").solve(self.model, tee=False, options=dict(options),
                                                             halt_on_evaluation_error=False)
            return str(results.solver.termination_condition)
        with _quiet("pyomo"), startup_floating_point_environment():
            results = pyo.SolverFactory("ripopt").solve(self.model, tee=False, options=dict(options),
                                                        load_solutions=False)
        status = str(results.solver.termination_condition)
        if len(results.solution):
            self.model.solutions.load_from(results)
        return status


def _value_or(expr: object, default: float) -> float:
    """A Pyomo expression's value, or `default` where it cannot be evaluated (log of a negative)."""
    try:
        value = float(pyo.value(expr))
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return default
    return value if math.isfinite(value) else default
