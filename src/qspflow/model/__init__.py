"""`OdeModel`: the symbolic ODE model every backend reads (simulator, Pyomo, SBML, PySB).

States, parameters (value, bounds, scale), right-hand sides and observables are sympy
expressions in the symbols named by states, parameters and `TIME`. Nothing here integrates;
`qspflow.simulate` compiles, `qspflow.calibrate` transcribes.

Conversions: `OdeModel.from_sbml` (and `qspflow.model.sbml.read_sbml`/`write_sbml`/`sbml_text`),
`qspflow.model.pysb` (`to_pysb`, `from_pysb`, `pysb_source`; PySB + BioNetGen, imported only when used).
"""

from __future__ import annotations

import cmath
import math
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike

import sympy

from qspflow.errors import ModelError

SCALES = ("lin", "log", "log10")


def symbol(name: str) -> sympy.Symbol:
    """The sympy symbol a state, parameter or quantity named `name` appears as in every expression.

    Always real: `Symbol(name)` without assumptions is a different symbol, and expressions built
    over it would silently not substitute.
    """
    return sympy.Symbol(name, real=True)


def derivative(expr: sympy.Expr, variable: sympy.Symbol) -> sympy.Expr:
    """d expr / d variable where it exists: impulses (DiracDelta, the derivative of a step, of sign
    or of |x|) are dropped, as every integrator and optimizer sees the function between its jumps; so is
    the derivative of a sign or step that sympy leaves unevaluated (its argument not provably real, C/V
    where V may be 0)."""
    d = sympy.diff(expr, variable)
    return d.replace(_impulse, lambda e: sympy.Integer(0)) if d.has(sympy.DiracDelta, sympy.Derivative) else d


def _impulse(e: sympy.Basic) -> bool:
    return isinstance(e, sympy.DiracDelta) or (isinstance(e, sympy.Derivative)
                                               and isinstance(e.expr, (sympy.sign, sympy.Heaviside)))


# Added to the base of a power whose exponent may be negative, in derivatives only: d(xⁿ)/dx =
# n·xⁿ⁻¹ is infinite at x = 0 for n < 1 (a Hill coefficient below 1 on a drug that is absent), and
# an integrator's Jacobian or a sensitivity's (∂f/∂x)·s then gives inf or inf·0 = NaN; with it the
# entry is large but finite (≤ 1e150 for exponents ≥ −1.5), and unchanged wherever x > 1e-84.
POWER_FLOOR = sympy.Float(1e-100)


def jacobian_entry(expr: sympy.Expr, variable: sympy.Symbol, states: frozenset[sympy.Symbol]) -> sympy.Expr:
    """d expr / d variable (`derivative`) with the bases of powers of `states` whose exponent may be
    negative raised by POWER_FLOOR: finite at x = 0. sympy's n·xⁿ/x is then n·(x+ε)ⁿ·(x+ε)⁻¹, which at
    x = 0 is ≈ 0 for n > 1, n for n = 1 and large but finite for n < 1, as n·(x+ε)ⁿ⁻¹ would be; merging
    the powers instead (powsimp) took half of the compile time of a sensitivity system."""
    d = derivative(expr, variable)

    def floored(e: sympy.Expr) -> bool:
        return e.is_Pow and e.exp.is_nonnegative is not True and bool(e.base.free_symbols & states)

    return d.replace(floored, lambda e: sympy.Pow(e.base + POWER_FLOOR, e.exp))


def unique_name(base: str, taken: set[str], valid: Callable[[str], bool] | None = None) -> str:
    """`base`, or `base` with underscores appended, the first that is not taken (and is `valid`);
    marks it taken."""
    name = base
    while name in taken or (valid is not None and not valid(name)):
        name += "_"
    taken.add(name)
    return name


TIME = symbol("time")


@dataclass
class Parameter:
    """A model parameter; `lower`/`upper`/`scale` are what a calibration works with."""

    name: str
    value: float
    lower: float = -math.inf
    upper: float = math.inf
    scale: str = "lin"
    estimate: bool = False
    unit: str = ""

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ModelError(None, element=self.name, expected=f"a scale in {SCALES}", found=self.scale)


