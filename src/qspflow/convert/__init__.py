"""Boolean network → ODE model (Odefy), a drug's PK/PD, inhibitors, and the `convert` step's files.

`boolean_to_ode` follows Odefy (Krumsiek et al. 2010): a node's production B is the
multilinear interpolation of its Boolean function (BooleCube) over its regulators' values,
optionally passed through Hill functions (HillCube, normalized HillCube), and
dx/dt = (B − x)/tau. `couple_pkpd` adds a one- or two-compartment PK model whose
concentration scales the production of one node (Emax inhibition or activation);
`add_inhibitors` multiplies the production of inhibited nodes by (1 − inh_<node>). Dose inputs
are written with `Piecewise` in time, so the model needs no events and
`OdeModel.breakpoints()` finds every dose time.

Every model keeps its named quantities in `OdeModel.expressions` (fully substituted, as the
model contract says): `hill_<source>_<target>` per HillCube edge, `production_<node>` per
non-input node, and with a drug `drug_input` (oral and infusion), `A_c` (iv bolus) and
`drug_effect`. The same formulas written over each other's names — `production_Akt =
hill_PI3K_Akt` rather than the Hill function spelled out — are a `Formulas`, which the
`convert` step keeps to write the readable PySB model (`pysb_source`) and equations
(`equations_markdown`).

The step itself: `convert_network` reads one `.bnet`, builds the model with the study's drug
and inhibitors and the PEtab tables of the study's data; `write_converted` writes `model.py`,
`model.sbml`, `equations.md` and `petab/`.
"""

from __future__ import annotations

import keyword
import logging
import math
import os
import re
import shutil
import tempfile
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sympy
from sympy.printing.str import StrPrinter

from qspflow.boolean import BooleanNetwork, read_bnet, truth_table
from qspflow.errors import ConfigError, DataError, ModelError, NetworkError
from qspflow.io import format_float, write_text
from qspflow.model import SCALES, TIME, OdeModel, Parameter

if TYPE_CHECKING:
    from qspflow.petab import PetabTables

log = logging.getLogger("qspflow.convert")

METHODS = ("boolecube", "hillcube", "normalized-hillcube")
METHOD_TITLES = {"boolecube": "BooleCube", "hillcube": "HillCube", "normalized-hillcube": "normalized HillCube"}
DEFAULT_BOUNDS: dict[str, tuple[float, float, str]] = {
    "tau": (0.1, 10.0, "log10"),
    "k": (0.1, 1.0, "lin"),
    "n": (1.0, 5.0, "lin"),
}
# (value, lower, upper, scale, unit, estimate); PK is usually known from a PK study, PD is fitted.
PKPD_PARAMETERS: dict[str, tuple[float, float, float, str, str, bool]] = {
    "pk_ka": (1.0, 0.01, 100.0, "log10", "1/h", False),
    "pk_cl": (10.0, 0.01, 1000.0, "log10", "L/h", False),
    "pk_vc": (50.0, 0.1, 10000.0, "log10", "L", False),
    "pk_q": (5.0, 0.01, 1000.0, "log10", "L/h", False),
    "pk_vp": (100.0, 0.1, 10000.0, "log10", "L", False),
    "pk_f": (1.0, 0.0, 1.0, "lin", "1", False),
    "pd_emax": (1.0, 0.0, 1.0, "lin", "1", True),
    "pd_ec50": (1.0, 1e-4, 1e4, "log10", "mg/L", True),
    "pd_hill": (1.0, 0.5, 5.0, "lin", "1", True),
}
ROUTES = ("oral", "iv_bolus", "iv_infusion")
EFFECTS = ("inhibit", "activate")
CONCENTRATION = "C_drug"
DRUG_INPUT = "drug_input"
DRUG_EFFECT = "drug_effect"
# The keys of the `drug` mapping `convert_network` takes (the study config's `drug:` section).
DRUG_KEYS = ("target", "name", "effect", "route", "compartments", "interval", "n_doses", "infusion_duration",
             "parameters", "estimate")
# An id must be one in SBML, Python and BioNetGen alike, and must not shadow the names model.py imports.
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_NAMES = frozenset({
    "time", "sympy", "model", "Model", "Monomer", "Parameter", "Expression", "Observable", "Rule", "Initial",
    # BioNetGen's built-in functions and constants
    "exp", "ln", "log10", "log2", "sqrt", "abs", "rint", "min", "max", "sum", "avg", "if", "mratio", "TFUN",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "_pi", "_e",
})
ID_EXPECTED = ("an identifier [A-Za-z_][A-Za-z0-9_]* that is not a Python keyword or one of "
               "time, exp, if, min, max, Model, Monomer, … (SBML, PySB and BioNetGen use it as a name)")


def _symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


def valid_id(name: str) -> bool:
    """Whether `name` can name a state, parameter or quantity in SBML, PySB and BioNetGen alike."""
    return bool(_ID.match(name)) and not keyword.iskeyword(name) and name not in RESERVED_NAMES


# ------------------------------------------------------------------------------------ formulas


@dataclass
class Formulas:
    """A model's formulas as a person writes them: over states, parameters, time and each other's names.

    `quantities`: each named quantity (a model expression or observable) → its formula, which
    may use the names of other quantities; `rates`: each state → dx/dt, over the same names.
    Substituting the quantities into each other gives the model's (fully substituted)
    expressions, observables and right-hand sides.
    """

    quantities: dict[str, sympy.Expr]
    rates: dict[str, sympy.Expr]

    @classmethod
    def of(cls, model: OdeModel) -> Formulas:
        """The plain formulas of `model`: quantities fully substituted; a rate that is exactly
        (production_X − X)/tau_X written so, every other rate as the right-hand side."""
        rates = {}
        for state in model.states:
            production, tau = model.expressions.get(f"production_{state}"), f"tau_{state}"
            rates[state] = model.rhs[state]
            if production is not None and tau in model.parameters:
                x, t = _symbol(state), _symbol(tau)
                if (production - x) / t == model.rhs[state]:
                    rates[state] = (_symbol(f"production_{state}") - x) / t
        return cls({**model.expressions, **model.observables}, rates)

    def order(self) -> list[str]:
        """The quantities with every one after those its formula uses (else in their own order)."""
        done: dict[str, None] = {}
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                raise ModelError(None, element=name, message="quantities defined in terms of each other (a cycle)")
            visiting.add(name)
            for symbol in sorted(self.quantities[name].free_symbols, key=str):
                if symbol.name in self.quantities:
                    visit(symbol.name)
            visiting.discard(name)
            done[name] = None

        for name in self.quantities:
            visit(name)
        return list(done)

    def resolve(self) -> dict[str, sympy.Expr]:
        """Every quantity with the others substituted: over states, parameters and time only."""
        values: dict[sympy.Symbol, sympy.Expr] = {}
        for name in self.order():
            values[_symbol(name)] = sympy.sympify(self.quantities[name]).xreplace(values)
        return {symbol.name: value for symbol, value in values.items()}

    def substituted(self, expr: sympy.Expr, resolved: Mapping[str, sympy.Expr] | None = None) -> sympy.Expr:
        """`expr` with every quantity's name replaced by its resolved formula."""
        resolved = self.resolve() if resolved is None else resolved
        return sympy.sympify(expr).xreplace({_symbol(n): v for n, v in resolved.items()})


