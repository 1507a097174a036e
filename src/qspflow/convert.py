"""Boolean network → ODE model (Odefy), and a drug's PK/PD coupled to one node.

`boolean_to_ode` follows Odefy (Krumsiek et al. 2010): a node's production B is the
multilinear interpolation of its Boolean function (BooleCube) over its regulators' values,
optionally passed through Hill functions (HillCube, normalized HillCube), and
dx/dt = (B − x)/tau. `couple_pkpd` adds a one- or two-compartment PK model whose
concentration scales the production of one node (Emax inhibition or activation). Dose inputs
are written with `Piecewise` in time, so the model needs no events and
`OdeModel.breakpoints()` finds every dose time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sympy

from qspflow.boolean import BooleanNetwork, truth_table
from qspflow.errors import ModelError
from qspflow.model import TIME, OdeModel, Parameter

METHODS = ("boolecube", "hillcube", "normalized-hillcube")
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
CONCENTRATION = "C_drug"


def _symbol(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


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


def boolean_to_ode(net: BooleanNetwork, *, method: str = "normalized-hillcube", n: float = 3.0, k: float = 0.5,
                   tau: float = 1.0, bounds: Mapping[str, Sequence] | None = None) -> OdeModel:
    """The Odefy ODE model of `net`: dx/dt = (B(x) − x)/tau_x per node.

    `method`: "boolecube" (B multilinear in the regulators' values), "hillcube" (each
    regulator value x replaced by f(x) = |x|ⁿ/(|x|ⁿ+kⁿ), Odefy's xⁿ/(xⁿ+kⁿ) for x ≥ 0) or
    "normalized-hillcube" (f(x)·(1+kⁿ), so f(1) = 1). Parameters: `tau_<node>`, and per edge `k_<source>_<target>`,
    `n_<source>_<target>` (HillCubes), with `bounds` given as (lower, upper[, scale]) by
    parameter name or by kind ("tau", "k", "n"). Input nodes (rule = the node itself) keep
    their initial value, the parameter `input_<node>` (0 by default, set by conditions);
    other nodes start at 0.
    """
    if method not in METHODS:
        raise ModelError(None, element="method", expected=f"one of {list(METHODS)}", found=method)
    parameters: dict[str, Parameter] = {}
    rhs: dict[str, sympy.Expr] = {}
    initial: dict[str, sympy.Expr] = {}
    inputs = set(net.inputs)
    for node in net.nodes:
        x = _symbol(node)
        if node in inputs:
            name = f"input_{node}"
            parameters[name] = Parameter(name, 0.0, 0.0, 1.0, "lin", estimate=False)
            rhs[node] = sympy.Integer(0)
            initial[node] = _symbol(name)
            continue
        regulators = net.regulators(node)
        values = []
        for source in regulators:
            xs = _symbol(source)
            if method == "boolecube":
                values.append(xs)
                continue
            kn, nn = f"k_{source}_{node}", f"n_{source}_{node}"
            if kn in parameters:  # e.g. nodes a_b, c and a, b_c
                raise ModelError(None, element=kn, expected="node names that give distinct edge parameters")
            parameters[kn] = _parameter(kn, k, "k", bounds)
            parameters[nn] = _parameter(nn, n, "n", bounds)
            ks, ns = _symbol(kn), _symbol(nn)
            # |x| = x on every exact solution (x ≥ 0); it keeps a fractional xⁿ real when an
            # integrator's stage values dip below 0 near x = 0, within the absolute tolerance.
            hill = sympy.Abs(xs) ** ns / (sympy.Abs(xs) ** ns + ks**ns)
            values.append(hill * (1 + ks**ns) if method == "normalized-hillcube" else hill)
        production = _cube(truth_table(net.rules[node], regulators), values)
        tn = f"tau_{node}"
        parameters[tn] = _parameter(tn, tau, "tau", bounds, unit="h")
        rhs[node] = (production - x) / _symbol(tn)
        initial[node] = sympy.Integer(0)
    model = OdeModel(method, list(net.nodes), parameters, rhs, initial)
    model.validate()
    return model


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


def couple_pkpd(model: OdeModel, *, target: str, effect: str = "inhibit", compartments: int = 1,
                route: str = "oral", doses: Sequence[tuple[float, float]] | None = None,
                dose_parameter: str | None = None, interval: float | None = None, n_doses: int | None = None,
                infusion_duration: float | None = None) -> OdeModel:
    """`model` (from `boolean_to_ode`) with a drug's PK driving the production of `target`.

    Doses: `doses` as (time h, amount mg) pairs, or `n_doses` doses every `interval` h from 0
    whose amount is the parameter `dose_parameter` (default `dose_drug`, 0 until a condition
    sets it). PK amounts in mg, parameters pk_ka, pk_cl, pk_vc, pk_q, pk_vp, pk_f; observable
    `C_drug` = A_c/pk_vc (mg/L).

    - oral: the gut depot is solved analytically: input ka·F·D·exp(−ka(t − t_k)) from t_k.
    - iv_infusion: input D/T on [t_k, t_k + T), T = `infusion_duration`.
    - iv_bolus: the central amount jumps by D at t_k, which an ODE cannot express. The state is
      instead `A_out`, the net amount that has left the central compartment (eliminated or
      distributed), which is continuous; A_c = Σ D_k·[t ≥ t_k] − A_out is an expression.

    Effect on the production B of `target` (its rhs must be (B − x)/tau_target), with
    E = pd_emax·|C|ʰ/(pd_ec50ʰ + |C|ʰ), h = pd_hill: inhibit B·(1 − E);
    activate B + (1 − B)·E.
    """
    if target not in model.states or f"tau_{target}" not in model.parameters:
        raise ModelError(None, element=target, expected="a node of a boolean_to_ode model (state with tau_<node>)")
    if effect not in ("inhibit", "activate"):
        raise ModelError(None, element="effect", expected="'inhibit' or 'activate'", found=effect)
    if compartments not in (1, 2):
        raise ModelError(None, element="compartments", expected="1 or 2", found=compartments)
    if route not in ROUTES:
        raise ModelError(None, element="route", expected=f"one of {list(ROUTES)}", found=route)
    if route == "iv_infusion" and not (infusion_duration and infusion_duration > 0):
        raise ModelError(None, element="infusion_duration", expected="a duration > 0 for an infusion",
                         found=infusion_duration)
    clash = {"A_c", "A_p", "A_out", CONCENTRATION} & (set(model.states) | set(model.observables))
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

    rhs = dict(model.rhs)
    initial = dict(model.initial)
    a_p = _symbol("A_p")
    if route == "iv_bolus":
        a_out = _symbol("A_out")
        a_c = sum((sympy.Piecewise((d, _step(t)), (0, True)) for t, d in schedule), sympy.Integer(0)) - a_out
        central = ["A_out"]
    else:
        a_c = _symbol("A_c")
        central = ["A_c"]
        if route == "oral":
            inflow = sum((sympy.Piecewise((ka * bio * d * sympy.exp(-ka * (TIME - t)), _step(t)), (0, True))
                          for t, d in schedule), sympy.Integer(0))
        else:
            span = float(infusion_duration)
            inflow = sum((sympy.Piecewise((d / span, _step(t) & (TIME < sympy.Float(t + span))), (0, True))
                          for t, d in schedule), sympy.Integer(0))
    outflow = cl / vc * a_c + ((q / vc * a_c - q / vp * a_p) if compartments == 2 else 0)
    rhs[central[0]] = outflow if route == "iv_bolus" else inflow - outflow
    initial[central[0]] = sympy.Integer(0)
    if compartments == 2:
        rhs["A_p"] = q / vc * a_c - q / vp * a_p
        initial["A_p"] = sympy.Integer(0)
        central.append("A_p")

    concentration = a_c / vc
    # |C| equals C on every exact solution (C ≥ 0) and keeps Cʰ real when round-off makes C
    # slightly negative; unlike a Piecewise clip it does not slow down event-aware solvers.
    ch = sympy.Abs(concentration) ** _symbol("pd_hill")
    drug_effect = _symbol("pd_emax") * ch / (_symbol("pd_ec50") ** _symbol("pd_hill") + ch)
    x, tau = _symbol(target), _symbol(f"tau_{target}")
    production = rhs[target] * tau + x  # exact: rhs = (B − x)/tau, so sympy cancels to B
    production = production * (1 - drug_effect) if effect == "inhibit" else production + (1 - production) * drug_effect
    rhs[target] = (production - x) / tau

    coupled = OdeModel(f"{model.name}_pkpd", list(model.states) + central, parameters, rhs, initial,
                       {**model.observables, CONCENTRATION: concentration})
    coupled.validate()
    return coupled