@dataclass
class Event:
    """When `trigger` turns from false to true, the states in `assignments` get their new values.

    `trigger` is a condition (relations joined by And/Or/Not) in states, parameters and `TIME`;
    equalities are not allowed (they hold for an instant only). The semantics are SBML's (L3V2,
    section 4.12); `delay`, an expression in parameters only, puts the execution that long after the
    trigger (evaluated then; None: at once). At the instant an event executes:
    - `initial_value`: the trigger's value just before time 0; False lets a trigger that is true at
      time 0 fire then.
    - Events that fire at the same instant execute one by one, the highest `priority` first
      (evaluated when the choice is made; no priority ranks below every priority; ties in list
      order). After each execution every trigger is evaluated again: one that turned true joins them.
    - `persistent`: False drops an event whose trigger turns false before it executes (during its
      delay, or by an earlier execution at the same instant).
    - `use_values_from_trigger_time`: the assignments are evaluated when the event fires (True)
      or when it executes, after those executed before it at that instant (False). All assignments
      of one event are evaluated before any is made.
    """

    id: str
    trigger: sympy.Basic
    assignments: dict[str, sympy.Expr]
    priority: sympy.Expr | None = None
    delay: sympy.Expr | None = None
    initial_value: bool = True
    persistent: bool = True
    use_values_from_trigger_time: bool = True


@dataclass(frozen=True)
class TriggerRelations:
    """A trigger's relations by kind: `times` the instants of those in `TIME` alone (`TIME ≥ c`, …;
    c free of states and time), `states` the others, each a `Relational`."""

    times: tuple[tuple[sympy.Basic, sympy.Expr], ...]
    states: tuple[sympy.Basic, ...]


def trigger_relations(trigger: sympy.Basic, states: Collection[sympy.Symbol]) -> TriggerRelations:
    """The relations of an event trigger, split into switches at fixed instants and state conditions.

    A relation `TIME <op> c` (either side) whose c is free of `states` and time switches at c: a
    simulator stops there instead of searching for it. Its value at c itself is taken as the value
    right after c (`TIME > c` is true at c, `TIME <= c` false), the instant at which it changed.
    """
    times: list[tuple[sympy.Basic, sympy.Expr]] = []
    conditions: list[sympy.Basic] = []
    for rel in sympy.sympify(trigger).atoms(sympy.core.relational.Relational):
        lhs, rhs = (rel.rhs, rel.lhs) if rel.rhs == TIME else (rel.lhs, rel.rhs)
        inequality = isinstance(rel, (sympy.Gt, sympy.Ge, sympy.Lt, sympy.Le))
        if lhs == TIME and inequality and not rhs.free_symbols & {TIME, *states}:
            times.append((rel, rhs))
        else:
            conditions.append(rel)
    key = sympy.default_sort_key
    return TriggerRelations(tuple(sorted(times, key=lambda pair: key(pair[0]))), tuple(sorted(conditions, key=key)))


def right_limit(relation: sympy.Basic, instant: sympy.Expr) -> sympy.Basic:
    """`TIME <op> c` or `c <op> TIME` (from `trigger_relations`) as the condition that holds at c as
    it does right after."""
    rel = relation if relation.lhs == TIME else relation.reversed
    return TIME >= instant if isinstance(rel, (sympy.Gt, sympy.Ge)) else TIME < instant