def _realize(name: str, states: Sequence[str], parameters: dict[str, Parameter], initial: dict[str, sympy.Expr],
             formulas: Formulas, observables: Collection[str]) -> OdeModel:
    """The OdeModel the formulas describe; quantities in `observables` become its observables."""
    taken = set(states) | set(parameters)
    for quantity in formulas.quantities:
        if quantity in taken:
            raise ModelError(None, element=quantity, expected="names that are unique among states, parameters "
                             "and derived quantities", message="two elements of the model would share it")
    resolved = formulas.resolve()
    model = OdeModel(
        name,
        list(states),
        parameters,
        {s: formulas.substituted(formulas.rates[s], resolved) for s in states},
        initial,
        {q: resolved[q] for q in formulas.quantities if q in observables},
        {q: resolved[q] for q in formulas.quantities if q not in observables},
    )
    model.validate()
    return model


def _relaxes(rhs: sympy.Expr, production: sympy.Expr, x: sympy.Symbol, tau: sympy.Symbol) -> bool:
    """Whether rhs = (production − x)/tau, the Odefy form (structurally, else after simplification)."""
    difference = sympy.sympify(rhs) * tau + x - production
    return difference == 0 or sympy.simplify(difference) == 0


def _production(model: OdeModel, formulas: Formulas, node: str) -> str:
    """The name of `node`'s production quantity, made from its rhs if the model has none.

    The node must relax as dx/dt = (B − x)/tau_<node>; its rate becomes (production − x)/tau.
    """
    name, tau = f"production_{node}", f"tau_{node}"
    x = _symbol(node)
    if node not in model.states or tau not in model.parameters:
        raise ModelError(None, element=node, expected="a node of a boolean_to_ode model (state with tau_<node>)")
    if name in formulas.quantities:
        if not _relaxes(model.rhs[node], model.expressions.get(name, formulas.substituted(_symbol(name))),
                        x, _symbol(tau)):
            raise ModelError(None, element=node, expected=f"dx/dt = ({name} − {node})/{tau}")
    else:
        formulas.quantities[name] = sympy.sympify(model.rhs[node]) * _symbol(tau) + x  # exact: sympy cancels to B
    formulas.rates[node] = (_symbol(name) - x) / _symbol(tau)
    return name


# --------------------------------------------------------------------------------------- Odefy


def _parameter(name: str, value: float, kind: str, bounds: Mapping | None, unit: str = "") -> Parameter:
    """A kinetic parameter with bounds from `bounds[name]`, else `bounds[kind]`, else the defaults."""
    given = bounds or {}
    lower, upper, *scale = given.get(name, given.get(kind, DEFAULT_BOUNDS[kind]))
    return Parameter(name, value, float(lower), float(upper), scale[0] if scale else DEFAULT_BOUNDS[kind][2],
                     estimate=True, unit=unit)


def _cube(table: np.ndarray, values: Sequence[sympy.Expr]) -> sympy.Expr:
    """The multilinear interpolation of `table` (first value = top bit) at `values`.

    Shannon expansion B = v·B|v=1 + (1 − v)·B|v=0, with a cofactor pair that is equal
    written once: the same polynomial as the sum over the true rows, with fewer operations.
    """
    if table.all():
        return sympy.Integer(1)
    if not table.any():
        return sympy.Integer(0)
    half = table.size // 2
    low, high = table[:half], table[half:]
    when_low = _cube(low, values[1:])
    if np.array_equal(low, high):
        return when_low
    v = values[0]
    return v * _cube(high, values[1:]) + (1 - v) * when_low


def _hill(x: sympy.Symbol, k: sympy.Symbol, n: sympy.Symbol, normalized: bool) -> sympy.Expr:
    # |x| = x on every exact solution (x ≥ 0); it keeps a fractional xⁿ real when an
    # integrator's stage values dip below 0 near x = 0, within the absolute tolerance.
    hill = sympy.Abs(x) ** n / (sympy.Abs(x) ** n + k**n)
    return hill * (1 + k**n) if normalized else hill


def _odefy(net: BooleanNetwork, *, method: str, n: float, k: float, tau: float,
           bounds: Mapping[str, Sequence] | None) -> tuple[OdeModel, Formulas]:
    """`boolean_to_ode` with its formulas."""
    if method not in METHODS:
        raise ModelError(None, element="method", expected=f"one of {list(METHODS)}", found=method)
    parameters: dict[str, Parameter] = {}
    formulas = Formulas({}, {})
    initial: dict[str, sympy.Expr] = {}
    inputs = set(net.inputs)
    for node in net.nodes:
        x = _symbol(node)
        if node in inputs:
            name = f"input_{node}"
            parameters[name] = Parameter(name, 0.0, 0.0, 1.0, "lin", estimate=False)
            formulas.rates[node] = sympy.Integer(0)
            initial[node] = _symbol(name)
            continue
        regulators = net.regulators(node)
        values = []
        for source in regulators:
            if method == "boolecube":
                values.append(_symbol(source))
                continue
            kn, nn, hn = f"k_{source}_{node}", f"n_{source}_{node}", f"hill_{source}_{node}"
            if kn in parameters:  # e.g. nodes a_b, c and a, b_c
                raise ModelError(None, element=kn, expected="node names that give distinct edge parameters")
            parameters[kn] = _parameter(kn, k, "k", bounds)
            parameters[nn] = _parameter(nn, n, "n", bounds)
            formulas.quantities[hn] = _hill(_symbol(source), _symbol(kn), _symbol(nn), method == "normalized-hillcube")
            values.append(_symbol(hn))
        production = f"production_{node}"
        formulas.quantities[production] = _cube(truth_table(net.rules[node], regulators), values)
        tn = f"tau_{node}"
        parameters[tn] = _parameter(tn, tau, "tau", bounds, unit="h")
        formulas.rates[node] = (_symbol(production) - x) / _symbol(tn)
        initial[node] = sympy.Integer(0)
    return _realize(method, net.nodes, parameters, initial, formulas, ()), formulas


