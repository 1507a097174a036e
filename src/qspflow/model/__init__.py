"""`OdeModel`: the symbolic ODE model every backend reads (simulator, Pyomo, SBML, PySB).

States, parameters (value, bounds, scale), right-hand sides and observables are sympy
expressions in the symbols named by states, parameters and `TIME`. Nothing here integrates;
`qspflow.simulate` compiles, `qspflow.calibrate` transcribes.

Conversions: `OdeModel.from_sbml` (and `qspflow.model.sbml.read_sbml`/`write_sbml`/`sbml_text`),
`to_pysb` and `from_pysb` (PySB + BioNetGen, imported only when used).
"""

from __future__ import annotations

import cmath
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from typing import TYPE_CHECKING

import sympy

from qspflow.errors import ModelError

if TYPE_CHECKING:
    import pysb

SCALES = ("lin", "log", "log10")


def symbol(name: str) -> sympy.Symbol:
    """The sympy symbol a state, parameter or quantity named `name` appears as in every expression.

    Always real: `Symbol(name)` without assumptions is a different symbol, and expressions built
    over it would silently not substitute.
    """
    return sympy.Symbol(name, real=True)


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

        An integrator restarts there instead of stepping across a discontinuity. Only conditions
        `TIME <op> number` are recognised; others are ignored (they stay correct, just slower).
        With `values` (parameter name → value), conditions like `TIME <= t_end` count too once
        the parameters are substituted.
        """
        numbers = {self.symbol(k): sympy.Float(float(v)) for k, v in (values or {}).items()}
        times: set[float] = set()
        for expr in list(self.rhs.values()) + list(self.observables.values()):
            for rel in sympy.sympify(expr).atoms(sympy.core.relational.Relational):
                lhs, rhs = rel.lhs.xreplace(numbers), rel.rhs.xreplace(numbers)
                if lhs == TIME and rhs.is_number:
                    times.add(float(rhs))
                elif rhs == TIME and lhs.is_number:
                    times.add(float(lhs))
        return sorted(times)


# ------------------------------------------------------------------------------------- PySB


def to_pysb(model: OdeModel) -> pysb.Model:
    """The model as a PySB model with the same ODEs (deterministic semantics).

    Encoding: each state `X` becomes a site-less Monomer `X()` with an Initial (a Parameter
    `X_0`, or an Expression `X_0` when the initial value depends on parameters), an Observable
    `X_obs` counting it, and one zero-order rule `X_dynamics: None >> X()` whose rate is the
    Expression `X_rhs` = the whole right-hand side written over the Observables. A zero-order
    rule adds its rate to dX/dt unchanged, whatever its sign, so BioNetGen's network gives back
    exactly dX/dt = rhs. Model expressions and observables become Expressions of their own name.
    Helper names get a trailing `_` where they would clash with a model name.
    """
    import pysb
    from pysb.core import time as pysb_time

    model.validate()
    taken = {*model.states, *model.parameters, *model.expressions, *model.observables}

    def fresh(name: str) -> str:
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    out = pysb.Model(name=model.name, _export=False)

    def add(component):
        out.add_component(component)
        return component

    components: dict[sympy.Symbol, sympy.Symbol] = {TIME: pysb_time}
    for name, parameter in model.parameters.items():
        components[model.symbol(name)] = add(pysb.Parameter(name, parameter.value, _export=False))
    monomers = {}
    for state in model.states:
        monomers[state] = add(pysb.Monomer(state, _export=False))
        amount = pysb.Observable(fresh(f"{state}_obs"), monomers[state](), _export=False)
        components[model.symbol(state)] = add(amount)

    def over_components(expr: sympy.Expr) -> sympy.Expr:
        return sympy.sympify(expr).xreplace(components)

    for state in model.states:
        start = sympy.sympify(model.initial[state])
        if start.is_number:
            value = add(pysb.Parameter(fresh(f"{state}_0"), float(start), _export=False))
        else:
            value = add(pysb.Expression(fresh(f"{state}_0"), over_components(start), _export=False))
        out.add_initial(pysb.Initial(monomers[state](), value, _export=False))
        rate = add(pysb.Expression(fresh(f"{state}_rhs"), over_components(model.rhs[state]), _export=False))
        add(pysb.Rule(fresh(f"{state}_dynamics"), None >> monomers[state](), rate, _export=False))
    for name, expr in [*model.expressions.items(), *model.observables.items()]:
        add(pysb.Expression(name, over_components(expr), _export=False))
    return out


def from_pysb(pysb_model: pysb.Model) -> OdeModel:
    """An OdeModel from the reaction network BioNetGen generates for a PySB model.

    States are the network's species, named after their pattern (`A(b=1) % B(a=1)` →
    `A_b_1_B_a_1`, made unique); Parameters keep their names and values; Expressions become
    `expressions` and Observables `observables`, both written over the states.
    """
    from pysb.bng import generate_equations
    from pysb.core import time as pysb_time

    generate_equations(pysb_model)
    parameters = {p.name: Parameter(p.name, float(p.value)) for p in pysb_model.parameters}
    taken = {*parameters, *(e.name for e in pysb_model.expressions), *(o.name for o in pysb_model.observables)}
    states = []
    for species in pysb_model.species:
        name = re.sub(r"\W+", "_", str(species)).strip("_") or "species"
        while name in taken:
            name += "_"
        taken.add(name)
        states.append(name)

    symbols = {sympy.Symbol(f"__s{i}"): sympy.Symbol(s, real=True) for i, s in enumerate(states)}
    symbols.update({p: sympy.Symbol(p.name, real=True) for p in pysb_model.parameters})
    symbols[pysb_time] = TIME
    expanded = {e: e.expand_expr(expand_observables=True).xreplace(symbols) for e in pysb_model.expressions}

    def over_states(expr: sympy.Expr) -> sympy.Expr:
        return sympy.sympify(expr).xreplace(expanded).xreplace(symbols)

    initial: dict[str, sympy.Expr] = {s: sympy.Integer(0) for s in states}
    for ic in pysb_model.initials:
        initial[states[pysb_model.get_species_index(ic.pattern)]] = over_states(ic.value)
    return OdeModel(
        name=pysb_model.name or "pysb_model",
        states=states,
        parameters=parameters,
        rhs={s: over_states(ode) for s, ode in zip(states, pysb_model.odes)},
        initial=initial,
        observables={o.name: over_states(o.expand_obs()) for o in pysb_model.observables},
        expressions={e.name: expanded[e] for e in pysb_model.expressions},
    )
