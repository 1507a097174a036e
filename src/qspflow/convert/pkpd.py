"""A drug's PK/PD coupled to an Odefy model: one- or two-compartment PK whose concentration scales
the production of one node (Emax inhibition or activation).

Dose inputs are written with `Piecewise` in time, so the model needs no events and
`OdeModel.breakpoints()` finds every dose time. The model's expressions gain `drug_input` (oral
and infusion), `A_c` (iv bolus) and `drug_effect`; `C_drug` is an observable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sympy

from qspflow.convert.odefy import production
from qspflow.convert.options import EFFECTS, PK_STATES, PKPD_PARAMETERS, ROUTES, pk_states, pkpd_names
from qspflow.errors import ModelError
from qspflow.model import TIME, OdeModel, Parameter, symbol
from qspflow.model.formulas import Formulas, realize

CONCENTRATION = "C_drug"
DRUG_INPUT = "drug_input"
DRUG_EFFECT = "drug_effect"
# Names the PK/PD takes in the model: no node, parameter or quantity of the network's may have one.
PK_NAMES = (*PK_STATES, CONCENTRATION, DRUG_INPUT, DRUG_EFFECT)


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
    return [(k * float(interval), symbol(name)) for k in range(int(n_doses))], amount


def _with_effect(production: sympy.Expr, effect_value: sympy.Expr, effect: str) -> sympy.Expr:
    return production * (1 - effect_value) if effect == "inhibit" else production + (1 - production) * effect_value


def pkpd_formulas(model: OdeModel, formulas: Formulas, *, target: str, effect: str, compartments: int,
                  route: str, doses: Sequence[tuple[float, float]] | None, dose_parameter: str | None,
                  interval: float | None, n_doses: int | None,
                  infusion_duration: float | None) -> tuple[OdeModel, Formulas]:
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
    formulas = formulas.copy()
    made = production(model, formulas, target)
    clash = set(PK_NAMES) & (set(model.states) | set(model.parameters) | set(formulas.quantities))
    if clash:
        raise ModelError(None, element=model.name, expected="no PK names among the states", found=sorted(clash))
    schedule, amount = _schedule(doses, dose_parameter, interval, n_doses)

    parameters = dict(model.parameters)
    for name in pkpd_names(route, compartments):
        value, lower, upper, scale, unit, estimate = PKPD_PARAMETERS[name]
        parameters[name] = Parameter(name, value, lower, upper, scale, estimate, unit)
    if amount is not None:
        parameters[amount.name] = amount
    ka, cl, vc, q, vp, bio = (symbol(n) for n in ("pk_ka", "pk_cl", "pk_vc", "pk_q", "pk_vp", "pk_f"))

    quantities, rates = formulas.quantities, formulas.rates
    initial = dict(model.initial)
    a_c, a_p, c = symbol("A_c"), symbol("A_p"), symbol(CONCENTRATION)
    if route == "iv_bolus":
        # The central amount jumps by D at t_k, which an ODE cannot express: the state is A_out,
        # the (continuous) amount that has left the central compartment, and A_c an expression.
        quantities["A_c"] = sum((sympy.Piecewise((d, _step(t)), (0, True)) for t, d in schedule),
                                sympy.Integer(0)) - symbol("A_out")
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
    rates[central] = outflow if route == "iv_bolus" else symbol(DRUG_INPUT) - outflow
    initial[central] = sympy.Integer(0)
    states = [*model.states, *pk_states(route, compartments)]
    if compartments == 2:
        rates["A_p"] = distribution
        initial["A_p"] = sympy.Integer(0)

    # |C| equals C on every exact solution (C ≥ 0) and keeps Cʰ real when round-off makes C
    # slightly negative; unlike a Piecewise clip it does not slow down event-aware solvers.
    ch = sympy.Abs(c) ** symbol("pd_hill")
    quantities[DRUG_EFFECT] = symbol("pd_emax") * ch / (symbol("pd_ec50") ** symbol("pd_hill") + ch)
    quantities[made] = _with_effect(quantities[made], symbol(DRUG_EFFECT), effect)
    coupled = realize(f"{model.name}_pkpd", states, parameters, initial, formulas,
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
    return pkpd_formulas(model, Formulas.of(model), target=target, effect=effect, compartments=compartments,
                         route=route, doses=doses, dose_parameter=dose_parameter, interval=interval,
                         n_doses=n_doses, infusion_duration=infusion_duration)[0]