@dataclass
class OdeModel:
    """dx/dt = rhs(x, p, time), x(0) = initial(p), y = observables(x, p, time)."""

    name: str
    states: list[str]
    parameters: dict[str, Parameter]
    rhs: dict[str, sympy.Expr]
    initial: dict[str, sympy.Expr]
    observables: dict[str, sympy.Expr] = field(default_factory=dict)
    #: Named derived quantities (SBML assignment rules and reaction rates, PySB expressions),
    #: already substituted into rhs/initial/observables; kept so that formulas can name them.
    expressions: dict[str, sympy.Expr] = field(default_factory=dict)
    #: Discontinuous changes of states (SBML events), in document order (ties of priority).
    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_sbml(cls, source: str | PathLike[str]) -> OdeModel:
        """Read an SBML file (or SBML text); see `qspflow.model.sbml` for what is supported."""
        from qspflow.model.sbml import read_sbml

        return read_sbml(source)

    def symbol(self, name: str) -> sympy.Symbol:
        """The sympy symbol a state or parameter appears as in the expressions."""
        return symbol(name)

    @property
    def state_symbols(self) -> list[sympy.Symbol]:
        return [self.symbol(s) for s in self.states]

    @property
    def parameter_symbols(self) -> list[sympy.Symbol]:
        return [self.symbol(p) for p in self.parameters]

    def validate(self, source: str | None = None) -> None:
        """Every state has a rhs and an initial value; every symbol used is a state, parameter or time."""
        known = set(self.state_symbols) | set(self.parameter_symbols) | {TIME}
        for state in self.states:
            if state not in self.rhs:
                raise ModelError(source, element=state, expected="a right-hand side for every state")
            if state not in self.initial:
                raise ModelError(source, element=state, expected="an initial value for every state")
        for kind, exprs in (("rhs", self.rhs), ("initial", self.initial), ("observable", self.observables),
                            ("expression", self.expressions)):
            for name, expr in exprs.items():
                unknown = sorted(str(s) for s in sympy.sympify(expr).free_symbols - known)
                if unknown:
                    raise ModelError(source, element=name, expected=f"{kind} in known symbols",
                                     message=f"undefined symbol(s): {', '.join(unknown)}")
        for event in self.events:
            self._validate_event(event, known, source)

    def _validate_event(self, event: Event, known: set[sympy.Symbol], source: str | None) -> None:
        """An event assigns states only, names known symbols and has no equality in its trigger."""
        if not event.assignments:
            raise ModelError(source, element=event.id, expected="an event with at least one assignment")
        for target in event.assignments:
            if target not in self.states:
                raise ModelError(source, element=event.id, expected="event assignments to states",
                                 found=target)
        trigger = sympy.sympify(event.trigger)
        if trigger.atoms(sympy.Eq, sympy.Ne):
            raise ModelError(source, element=event.id, expected="a trigger of inequalities",
                             message="an equality holds for an instant only and is not supported")
        if event.delay is not None and sympy.sympify(event.delay).free_symbols & {*self.state_symbols, TIME}:
            raise ModelError(source, element=event.id, expected="a delay in parameters only",
                             message="a delay that depends on the states or on time is not supported")
        parts = [trigger, *event.assignments.values()] + [e for e in (event.priority, event.delay) if e is not None]
        unknown = sorted({str(s) for e in parts for s in sympy.sympify(e).free_symbols} - {str(s) for s in known})
        if unknown:
            raise ModelError(source, element=event.id, expected="an event in known symbols",
                             message=f"undefined symbol(s): {', '.join(unknown)}")

    def check_start(self, values: Mapping[str, float] | None = None, source: str | None = None) -> None:
        """The initial state and the rhs at time 0 are finite numbers at the parameters' values.

        Catches a division by zero (or a log of zero) at t = 0 before any integrator meets it as
        an opaque step-size failure. `values` override parameter values by name.
        """
        numbers = {self.symbol(p.name): p.value for p in self.parameters.values()}
        numbers.update({self.symbol(name): value for name, value in (values or {}).items()})
        numbers[TIME] = 0.0
        for state in self.states:
            x0 = complex(sympy.sympify(self.initial[state]).subs(numbers).evalf())
            if not cmath.isfinite(x0) or x0.imag:
                raise ModelError(source, element=state, expected="a finite initial value",
                                 found=self.initial[state])
            numbers[self.symbol(state)] = x0.real
        for state in self.states:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rate = complex(sympy.sympify(self.rhs[state]).subs(numbers).evalf())
            if not cmath.isfinite(rate) or rate.imag:
                raise ModelError(source, element=state, expected="a finite rate of change at t = 0",
                                 message="division by zero or another undefined operation in its right-hand side")

    def breakpoints(self, values: Mapping[str, float] | None = None) -> list[float]:
        """Times at which a piecewise expression in `TIME` switches (dose times, input steps).

        An integrator restarts there instead of stepping across a discontinuity. Conditions whose
        sides differ by a linear function of `TIME` with number coefficients are recognised
        (`TIME <= 5`, `t_on - TIME > 0`, `TIME - 1799.99 < 0`); others are ignored (they stay
        correct, just slower). With `values` (parameter name → value), conditions like
        `TIME <= t_end` count too once the parameters are substituted.
        """
        numbers = {self.symbol(k): sympy.Float(float(v)) for k, v in (values or {}).items()}
        return switch_times(list(self.rhs.values()) + list(self.observables.values()), numbers)


def switch_times(exprs: Iterable[object], numbers: Mapping[sympy.Symbol, sympy.Expr] | None = None) -> list[float]:
    """Times at which a piecewise expression among `exprs` switches: the conditions whose sides differ by a
    linear function of `TIME` with number coefficients once `numbers` are substituted into them
    (`OdeModel.breakpoints`), sorted."""
    times: set[float] = set()
    for expr in exprs:
        for rel in sympy.sympify(expr).atoms(sympy.core.relational.Relational):
            difference = (rel.lhs - rel.rhs).xreplace(numbers or {})
            if difference.free_symbols != {TIME}:
                continue
            slope = difference.diff(TIME)
            offset = difference.xreplace({TIME: sympy.Integer(0)})
            if slope.is_number and offset.is_number and slope != 0 and (difference - slope * TIME - offset) == 0:
                times.add(float(-offset / slope))
    return sorted(times)
