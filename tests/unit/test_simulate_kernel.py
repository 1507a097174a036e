"""The integrators of `qspflow.simulate.kernel` run as plain Python on hand-written models.

Each test hands the integrators a `kernel.Model` of a small model's sizes and Python functions (the
names a generated module defines) and checks them against analytic solutions: no numba compilation,
so these lines are covered and a failure points into kernel.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from qspflow.model import OdeModel, Parameter, symbol
from qspflow.simulate import codegen, kernel

DECAY, INPUT_TIME = 0.7, 1.0  # y0' = -k·y0; y1' = -y1 + (1 after INPUT_TIME)
FAST, SLOW = 1000.0, 1.0  # y0' = -FAST·y0, y1' = FAST·y0 - SLOW·y1: stiff


def _model(n_states, rhs, jac, initial, n_parameters=1):
    """A model without events for the integrators: q = p, observables = the first state doubled."""

    def derive(p, q):
        q[:] = p

    def observe(t, y, q, out):
        out[0] = 2.0 * y[0]

    no_events = np.zeros(0, dtype=np.bool_)
    return kernel.Model(n_states=n_states, n_observables=1, n_derived=n_parameters, block=n_states,
                        n_error=n_states, n_events=0, n_instants=0, n_delayed=0, initial_value=no_events,
                        persistent=no_events, use_trigger_values=no_events, derive=derive, rhs=rhs, jac=jac,
                        initial=initial, observe=observe, instants=None, triggers=None, assign=None, apply=None,
                        priority=None, delay=None)


@pytest.fixture
def decay():
    def rhs(t, y, q, dy):
        dy[0] = -q[0] * y[0]
        dy[1] = -y[1] + (1.0 if t >= INPUT_TIME else 0.0)

    def jac(t, y, q, J, ft):
        J[:, :] = 0.0
        ft[:] = 0.0
        J[0, 0] = -q[0]
        J[1, 1] = -1.0

    def initial(p, y):
        y[0] = 1.0
        y[1] = 0.0

    return _model(2, rhs, jac, initial)


@pytest.fixture
def stiff():
    def rhs(t, y, q, dy):
        dy[0] = -q[0] * y[0]
        dy[1] = q[0] * y[0] - q[1] * y[1]

    def jac(t, y, q, J, ft):
        J[:, :] = 0.0
        ft[:] = 0.0
        J[0, 0] = -q[0]
        J[1, 0] = q[0]
        J[1, 1] = -q[1]

    def initial(p, y):
        y[0] = 1.0
        y[1] = 0.0

    return _model(2, rhs, jac, initial, n_parameters=2)


def _decay_exact(t: np.ndarray) -> np.ndarray:
    after = np.clip(t - INPUT_TIME, 0.0, None)
    return np.column_stack([np.exp(-DECAY * t), np.where(t >= INPUT_TIME, 1.0 - np.exp(-after), 0.0)])


def _stiff_exact(t: np.ndarray) -> np.ndarray:
    fast, slow = np.exp(-FAST * t), np.exp(-SLOW * t)
    return np.column_stack([fast, FAST / (FAST - SLOW) * (slow - fast)])


def _solve(m, params, times, stops, method, *, rtol=1e-10, atol=1e-12, states_out=True, max_steps=100_000):
    out = np.empty((times.size, m.n_states if states_out else m.n_observables))
    status, implicit = kernel._solve(m, np.array(params), times, np.array(stops), rtol, atol, method, states_out,
                                     max_steps, out)
    return status, implicit, out


@pytest.mark.parametrize("method", [kernel.EXPLICIT, kernel.AUTO, kernel.IMPLICIT])
def test_decay_and_a_switched_input_match_the_analytic_solution(decay, method):
    times = np.linspace(0.0, 4.0, 17)
    status, implicit, out = _solve(decay, [DECAY], times, [INPUT_TIME, 4.0], method)
    assert status == kernel.OK and implicit == (method == kernel.IMPLICIT)
    assert np.abs(out - _decay_exact(times)).max() < 1e-10
    assert (out[times <= INPUT_TIME, 1] == 0.0).all()  # no step straddled the switch


def test_observables_come_from_observe(decay):
    times = np.array([0.0, 0.5, 2.0])
    status, _, out = _solve(decay, [DECAY], times, [INPUT_TIME, 2.0], kernel.EXPLICIT, states_out=False)
    assert status == kernel.OK and out.shape == (3, 1)
    assert np.abs(out[:, 0] - 2.0 * np.exp(-DECAY * times)).max() < 1e-8


@pytest.mark.parametrize("method", [kernel.AUTO, kernel.IMPLICIT])
def test_a_stiff_linear_system_is_finished_by_rodas_and_matches_the_analytic_solution(stiff, method):
    times = np.array([0.0, 1e-3, 1e-2, 0.1, 1.0, 5.0, 10.0])
    status, implicit, out = _solve(stiff, [FAST, SLOW], times, [10.0], method, rtol=1e-8, atol=1e-10)
    assert status == kernel.OK and implicit
    assert np.abs(out - _stiff_exact(times)).max() < 1e-8


def test_the_explicit_method_on_the_stiff_system_needs_many_more_steps(stiff):
    times = np.array([0.0, 10.0])
    status, implicit, out = _solve(stiff, [FAST, SLOW], times, [10.0], kernel.EXPLICIT, rtol=1e-6, atol=1e-8,
                                   max_steps=500)
    assert status == kernel.MAX_STEPS and not implicit and np.isnan(out).all()
    assert _solve(stiff, [FAST, SLOW], times, [10.0], kernel.IMPLICIT, rtol=1e-6, atol=1e-8, max_steps=500)[0] == kernel.OK


def test_non_finite_values_and_blow_up_are_reported():
    def rhs(t, y, q, dy):
        dy[0] = q[0] * y[0] * y[0]  # y = 1/(1 - q t): infinite at t = 1/q

    def jac(t, y, q, J, ft):
        J[0, 0] = 2.0 * q[0] * y[0]
        ft[0] = 0.0

    def initial(p, y):
        y[0] = 1.0 if p[0] >= 0 else math.nan

    model = _model(1, rhs, jac, initial)
    times = np.linspace(0.0, 2.0, 5)
    assert _solve(model, [0.5], times, [2.0], kernel.AUTO, rtol=1e-6, atol=1e-8)[0] == kernel.OK
    for method in (kernel.EXPLICIT, kernel.IMPLICIT):
        status, _, out = _solve(model, [1.0], times, [2.0], method, rtol=1e-6, atol=1e-8)
        assert status == kernel.UNDERFLOW and np.isnan(out).all()
    assert _solve(model, [-1.0], times, [2.0], kernel.AUTO)[0] == kernel.NON_FINITE


def test_lu_solves_a_system_that_needs_pivoting():
    a = np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    x = np.array([1.0, 2.0, 3.0])
    lu, piv = a.copy(), np.empty(3, dtype=np.int64)
    assert kernel._lu(lu, piv)
    b = x.copy()
    kernel._lu_solve(lu, piv, b)
    assert np.allclose(a @ b, x, rtol=0, atol=1e-14)
    assert not kernel._lu(np.zeros((2, 2)), np.empty(2, dtype=np.int64))


def test_a_batch_is_every_set_solved_on_its_own(decay, monkeypatch):
    def claim(counter, amount):  # the atomic add, in Python
        previous = int(counter[0])
        counter[0] += amount
        return previous

    monkeypatch.setattr(kernel, "_claim", claim)
    params = np.array([[0.2], [0.7], [1.5]])
    times, stops = np.linspace(0.0, 3.0, 7), np.array([INPUT_TIME, 3.0])
    values = np.empty((3, times.size, 2))
    status, stiff = np.empty(3, dtype=np.int8), np.empty(3, dtype=np.bool_)
    kernel.solve_batch(decay, params, times, stops, 1e-9, 1e-11, kernel.AUTO, True, 100_000, values, status, stiff,
                       np.zeros(1, dtype=np.intp), 2)
    assert status.tolist() == [kernel.OK] * 3 and not stiff.any()
    for i, (k,) in enumerate(params):
        assert np.abs(values[i, :, 0] - np.exp(-k * times)).max() < 1e-8


def test_the_cached_copy_keeps_kernel_lines_where_kernel_py_has_them():
    lines = (Path(kernel.__file__)).read_text().splitlines()
    copy = codegen.kernel_source().splitlines()
    begin = next(i for i, line in enumerate(lines) if line.startswith(codegen.JIT_BEGIN))
    end = next(i for i, line in enumerate(lines) if line.startswith(codegen.JIT_END))
    assert len(copy) == len(lines) and copy[:begin] == lines[:begin] and copy[end:] == lines[end:]
    assert copy[begin].startswith(codegen.JIT_BEGIN)
    assert "    return njit(cache=True, error_model=\"numpy\", **options)" in copy[begin:end]


def test_a_model_module_defines_what_the_integrators_take():
    x, k = symbol("x"), symbol("k")
    model = OdeModel("decay", ["x"], {"k": Parameter("k", 0.5)}, {"x": -k * x}, {"x": symbol("k")})
    source = codegen.generate(model, ["k"]).source
    for name, signature in kernel.SIGNATURES.items():
        assert f'@cfunc("{signature}", cache=True, error_model="numpy")\ndef {name}(' in source
    for name in kernel.Model._fields:
        if name not in kernel.SIGNATURES:
            assert f"\n{name.upper()} = " in source


def test_an_infinite_jacobian_entry_is_zeroed_and_rodas_goes_on():
    # s' = √g with g = t: ds'/dg is infinite at t = 0; s = 2/3·t^1.5.
    def rhs(t, y, q, dy):
        dy[0] = 1.0
        dy[1] = math.sqrt(abs(y[0]))

    def jac(t, y, q, J, ft):
        J[:, :] = 0.0
        ft[:] = 0.0
        J[1, 0] = math.copysign(0.5, y[0]) / math.sqrt(abs(y[0])) if y[0] != 0.0 else math.inf

    def initial(p, y):
        y[:] = 0.0

    model = _model(2, rhs, jac, initial)
    times = np.linspace(0.0, 2.0, 5)
    status, implicit, out = _solve(model, [0.0], times, [2.0], kernel.IMPLICIT, rtol=1e-9, atol=1e-11)
    assert status == kernel.OK and implicit
    assert np.abs(out[:, 1] - 2.0 / 3.0 * times**1.5).max() < 1e-8