def boolean_to_ode(net: BooleanNetwork, *, method: str = "normalized-hillcube", n: float = 3.0, k: float = 0.5,
                   tau: float = 1.0, bounds: Mapping[str, Sequence] | None = None) -> OdeModel:
    """The Odefy ODE model of `net`: dx/dt = (B(x) − x)/tau_x per node.

    `method`: "boolecube" (B multilinear in the regulators' values), "hillcube" (each
    regulator value x replaced by f(x) = |x|ⁿ/(|x|ⁿ+kⁿ), Odefy's xⁿ/(xⁿ+kⁿ) for x ≥ 0) or
    "normalized-hillcube" (f(x)·(1+kⁿ), so f(1) = 1). Parameters: `tau_<node>`, and per edge `k_<source>_<target>`,
    `n_<source>_<target>` (HillCubes), with `bounds` given as (lower, upper[, scale]) by
    parameter name or by kind ("tau", "k", "n"). Input nodes (rule = the node itself) keep
    their initial value, the parameter `input_<node>` (0 by default, set by conditions);
    other nodes start at 0. Expressions: `hill_<source>_<target>` (HillCubes) and B as
    `production_<node>`.
    """
    return _odefy(net, method=method, n=n, k=k, tau=tau, bounds=bounds)[0]


# --------------------------------------------------------------------------------------- PK/PD


def _step(t0: float) -> sympy.core.relational.Relational:
    return TIME >= sympy.Float(t0)


def _schedule(doses: Sequence[tuple[float, float]] | None, dose_parameter: str | None, interval: float | None,
              n_doses: int | None) -> tuple[list[tuple[float, sympy.Expr]], Parameter | None]:
    """Dose times and amounts: a fixed list, or `n_doses` every `interval` of the parameter amount."""
    if doses is not None:
        if dose_parameter is not None or interval is not None or n_doses is not None:
            raise ModelError(None, element="doses", expected="either `doses` or `interval` and `n_doses`",
                             message="the amounts of a fixed dose list are numbers, not a parameter")
        schedule = [(float(t), sympy.Float(float(d))) for t, d in doses]
        if any(t < 0 for t, _ in schedule):
            raise ModelError(None, element="doses", expected="dose times ≥ 0", found=doses)
        return schedule, None
    if interval is None or n_doses is None or interval <= 0 or n_doses < 1:
        raise ModelError(None, element="doses", expected="`doses`, or `interval` > 0 and `n_doses` ≥ 1",
                         found=f"interval={interval}, n_doses={n_doses}")
    name = dose_parameter or "dose_drug"
    amount = Parameter(name, 0.0, 0.0, np.inf, "lin", estimate=False, unit="mg")
    return [(k * float(interval), _symbol(name)) for k in range(int(n_doses))], amount


def _with_effect(production: sympy.Expr, effect_value: sympy.Expr, effect: str) -> sympy.Expr:
    return production * (1 - effect_value) if effect == "inhibit" else production + (1 - production) * effect_value


def _couple(model: OdeModel, formulas: Formulas, *, target: str, effect: str, compartments: int, route: str,
            doses: Sequence[tuple[float, float]] | None, dose_parameter: str | None, interval: float | None,
            n_doses: int | None, infusion_duration: float | None) -> tuple[OdeModel, Formulas]:
    """`couple_pkpd` with formulas: those of `model` extended by the PK/PD quantities."""
    if effect not in EFFECTS:
        raise ModelError(None, element="effect", expected="'inhibit' or 'activate'", found=effect)
    if compartments not in (1, 2):
        raise ModelError(None, element="compartments", expected="1 or 2", found=compartments)
    if route not in ROUTES:
        raise ModelError(None, element="route", expected=f"one of {list(ROUTES)}", found=route)
    if route == "iv_infusion" and not (infusion_duration and infusion_duration > 0):
        raise ModelError(None, element="infusion_duration", expected="a duration > 0 for an infusion",
                         found=infusion_duration)
    formulas = Formulas(dict(formulas.quantities), dict(formulas.rates))
    production = _production(model, formulas, target)
    pk_names = {"A_c", "A_p", "A_out", CONCENTRATION, DRUG_INPUT, DRUG_EFFECT}
    clash = pk_names & (set(model.states) | set(model.parameters) | set(formulas.quantities))
    if clash:
        raise ModelError(None, element=model.name, expected="no PK names among the states", found=sorted(clash))
    schedule, amount = _schedule(doses, dose_parameter, interval, n_doses)

    names = ["pk_ka", "pk_cl", "pk_vc", "pk_f"] if route == "oral" else ["pk_cl", "pk_vc"]
    names += ["pk_q", "pk_vp"] if compartments == 2 else []
    names += ["pd_emax", "pd_ec50", "pd_hill"]
    parameters = dict(model.parameters)
    for name in names:
        value, lower, upper, scale, unit, estimate = PKPD_PARAMETERS[name]
        parameters[name] = Parameter(name, value, lower, upper, scale, estimate, unit)
    if amount is not None:
        parameters[amount.name] = amount
    ka, cl, vc, q, vp, bio = (_symbol(n) for n in ("pk_ka", "pk_cl", "pk_vc", "pk_q", "pk_vp", "pk_f"))

    quantities, rates = formulas.quantities, formulas.rates
    initial = dict(model.initial)
    a_c, a_p, c = _symbol("A_c"), _symbol("A_p"), _symbol(CONCENTRATION)
    if route == "iv_bolus":
        # The central amount jumps by D at t_k, which an ODE cannot express: the state is A_out,
        # the (continuous) amount that has left the central compartment, and A_c an expression.
        quantities["A_c"] = sum((sympy.Piecewise((d, _step(t)), (0, True)) for t, d in schedule),
                                sympy.Integer(0)) - _symbol("A_out")
        central = "A_out"
    else:
        central = "A_c"
        if route == "oral":  # the gut depot, solved analytically
            inflow = sum((sympy.Piecewise((ka * bio * d * sympy.exp(-ka * (TIME - t)), _step(t)), (0, True))
                          for t, d in schedule), sympy.Integer(0))
        else:
            span = float(infusion_duration)
            inflow = sum((sympy.Piecewise((d / span, _step(t) & (TIME < sympy.Float(t + span))), (0, True))
                          for t, d in schedule), sympy.Integer(0))
        quantities[DRUG_INPUT] = inflow
    quantities[CONCENTRATION] = a_c / vc
    distribution = (q * c - q / vp * a_p) if compartments == 2 else sympy.Integer(0)
    outflow = cl * c + distribution  # cl·C = (CL/Vc)·A_c
    rates[central] = outflow if route == "iv_bolus" else _symbol(DRUG_INPUT) - outflow
    initial[central] = sympy.Integer(0)
    states = [*model.states, central]
    if compartments == 2:
        rates["A_p"] = distribution
        initial["A_p"] = sympy.Integer(0)
        states.append("A_p")

    # |C| equals C on every exact solution (C ≥ 0) and keeps Cʰ real when round-off makes C
    # slightly negative; unlike a Piecewise clip it does not slow down event-aware solvers.
    ch = sympy.Abs(c) ** _symbol("pd_hill")
    quantities[DRUG_EFFECT] = _symbol("pd_emax") * ch / (_symbol("pd_ec50") ** _symbol("pd_hill") + ch)
    quantities[production] = _with_effect(quantities[production], _symbol(DRUG_EFFECT), effect)
    coupled = _realize(f"{model.name}_pkpd", states, parameters, initial, formulas,
                       {*model.observables, CONCENTRATION})
    return coupled, formulas


