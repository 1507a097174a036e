"""Forward sensitivities: dx/dp integrated with the states by the same compiled kernels.

`sensitivity_model` extends an `OdeModel` by the sensitivity equations
    ds_k/dt = (∂f/∂x) s_k + ∂f/∂p_k,   s_k(0) = ∂x(0)/∂p_k
for each varying parameter p_k (the simultaneous-corrector form of CVODES: one system, one error
control over states and sensitivities, the analytic Jacobian of the whole system for Rodas4).
`compile_sensitivities` compiles it like any model, so the integrators, the content-hash cache and
the threaded batches are the ones `simulate` uses (the code generator loops over the blocks,
which it checks have this form: `qspflow.simulate.codegen`). Breakpoints are the model's: a discontinuity
at a fixed time needs no jump in s; one at a parameter-dependent time is not supported here.

An event x⁺ = g(x⁻, p, τ) at time τ makes the sensitivities jump too: the extended model's events
are the model's with the assignments
    s_k⁺ = g_x s_k⁻ + ∂g/∂p_k + (g_x f⁻ + g_t − f⁺) ∂τ/∂p_k
to every sensitivity state (g is the identity on the states the event leaves; f⁻, f⁺ the right-hand
sides before and after). ∂τ/∂p_k is 0 at an instant that does not depend on p_k, ∂c/∂p_k for a
trigger `time ≥ c(p)`, and −(h_x s_k + h_p)/(h_x f⁻ + h_t) where a single condition h = lhs − rhs
on the states changes sign; a trigger that combines several conditions and moves with p is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sympy

import qspflow.model
from qspflow.errors import ModelError
from qspflow.model import (
    TIME,
    Event,
    OdeModel,
    Parameter,
    derivative,
    jacobian_entry,
    symbol,
    trigger_relations,
    unique_name,
)
from qspflow.simulate.compile import CompiledModel, compile_built, inputs_digest

LOG_FLOOR = sympy.Float(1e-300)


def sensitivity_model(model: OdeModel, wrt: Sequence[str]) -> tuple[OdeModel, list[list[str]]]:
    """`model` with the sensitivity states of every state to every parameter in `wrt`.

    Returns the extended model (the states first, in order, then the sensitivities parameter by
    parameter) and the sensitivity state names, `names[k][i]` = d state i / d wrt[k].
    """
    unknown = [name for name in wrt if name not in model.parameters]
    if unknown:
        raise ModelError(None, element=model.name, expected="parameters of the model", found=", ".join(unknown))
    x = [model.symbol(s) for s in model.states]
    rhs = [sympy.sympify(model.rhs[s]) for s in model.states]
    initial = [sympy.sympify(model.initial[s]) for s in model.states]
    # Finite at x = 0 (`jacobian_entry`), as the simulator's own Jacobian: (∂f/∂x)·s is then 0, not
    # inf·0, where a state is 0 with no sensitivity (an absent drug under a Hill coefficient < 1).
    jacobian = [[jacobian_entry(f, xj, frozenset(x)) for xj in x] for f in rhs]
    taken = set(model.states) | set(model.parameters) | set(model.observables) | set(model.expressions)
    names = [[unique_name(f"s_{state}_{p}", taken) for state in model.states] for p in wrt]
    new_rhs = dict(model.rhs)
    new_initial = dict(model.initial)
    for p, column in zip(wrt, names):
        s = [symbol(name) for name in column]
        theta = model.symbol(p)
        for i, name in enumerate(column):
            new_rhs[name] = sum((jacobian[i][j] * s[j] for j in range(len(x)) if jacobian[i][j] != 0),
                                sympy.Integer(0)) + derivative(rhs[i], theta)
            new_initial[name] = derivative(initial[i], theta)
    # d(xⁿ)/dn = xⁿ·log x is 0·(−∞) at x = 0, where its limit is 0: log(x + 1e-300) gives that 0,
    # and differs from log x by less than rounding anywhere else.
    for name in (n for column in names for n in column):
        new_rhs[name] = new_rhs[name].replace(sympy.log, lambda a: sympy.log(a + LOG_FLOOR))
    parameters = {n: Parameter(n, p.value) for n, p in model.parameters.items()}
    states = list(model.states) + [name for column in names for name in column]
    sensitivities = [[symbol(name) for name in column] for column in names]
    events = [_event_with_sensitivities(model, e, wrt, sensitivities) for e in model.events]
    return OdeModel(f"{model.name}_sensitivities", states, parameters, new_rhs, new_initial,
                    expressions=dict(model.expressions), events=events), names


def _event_with_sensitivities(model: OdeModel, event: Event, wrt: Sequence[str],
                              sensitivities: Sequence[Sequence[sympy.Symbol]]) -> Event:
    """`event` with the jumps of the sensitivity states (module docstring) among its assignments."""
    x = model.state_symbols
    f = [sympy.sympify(model.rhs[s]) for s in model.states]
    g = [sympy.sympify(event.assignments.get(s, xi)) for s, xi in zip(model.states, x)]
    after = {xi: gi for xi, gi in zip(x, g) if gi != xi}
    f_after = [fi.xreplace(after) for fi in f]
    relations = trigger_relations(event.trigger, x)
    assignments = dict(event.assignments)
    for p, s in zip(wrt, sensitivities):
        theta = symbol(p)
        tau = _time_derivative(event, relations, x, f, s, theta)
        for i, name in enumerate(s):
            jump = sum((derivative(g[i], xj) * sj for xj, sj in zip(x, s)), sympy.Integer(0)) + derivative(g[i], theta)
            if tau != 0:
                slope = sum((derivative(g[i], xj) * fj for xj, fj in zip(x, f)), sympy.Integer(0))
                jump += (slope + derivative(g[i], TIME) - f_after[i]) * tau
            if jump != name:
                assignments[name.name] = jump
    return dataclasses.replace(event, assignments=assignments)


def _time_derivative(event: Event, relations, x: Sequence[sympy.Symbol], f: Sequence[sympy.Expr],
                     s: Sequence[sympy.Symbol], theta: sympy.Symbol) -> sympy.Expr:
    """∂τ/∂θ of the event's time τ (module docstring)."""
    moving = [c for _, c in relations.times if theta in c.free_symbols]
    if event.delay is not None and (relations.states or moving or theta in sympy.sympify(event.delay).free_symbols):
        raise ModelError(None, element=event.id, expected=f"a delayed event whose time does not move with '{theta}'",
                         message="sensitivities through the time of a delayed event are not supported")
    if not relations.states and not moving:
        return sympy.Integer(0)
    if len(relations.times) + len(relations.states) > 1:
        raise ModelError(None, element=event.id, expected="a trigger of one condition, or one that does not "
                                                          f"move with the parameter '{theta}'",
                         message="sensitivities through the time of an event whose trigger combines several "
                                 "conditions are not supported")
    if moving:
        return derivative(moving[0], theta)
    relation = relations.states[0]
    h = relation.lhs - relation.rhs
    rate = sum((derivative(h, xj) * fj for xj, fj in zip(x, f)), derivative(h, TIME))
    return -(sum((derivative(h, xj) * sj for xj, sj in zip(x, s)), derivative(h, theta))) / rate


