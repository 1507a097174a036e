"""`OdeModel`: the symbolic ODE model every backend reads (simulator, Pyomo, SBML, PySB).

States, parameters (value, bounds, scale), right-hand sides and observables are sympy
expressions in the symbols named by states, parameters and `TIME`. Nothing here integrates;
`qspflow.simulate` compiles, `qspflow.calibrate` transcribes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy

from qspflow.errors import ModelError

TIME = sympy.Symbol("time", real=True)
SCALES = ("lin", "log", "log10")


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

    def symbol(self, name: str) -> sympy.Symbol:
        """The sympy symbol a state or parameter appears as in the expressions."""
        return sympy.Symbol(name, real=True)

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
        for kind, exprs in (("rhs", self.rhs), ("initial", self.initial), ("observable", self.observables)):
            for name, expr in exprs.items():
                unknown = sorted(str(s) for s in sympy.sympify(expr).free_symbols - known)
                if unknown:
                    raise ModelError(source, element=name, expected=f"{kind} in known symbols",
                                     message=f"undefined symbol(s): {', '.join(unknown)}")

    def breakpoints(self) -> list[float]:
        """Times at which a piecewise expression in `TIME` switches (dose times, input steps).

        An integrator restarts there instead of stepping across a discontinuity. Only conditions
        `TIME <op> number` are recognised; others are ignored (they stay correct, just slower).
        """
        times: set[float] = set()
        for expr in list(self.rhs.values()) + list(self.observables.values()):
            for rel in sympy.sympify(expr).atoms(sympy.core.relational.Relational):
                lhs, rhs = rel.lhs, rel.rhs
                if lhs == TIME and rhs.is_number:
                    times.add(float(rhs))
                elif rhs == TIME and lhs.is_number:
                    times.add(float(lhs))
        return sorted(times)