def couple_pkpd(model: OdeModel, *, target: str, effect: str = "inhibit", compartments: int = 1,
                route: str = "oral", doses: Sequence[tuple[float, float]] | None = None,
                dose_parameter: str | None = None, interval: float | None = None, n_doses: int | None = None,
                infusion_duration: float | None = None) -> OdeModel:
    """`model` (from `boolean_to_ode`) with a drug's PK driving the production of `target`.

    Doses: `doses` as (time h, amount mg) pairs, or `n_doses` doses every `interval` h from 0
    whose amount is the parameter `dose_parameter` (default `dose_drug`, 0 until a condition
    sets it). PK amounts in mg, parameters pk_ka, pk_cl, pk_vc, pk_q, pk_vp, pk_f; observable
    `C_drug` = A_c/pk_vc (mg/L).

    - oral: the gut depot is solved analytically: input ka·F·D·exp(−ka(t − t_k)) from t_k
      (expression `drug_input`).
    - iv_infusion: input D/T on [t_k, t_k + T), T = `infusion_duration` (`drug_input`).
    - iv_bolus: the central amount jumps by D at t_k, which an ODE cannot express. The state is
      instead `A_out`, the net amount that has left the central compartment (eliminated or
      distributed), which is continuous; A_c = Σ D_k·[t ≥ t_k] − A_out is an expression.

    Effect on the production B of `target` (its rhs must be (B − x)/tau_target), with
    E = pd_emax·|C|ʰ/(pd_ec50ʰ + |C|ʰ) (expression `drug_effect`), h = pd_hill: inhibit B·(1 − E);
    activate B + (1 − B)·E.
    """
    return _couple(model, Formulas.of(model), target=target, effect=effect, compartments=compartments,
                   route=route, doses=doses, dose_parameter=dose_parameter, interval=interval, n_doses=n_doses,
                   infusion_duration=infusion_duration)[0]


# ----------------------------------------------------------------------------------- inhibitors


def _inhibit(model: OdeModel, formulas: Formulas, nodes: Sequence[str]) -> tuple[OdeModel, Formulas]:
    """`add_inhibitors` with formulas."""
    formulas = Formulas(dict(formulas.quantities), dict(formulas.rates))
    parameters, initial = dict(model.parameters), dict(model.initial)
    for node in dict.fromkeys(nodes):
        name = f"inh_{node}"
        if node not in model.states:
            raise ModelError(None, element=node, expected=f"a state of model '{model.name}' to inhibit")
        if name in parameters:
            raise ModelError(None, element=name, expected="a node inhibited once")
        parameters[name] = Parameter(name, 0.0, 0.0, 1.0, "lin", estimate=False)
        off = 1 - _symbol(name)
        if sympy.sympify(model.rhs[node]) == 0:  # an input: its value is its production
            initial[node] = sympy.sympify(model.initial[node]) * off
            continue
        production = _production(model, formulas, node)
        formulas.quantities[production] = formulas.quantities[production] * off
    observables = set(model.observables)
    return _realize(model.name, model.states, parameters, initial, formulas, observables), formulas


def add_inhibitors(model: OdeModel, nodes: Sequence[str]) -> OdeModel:
    """`model` with each node of `nodes` switchable off by a 0/1 parameter `inh_<node>`.

    The production B of a node (rhs (B − x)/tau_<node>) becomes B·(1 − inh_<node>); an input
    node's value becomes input·(1 − inh_<node>). `inh_<node>` is 0 (no inhibitor) in [0, 1],
    not estimated: an experiment's `inhibitor:<node>` column sets it. A node that is not a
    state raises `ModelError`.
    """
    return _inhibit(model, Formulas.of(model), nodes)[0]


# ------------------------------------------------------------------------------------ the files