@dataclass
class SensitivityResult:
    """`states[i, j]`: the states of set i at time j; `sensitivities[i, j, :, k]` their derivative
    by parameter k of `wrt`; `status` and `stiff` as `SimulationResult`'s (0: ok; NaN values otherwise)."""

    states: np.ndarray
    sensitivities: np.ndarray
    status: np.ndarray
    stiff: np.ndarray


class CompiledSensitivities:
    """A model and its sensitivities to every varying parameter, compiled (see `compile_sensitivities`)."""

    def __init__(self, compiled: CompiledModel, n_states: int, wrt: Sequence[str]) -> None:
        self.compiled = compiled
        self.n_states = n_states
        self.varying = compiled.varying
        self.wrt = tuple(wrt)

    def simulate(self, params: np.ndarray, times: np.ndarray, *, rtol: float = 1e-8, atol: float = 1e-10,
                 method: str = "auto", threads: int | None = None, max_steps: int = 100_000,
                 breakpoints: Sequence[float] = ()) -> SensitivityResult:
        """States and their sensitivities to `wrt` of each row of `params` (values of `varying`) at `times`
        (`breakpoints`: as `CompiledModel.simulate`'s)."""
        result = self.compiled.simulate(params, times, rtol=rtol, atol=atol, method=method, threads=threads,
                                        what="states", max_steps=max_steps, breakpoints=breakpoints)
        n, p = self.n_states, len(self.wrt)
        values = result.values
        sensitivities = values[:, :, n:].reshape(values.shape[0], values.shape[1], p, n).transpose(0, 1, 3, 2)
        return SensitivityResult(values[:, :, :n], sensitivities, result.status, result.stiff)


def compile_sensitivities(model: OdeModel, *, varying: Sequence[str], wrt: Sequence[str] | None = None,
                          error_control: bool = True, cache_dir: str | Path | None = None) -> CompiledSensitivities:
    """Compile `model` extended by its sensitivities to `wrt` (default: all of `varying`), simulated
    for sets of `varying` (every other parameter folded in). `error_control`: the step size control
    sees the sensitivities too (CVODES's errconS), or only the states: then a step costs no more
    than the states need, and the sensitivities are as accurate as those steps make them."""
    wrt = list(varying if wrt is None else wrt)
    outside = [name for name in wrt if name not in varying]
    if outside:
        raise ModelError(None, element=model.name, expected="sensitivities to varying parameters",
                         found=", ".join(outside))
    n = len(model.states)
    # The extended model follows from the model, wrt, this module and the derivatives qspflow.model takes:
    # a key under which the cache finds its module without building it.
    inputs = hashlib.sha256("\n".join([inputs_digest(model, varying), repr(wrt), repr(error_control),
                                       inspect.getsource(sys.modules[__name__]), inspect.getsource(qspflow.model)])
                            .encode()).hexdigest()
    compiled = compile_built(lambda: sensitivity_model(model, wrt)[0], inputs, varying=varying, cache_dir=cache_dir,
                             block=n, error_states=None if error_control else n)
    return CompiledSensitivities(compiled, n, wrt)
