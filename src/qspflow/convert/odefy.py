"""Odefy (Krumsiek et al. 2010): a Boolean network as ODEs, and inhibitors on its nodes.

A node's production B is the multilinear interpolation of its Boolean function (BooleCube)
over its regulators' values, optionally passed through Hill functions (HillCube, normalized
HillCube), and dx/dt = (B − x)/tau. `add_inhibitors` multiplies the production of inhibited
nodes by (1 − inh_<node>). The `…_formulas` functions also return the model's `Formulas`
(`production_Akt = hill_PI3K_Akt`, not the Hill function spelled out), which the readable
model files are written from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sympy

from qspflow.boolean import BooleanNetwork, truth_table
from qspflow.convert.options import DEFAULT_BOUNDS, METHODS
from qspflow.errors import ModelError
from qspflow.model import OdeModel, Parameter, symbol
from qspflow.model.formulas import Formulas, realize


def _relaxes(rhs: sympy.Expr, production: sympy.Expr, x: sympy.Symbol, tau: sympy.Symbol) -> bool:
    """Whether rhs = (production − x)/tau, the Odefy form (structurally, else after simplification)."""
    difference = sympy.sympify(rhs) * tau + x - production
    return difference == 0 or sympy.simplify(difference) == 0


def production(model: OdeModel, formulas: Formulas, node: str) -> str:
    """The name of `node`'s production quantity, added to `formulas` from its rhs if the model has none.

    The node must relax as dx/dt = (B − x)/tau_<node>; its rate becomes (production − x)/tau.
    """
    name, tau = f"production_{node}", f"tau_{node}"
    x = symbol(node)
    if node not in model.states or tau not in model.parameters:
        raise ModelError(None, element=node, expected="a node of a boolean_to_ode model (state with tau_<node>)")
    if name in formulas.quantities:
        if not _relaxes(model.rhs[node], model.expressions.get(name, formulas.substituted(symbol(name))),
                        x, symbol(tau)):
            raise ModelError(None, element=node, expected=f"dx/dt = ({name} − {node})/{tau}")
    else:
        formulas.quantities[name] = sympy.sympify(model.rhs[node]) * symbol(tau) + x  # exact: sympy cancels to B
    formulas.rates[node] = (symbol(name) - x) / symbol(tau)
    return name


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


def odefy_formulas(net: BooleanNetwork, *, method: str, n: float, k: float, tau: float,
                   bounds: Mapping[str, Sequence] | None) -> tuple[OdeModel, Formulas]:
    """`boolean_to_ode` with its formulas."""
    if method not in METHODS:
        raise ModelError(None, element="method", expected=f"one of {list(METHODS)}", found=method)
    parameters: dict[str, Parameter] = {}
    formulas = Formulas({}, {})
    initial: dict[str, sympy.Expr] = {}
    inputs = set(net.inputs)
    for node in net.nodes:
        x = symbol(node)
        if node in inputs:
            name = f"input_{node}"
            parameters[name] = Parameter(name, 0.0, 0.0, 1.0, "lin", estimate=False)
            formulas.rates[node] = sympy.Integer(0)
            initial[node] = symbol(name)
            continue
        regulators = net.regulators(node)
        values = []
        for source in regulators:
            if method == "boolecube":
                values.append(symbol(source))
                continue
            kn, nn, hn = f"k_{source}_{node}", f"n_{source}_{node}", f"hill_{source}_{node}"
            if kn in parameters:  # e.g. nodes a_b, c and a, b_c
                raise ModelError(None, element=kn, expected="node names that give distinct edge parameters")
            parameters[kn] = _parameter(kn, k, "k", bounds)
            parameters[nn] = _parameter(nn, n, "n", bounds)
            formulas.quantities[hn] = _hill(symbol(source), symbol(kn), symbol(nn), method == "normalized-hillcube")
            values.append(symbol(hn))
        made = f"production_{node}"
        formulas.quantities[made] = _cube(truth_table(net.rules[node], regulators), values)
        tn = f"tau_{node}"
        parameters[tn] = _parameter(tn, tau, "tau", bounds, unit="h")
        formulas.rates[node] = (symbol(made) - x) / symbol(tn)
        initial[node] = sympy.Integer(0)
    return realize(method, net.nodes, parameters, initial, formulas, ()), formulas


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
    return odefy_formulas(net, method=method, n=n, k=k, tau=tau, bounds=bounds)[0]


# ----------------------------------------------------------------------------------- inhibitors


def inhibitor_formulas(model: OdeModel, formulas: Formulas, nodes: Sequence[str]) -> tuple[OdeModel, Formulas]:
    """`add_inhibitors` with formulas: those of `model` with the inhibited productions."""
    formulas = formulas.copy()
    parameters, initial = dict(model.parameters), dict(model.initial)
    for node in dict.fromkeys(nodes):
        name = f"inh_{node}"
        if node not in model.states:
            raise ModelError(None, element=node, expected=f"a state of model '{model.name}' to inhibit")
        if name in parameters:
            raise ModelError(None, element=name, expected="a node inhibited once")
        parameters[name] = Parameter(name, 0.0, 0.0, 1.0, "lin", estimate=False)
        off = 1 - symbol(name)
        if sympy.sympify(model.rhs[node]) == 0:  # an input: its value is its production
            initial[node] = sympy.sympify(model.initial[node]) * off
            continue
        made = production(model, formulas, node)
        formulas.quantities[made] = formulas.quantities[made] * off
    observables = set(model.observables)
    return realize(model.name, model.states, parameters, initial, formulas, observables), formulas


def add_inhibitors(model: OdeModel, nodes: Sequence[str]) -> OdeModel:
    """`model` with each node of `nodes` switchable off by a 0/1 parameter `inh_<node>`.

    The production B of a node (rhs (B − x)/tau_<node>) becomes B·(1 − inh_<node>); an input
    node's value becomes input·(1 − inh_<node>). `inh_<node>` is 0 (no inhibitor) in [0, 1],
    not estimated: an experiment's `inhibitor:<node>` column sets it. A node that is not a
    state raises `ModelError`.
    """
    return inhibitor_formulas(model, Formulas.of(model), nodes)[0]