class _PySBPrinter(StrPrinter):
    """Python source for a PySB Expression: sympy functions by their module name, exact floats."""

    def _print_Function(self, expr: sympy.Basic) -> str:
        return f"sympy.{type(expr).__name__}({', '.join(self._print(a) for a in expr.args)})"

    _print_Basic = _print_Min = _print_Max = _print_Function  # sympy classes StrPrinter writes bare

    def _print_Relational(self, expr: sympy.core.relational.Relational) -> str:
        if expr.rel_op in ("==", "!="):  # Python's == and != would compare, not build
            return self._print_Function(expr)
        return super()._print_Relational(expr)

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        pieces = ", ".join(f"({self._print(e)}, {self._print(c)})" for e, c in expr.args)
        return f"sympy.Piecewise({pieces})"

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return f"sympy.Rational({expr.p}, {expr.q})"

    def _print_BooleanTrue(self, expr: sympy.logic.boolalg.BooleanTrue) -> str:
        return "True"

    def _print_Exp1(self, expr: sympy.Expr) -> str:
        return "sympy.E"

    def _print_Pi(self, expr: sympy.Expr) -> str:
        return "sympy.pi"


def _check_ids(names: Sequence[str]) -> None:
    for name in names:
        if not valid_id(name):
            raise ModelError(None, element=name, expected=ID_EXPECTED)


def _checked_formulas(model: OdeModel, formulas: Formulas | None) -> Formulas:
    """`formulas` (default: `Formulas.of(model)`), checked to describe exactly `model`."""
    formulas = formulas or Formulas.of(model)
    model.validate()
    _check_ids([*model.states, *model.parameters, *formulas.quantities])
    resolved = formulas.resolve()
    stored = {**model.expressions, **model.observables}
    if set(resolved) != set(stored) or set(formulas.rates) != set(model.states):
        raise ModelError(None, element=model.name, expected="formulas of the model's quantities and states")
    for name, value in resolved.items():
        if value != stored[name]:
            raise ModelError(None, element=name, expected="a formula equal to the model's expression")
    for state in model.states:
        if formulas.substituted(formulas.rates[state], resolved) != model.rhs[state]:
            raise ModelError(None, element=state, expected="a rate equal to the model's right-hand side")
    return formulas


def _relaxing_states(model: OdeModel, formulas: Formulas) -> set[str]:
    """States whose rate is written (production_X − X)/tau_X: synthesis and degradation in PySB."""
    found = set()
    for state in model.states:
        production, tau = f"production_{state}", f"tau_{state}"
        if production in formulas.quantities and tau in model.parameters:
            expected = (_symbol(production) - _symbol(state)) / _symbol(tau)
            if sympy.sympify(formulas.rates[state]) == expected:
                found.add(state)
    return found


def _parameter_comment(p: Parameter) -> str:
    bounds = f"[{format_float(p.lower)}, {format_float(p.upper)}] {p.scale}"
    return f"{p.unit + ', ' if p.unit else ''}{bounds}, {'estimated' if p.estimate else 'fixed'}"


def pysb_source(model: OdeModel, formulas: Formulas | None = None, *, description: str | None = None) -> str:
    """A readable PySB model file (Python source) with the ODEs of `model`, deterministic text.

    One Monomer per state, counted by an Observable `<state>_obs`; a Parameter per parameter;
    an Expression per named quantity, written by `formulas` (default: fully substituted).
    A state whose rate is (production_X − X)/tau_X gets a synthesis rule `None >> X()` at rate
    production_X/tau_X and a degradation rule `X() >> None` at rate 1/tau_X; a state whose rate
    is 0 (an input) has no rule; any other state (a PK amount) one zero-order rule whose rate is
    its dx/dt (a zero-order rule adds its rate to dX/dt unchanged, whatever its sign). States
    with a non-zero initial value or no rule get an Initial. BioNetGen's network of the file gives back
    exactly the model's ODEs.
    """
    formulas = _checked_formulas(model, formulas)
    taken = {*model.states, *model.parameters, *formulas.quantities}

    def fresh(name: str) -> str:
        while name in taken or not valid_id(name):
            name += "_"
        taken.add(name)
        return name

    printer = _PySBPrinter()
    observables = {s: fresh(f"{s}_obs") for s in model.states}
    in_source = {_symbol(s): _symbol(o) for s, o in observables.items()}

    def code(expr: sympy.Expr) -> str:
        return printer.doprint(sympy.sympify(expr).xreplace(in_source))

    relaxing = _relaxing_states(model, formulas)
    ruled = relaxing | {s for s in model.states if sympy.sympify(formulas.rates[s]) != 0}
    doc = [*textwrap.wrap(description or f"PySB model '{model.name}', written by qspflow.convert.", 100), "",
           "Every state is a site-less Monomer; `<state>_obs` counts it for use in expressions."]
    if relaxing:
        doc += ["A node X relaxes towards its production: `None >> X()` at rate production_X/tau_X and",
                "`X() >> None` at rate 1/tau_X, so dX/dt = (production_X - X)/tau_X."]
    doc += ["A state whose dX/dt is 0 (an input) has no rule; any other state has one zero-order rule",
            "whose rate is its dX/dt. States without an Initial start at 0.",
            "Import and extend it as any PySB model (`from model import model`)."]
    lines = [
        '"""' + doc[0],
        *doc[1:],
        '"""',
        "",
        "import sympy",
        "from pysb import Expression, Initial, Model, Monomer, Observable, Parameter, Rule",
        "from pysb.core import time",
        "",
        "Model()",
        "",
        "# States",
        *(f'{s} = Monomer("{s}")' for s in model.states),
        "",
        "# Parameters: value  # unit, [lower, upper] scale, estimated or fixed",
        *(f'{n} = Parameter("{n}", {float(p.value)!r})  # {_parameter_comment(p)}'
          for n, p in model.parameters.items()),
        "",
        "# Observables: the amount of each state",
        *(f'{o} = Observable("{o}", {s}())' for s, o in observables.items()),
        "",
        "# Initial values",
    ]
    for state in model.states:
        start = sympy.sympify(model.initial[state])
        if start == 0 and state in ruled:  # a species no rule makes would be left out of the network
            continue
        if isinstance(start, sympy.Symbol) and start.name in model.parameters:
            lines.append(f"Initial({state}(), {start.name})")
            continue
        value = fresh(f"{state}_0")
        if start.is_number:
            lines.append(f'{value} = Parameter("{value}", {float(start)!r})')
        else:
            lines.append(f'{value} = Expression("{value}", {code(start)})')
        lines.append(f"Initial({state}(), {value})")
    lines += ["", "# Named quantities (Hill functions per edge, productions, drug)"]
    for name in formulas.order():
        lines.append(f'{name} = Expression("{name}", {code(formulas.quantities[name])})')
    lines += ["", "# Rules"]
    for state in model.states:
        rate = sympy.sympify(formulas.rates[state])
        if state in relaxing:
            make, lose = fresh(f"synthesis_rate_{state}"), fresh(f"degradation_rate_{state}")
            lines += [
                f'{make} = Expression("{make}", production_{state} / tau_{state})',
                f'{lose} = Expression("{lose}", 1 / tau_{state})',
                f'Rule("{fresh(f"synthesis_{state}")}", None >> {state}(), {make})',
                f'Rule("{fresh(f"degradation_{state}")}", {state}() >> None, {lose})',
            ]
        elif rate != 0:
            name = fresh(f"rate_{state}")
            lines += [f'{name} = Expression("{name}", {code(rate)})',
                      f'Rule("{fresh(f"dynamics_{state}")}", None >> {state}(), {name})']
    return "\n".join(lines) + "\n"


def _latex_names(names: Collection[str]) -> dict[sympy.Symbol, str]:
    """How each name prints in LaTeX: tau_X as τ_X, time as t, others upright with `_` escaped."""

    def upright(text: str) -> str:
        return r"\mathrm{" + text.replace("_", r"\_") + "}"

    out: dict[sympy.Symbol, str] = {TIME: "t"}
    for name in names:
        tau = name.startswith("tau_") and len(name) > 4
        out[_symbol(name)] = rf"\tau_{{{upright(name[4:])}}}" if tau else upright(name)
    return out


def equations_markdown(model: OdeModel, formulas: Formulas | None = None, *, description: str | None = None) -> str:
    """The model as Markdown with LaTeX: one line dX/dt = … per state, the named quantities
    (productions, Hill functions, drug), the initial values and the parameter table."""
    formulas = _checked_formulas(model, formulas)
    names = _latex_names([*model.states, *model.parameters, *formulas.quantities])

    def tex(expr: sympy.Expr) -> str:
        return sympy.latex(sympy.sympify(expr), symbol_names=names)

    lines = [f"# Model `{model.name}`", ""]
    if description:
        lines += [description, ""]
    lines += ["## Rate equations", ""]
    relaxing = _relaxing_states(model, formulas)
    for state in model.states:
        x = names[_symbol(state)]
        if state in relaxing:  # as written by hand: (B − x)/τ, not sympy's (−x + B)/τ
            rate = rf"\frac{{{names[_symbol(f'production_{state}')]} - {x}}}{{{names[_symbol(f'tau_{state}')]}}}"
        else:
            rate = tex(formulas.rates[state])
        lines.append(rf"$$\frac{{d{x}}}{{dt}} = {rate}$$")
    lines += ["", "## Production terms and other named quantities", ""]
    lines += [f"$${names[_symbol(q)]} = {tex(formulas.quantities[q])}$$" for q in formulas.order()]
    lines += ["", "## Initial values", "", "States not listed start at 0.", ""]
    lines += [f"$${names[_symbol(s)]}(0) = {tex(model.initial[s])}$$"
              for s in model.states if sympy.sympify(model.initial[s]) != 0]
    lines += ["", "## Parameters", "", "| parameter | value | lower | upper | scale | unit | estimate |",
              "|---|---|---|---|---|---|---|"]
    for name, p in model.parameters.items():
        lines.append(f"| `{name}` | {format_float(p.value)} | {format_float(p.lower)} | {format_float(p.upper)} "
                     f"| {p.scale} | {p.unit} | {'yes' if p.estimate else 'no'} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the convert step


@dataclass
class ConvertedModel:
    """One network converted: the model, its readable formulas and, with data, its PEtab tables."""

    name: str
    source: str
    net: BooleanNetwork
    model: OdeModel
    formulas: Formulas
    description: str
    problem: PetabTables | None = None  # with measurements and experiments


def _number(value: object, key: str, *, positive: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or (positive and x <= 0):
        raise ConfigError(None, key=key, expected="a finite number" + (" > 0" if positive else ""), found=value)
    return x


def _checked_bounds(bounds: Mapping[str, Sequence] | None) -> dict[str, tuple]:
    """`convert.bounds` entries as (lower, upper[, scale]), checked."""
    out = {}
    for name, entry in (bounds or {}).items():
        key = f"convert.bounds.{name}"
        if isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) not in (2, 3):
            raise ConfigError(None, key=key, expected="[lower, upper] or [lower, upper, scale]", found=entry)
        lower, upper = _number(entry[0], key), _number(entry[1], key)
        scale = entry[2] if len(entry) == 3 else None
        if scale is not None and scale not in SCALES:
            raise ConfigError(None, key=key, expected=f"a scale in {list(SCALES)}", found=scale)
        if not lower < upper or ((scale or DEFAULT_BOUNDS.get(name, (0, 0, "lin"))[2]) != "lin" and lower <= 0):
            raise ConfigError(None, key=key, expected="lower < upper, and lower > 0 on a log scale", found=entry)
        out[name] = (lower, upper) if scale is None else (lower, upper, scale)
    return out


def _apply_bounds(model: OdeModel, bounds: Mapping[str, tuple]) -> None:
    """Bounds given by parameter name (PK/PD included) onto the model; names it lacks are logged."""
    for name, (lower, upper, *scale) in bounds.items():
        if name in DEFAULT_BOUNDS:
            continue
        if name not in model.parameters:
            log.warning("convert.bounds.%s: model '%s' has no such parameter; ignored", name, model.name)
            continue
        p = model.parameters[name]
        p.lower, p.upper = lower, upper
        p.scale = scale[0] if scale else p.scale


def _check_values(model: OdeModel, bounds: Mapping[str, tuple], values: Mapping[str, float]) -> None:
    """Every starting value within its bounds; the error names the config key that set either."""
    for name, p in model.parameters.items():
        if p.lower <= p.value <= p.upper:
            continue
        if name in bounds:
            key = f"convert.bounds.{name}"
        elif name in values:
            key = f"values.{name}"
        elif name in PKPD_PARAMETERS:
            key = f"drug.parameters.{name}"
        else:
            key = f"convert.{name.split('_', 1)[0]}"  # tau, k or n, bounded by kind
        raise ConfigError(None, key=key, element=name, found=p.value,
                          expected=f"a value within the bounds [{format_float(p.lower)}, {format_float(p.upper)}]")


@dataclass
class _Drug:
    target: str
    name: str
    options: dict
    values: dict[str, float]
    estimate: set[str]


def _drug_options(drug: Mapping | None) -> _Drug | None:
    """The `drug` mapping (config section `drug:`) checked; None when it names no target."""
    if not drug or not drug.get("target"):
        return None
    for key in drug:
        if key not in DRUG_KEYS:
            raise ConfigError(None, key=f"drug.{key}", expected=f"one of the keys {list(DRUG_KEYS)}")
    target = str(drug["target"])
    name = str(drug.get("name") or "drug")
    if not _ID.match(name):
        raise ConfigError(None, key="drug.name", expected="a drug name [A-Za-z_][A-Za-z0-9_]*", found=name)
    effect, route = drug.get("effect", "inhibit"), drug.get("route", "oral")
    if effect not in EFFECTS:
        raise ConfigError(None, key="drug.effect", expected=f"one of {list(EFFECTS)}", found=effect)
    if route not in ROUTES:
        raise ConfigError(None, key="drug.route", expected=f"one of {list(ROUTES)}", found=route)
    compartments = drug.get("compartments", 1)
    if compartments not in (1, 2):
        raise ConfigError(None, key="drug.compartments", expected="1 or 2", found=compartments)
    interval = _number(drug.get("interval", 24.0), "drug.interval", positive=True)
    n_doses = drug.get("n_doses", 1)
    if not isinstance(n_doses, int) or isinstance(n_doses, bool) or n_doses < 1:
        raise ConfigError(None, key="drug.n_doses", expected="an integer ≥ 1", found=n_doses)
    duration = drug.get("infusion_duration")
    if route == "iv_infusion":
        duration = _number(duration, "drug.infusion_duration", positive=True)
    values = {}
    for parameter, value in (drug.get("parameters") or {}).items():
        if parameter not in PKPD_PARAMETERS:
            raise ConfigError(None, key=f"drug.parameters.{parameter}",
                              expected=f"a PK/PD parameter {list(PKPD_PARAMETERS)}")
        values[parameter] = _number(value, f"drug.parameters.{parameter}")
    estimate = drug.get("estimate")
    if estimate is None:
        estimate = [p for p, spec in PKPD_PARAMETERS.items() if spec[5]]
    for parameter in estimate:
        if parameter not in PKPD_PARAMETERS:
            raise ConfigError(None, key="drug.estimate", expected=f"PK/PD parameters {list(PKPD_PARAMETERS)}",
                              found=parameter)
    options = dict(effect=effect, route=route, compartments=compartments, interval=interval, n_doses=n_doses,
                   infusion_duration=duration, dose_parameter=f"dose_{name}")
    return _Drug(target, name, options, values, set(estimate))


def _read_study(measurements: str | os.PathLike[str] | pd.DataFrame,
                experiments: str | os.PathLike[str] | pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The tidy measurement table, the experiment table, and the name of the experiment file."""
    from qspflow.data import read_experiments, read_measurements  # loads matplotlib: only when data are given

    design = None
    if isinstance(measurements, pd.DataFrame):
        table = measurements
    else:
        table, design = read_measurements(measurements)
    if experiments is None:
        if design is None:
            raise DataError(None, key="experiments", expected="an experiment table for tidy measurements")
        return table, design, str(measurements)
    if isinstance(experiments, pd.DataFrame):
        return table, experiments, "experiment table"
    return table, read_experiments(experiments), str(experiments)


def _design_columns(net: BooleanNetwork, experiments: pd.DataFrame, source: str, drug: _Drug | None,
                    bnet: str) -> tuple[list[str], list[str]]:
    """The experiment-table columns the model can take, and the nodes to give inhibitors.

    Factors on nodes the network lacks (pruned by inference) are left out with a warning; a
    stimulus on a node that is not an input, or a dose of another drug, is an error.
    """
    keep, inhibited = ["experiment"], []
    inputs = set(net.inputs)
    for column in experiments.columns:
        kind, _, target = column.partition(":")
        if column == "experiment":
            continue
        if kind not in ("stimulus", "inhibitor", "dose") or not target:
            raise DataError(source, column=column, expected="factor columns stimulus:<node>, inhibitor:<node> or "
                            "dose:<drug>")
        if kind == "dose":
            if drug is None:
                raise ConfigError(None, key="drug.target", expected=f"a drug target: {source} has column '{column}'")
            if target != drug.name:
                raise ConfigError(None, key="drug.name", expected=f"'{target}' (the drug of column '{column}' "
                                  f"of {source})", found=drug.name)
        elif target not in net.nodes:
            log.warning("%s: column '%s' left out: node '%s' is not in network %s", source, column, target, bnet)
            continue
        elif kind == "stimulus" and target not in inputs:
            raise NetworkError(bnet, element=target, expected=f"an input node (rule '{target}, {target}') for "
                               f"column '{column}' of {source}")
        elif kind == "inhibitor":
            inhibited.append(target)
        keep.append(column)
    return keep, inhibited


def _model_name(path: Path) -> str:
    name = re.sub(r"\W", "_", path.stem)
    return name if valid_id(name) else f"model_{name}"


def convert_network(bnet_path: str | os.PathLike[str], *,
                    measurements: str | os.PathLike[str] | pd.DataFrame | None = None,
                    experiments: str | os.PathLike[str] | pd.DataFrame | None = None,
                    method: str = "normalized-hillcube", n: float = 3.0, k: float = 0.5, tau: float = 1.0,
                    bounds: Mapping[str, Sequence] | None = None, drug: Mapping | None = None,
                    observable_model: str = "direct", noise: str = "data",
                    values: Mapping[str, float] | None = None) -> ConvertedModel:
    """The `convert` step for one network: its ODE model and, with data, its PEtab problem.

    Builds the Odefy model of the `.bnet` (`method`, starting values `n`, `k`, `tau`, `bounds`
    by kind or parameter name as in `boolean_to_ode`, PK/PD parameters included), couples the
    drug of `drug` (the config's `drug:` section: `target` — none if empty —, `name` of its
    `dose:<name>` column, `effect`, `route`, `compartments`, `interval`, `n_doses`,
    `infusion_duration`, `parameters` (values), `estimate` (names of the PK/PD parameters to
    estimate; the others are fixed)), and gives every node inhibited in some experiment an
    `inh_<node>` (`add_inhibitors`). With `measurements` (a tidy table or MIDAS, path or frame)
    and `experiments`, it builds the PEtab tables (`qspflow.petab.build_problem`): readouts are
    the measured observables that are states of the model; `observable_model` and `noise` as
    there. Factors on nodes the network lacks are left out with a logged warning. `values`:
    starting values by parameter name (e.g. earlier estimates), over `n`, `k`, `tau` and the drug's.

    Raises `QspflowError` naming the file, config key or element at fault.
    """
    from qspflow.petab import build_problem

    path = Path(bnet_path)
    net = read_bnet(path)
    for node in net.nodes:
        if not valid_id(node):
            raise NetworkError(path, element=node, expected=f"a node name that is {ID_EXPECTED}")
    if method not in METHODS:
        raise ConfigError(None, key="convert.method", expected=f"one of {list(METHODS)}", found=method)
    kinetics = {kind: _number(v, f"convert.{kind}", positive=True) for kind, v in (("n", n), ("k", k), ("tau", tau))}
    checked_bounds = _checked_bounds(bounds)
    drug_options = _drug_options(drug)
    if drug_options and drug_options.target not in net.nodes:
        raise ConfigError(None, key="drug.target", expected=f"a node of network {path}", found=drug_options.target)
    if experiments is not None and measurements is None:
        raise DataError(None, key="measurements", expected="measurements together with the experiment table")

    try:
        model, formulas = _odefy(net, method=method, bounds=checked_bounds, **kinetics)
        if drug_options:
            model, formulas = _couple(model, formulas, target=drug_options.target, doses=None,
                                      **drug_options.options)
            for name, value in drug_options.values.items():
                if name in model.parameters:
                    model.parameters[name].value = value
            for name in PKPD_PARAMETERS:
                if name in model.parameters:
                    model.parameters[name].estimate = name in drug_options.estimate
    except ModelError as err:
        raise NetworkError(path, element=err.element, expected=err.expected, found=err.found,
                           message=err.detail) from None
    _apply_bounds(model, checked_bounds)
    for name, value in (values or {}).items():
        if name not in model.parameters:
            raise ConfigError(None, key=f"values.{name}", expected=f"a parameter of the model of {path}")
        model.parameters[name].value = _number(value, f"values.{name}")
    _check_values(model, checked_bounds, values or {})

    name = _model_name(path)
    title = METHOD_TITLES[method]
    drug_text = (f"; {drug_options.options['route']} {drug_options.name} "
                 f"({drug_options.options['compartments']}-compartment PK) acting on {drug_options.target}"
                 if drug_options else "")
    problem = None
    if measurements is not None:
        table, design, design_source = _read_study(measurements, experiments)
        columns, inhibited = _design_columns(net, design, design_source, drug_options, str(path))
        model, formulas = _inhibit(model, formulas, inhibited)
        observed = sorted(set(table["observable"].astype(str)))
        readouts = [o for o in observed if o in model.states]
        for left_out in sorted(set(observed) - set(readouts)):
            log.warning("observable '%s' left out: it is not a state of network %s", left_out, path)
        if not readouts:
            raise DataError(None, column="observable", expected=f"an observable that is a node of network {path}")
        problem = build_problem(model, table, design[columns], observables=readouts,
                                observable_model=observable_model, noise=noise, name=name)
    model.name = name
    description = f"{name}: Odefy {title} model of the Boolean network {path.name}{drug_text}."
    return ConvertedModel(name, str(path), net, model, formulas, description, problem)


def _replace(new: Path, target: Path) -> None:
    """Put `new` (file or folder) at `target` by renames; an existing folder is moved aside, then deleted."""
    if new.is_dir() and target.is_dir():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old)
    else:
        os.replace(new, target)


def write_converted(converted: ConvertedModel, out_dir: str | os.PathLike[str]) -> None:
    """Write `model.py`, `model.sbml`, `equations.md` and (with data) `petab/` into `out_dir`.

    Everything is rendered and the PEtab problem linted in a temporary folder beside `out_dir`
    first; only then is each file renamed into place, so a failure leaves earlier outputs as
    they were. Other files in `out_dir` are left alone.
    """
    from qspflow.petab import write_problem
    from qspflow.model.sbml import write_sbml

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model, formulas = converted.model, converted.formulas
        write_text(pysb_source(model, formulas, description=converted.description), staging / "model.py")
        write_sbml(model, staging / "model.sbml")
        write_text(equations_markdown(model, formulas, description=converted.description), staging / "equations.md")
        if converted.problem is not None:
            write_problem(converted.problem, model, staging / "petab")
        staging.chmod(0o755)  # mkdtemp makes it private; the outputs are ordinary files
        if not out.exists():
            os.replace(staging, out)
            return
        for entry in sorted(staging.iterdir()):
            _replace(entry, out / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_convert_cli(network: str | os.PathLike[str], out: str | os.PathLike[str], *, method: str | None = None,
                    measurements: str | os.PathLike[str] | None = None,
                    experiments: str | os.PathLike[str] | None = None,
                    config: str | os.PathLike[str] | None = None) -> ConvertedModel:
    """`qspflow convert`: convert one network and write its files into `out` as the rule does.

    `config`: a study configuration (YAML) whose `convert:` and `drug:` sections are used as in
    the workflow (absent keys take the defaults of `convert_network`); `method` overrides it.
    """
    options: dict = {}
    drug = None
    if config is not None:
        import yaml

        try:
            study = yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(config, expected="a YAML study configuration", message=str(exc)) from None
        options = dict(study.get("convert") or {})
        drug = study.get("drug")
        allowed = {"method", "n", "k", "tau", "bounds", "observable_model", "noise"}
        for key in options:
            if key not in allowed:
                raise ConfigError(config, key=f"convert.{key}", expected=f"one of the keys {sorted(allowed)}")
    if method is not None:
        options["method"] = method
    try:
        converted = convert_network(network, measurements=measurements, experiments=experiments, drug=drug,
                                    **options)
    except ConfigError as err:
        if config is None or err.source is not None:
            raise
        raise ConfigError(config, key=err.key, element=err.element, expected=err.expected, found=err.found,
                          message=err.detail) from None
    write_converted(converted, out)
    return converted

