"""Forward sensitivities, the likelihood's gradient and Fisher information, and single shooting:
against the analytic solution of first-order decay, central finite differences of the compiled
simulator at tight tolerances (Boehm_JProteomeRes2014, a preequilibrated problem of the collection),
and the published optimum of Boehm_JProteomeRes2014.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

from qspflow.calibrate.derivatives import GradientProblem, _Observations
from qspflow.calibrate.objective import BatchProblem, MeasurementGroup
from qspflow.calibrate.shooting import shoot
from qspflow.calibrate.spec import CalibrationSpec
from qspflow.errors import ModelError
from qspflow.model import TIME, OdeModel, Parameter, derivative, symbol
from qspflow.petab import load_problem
from qspflow.simulate import compile_model, kernel, sensitivity
from qspflow.simulate.codegen import generate
from qspflow.simulate.sensitivity import compile_sensitivities, sensitivity_model

BOEHM_LLH = -138.22199693517703  # AMICI's reference at the nominal (published) parameters


def _decay() -> OdeModel:
    x, k, x0 = symbol("x"), symbol("k"), symbol("x0")
    return OdeModel("decay", ["x"], {"k": Parameter("k", 1.0), "x0": Parameter("x0", 1.0)}, {"x": -k * x},
                    {"x": x0})


def test_sensitivities_of_decay_are_the_analytic_derivatives(tmp_path):
    compiled = compile_sensitivities(_decay(), varying=["k", "x0"], cache_dir=tmp_path)
    times = np.array([0.0, 0.5, 1.0, 3.0])
    k, x0 = 0.7, 2.0
    result = compiled.simulate(np.array([[k, x0]]), times, rtol=1e-10, atol=1e-12)
    assert result.status[0] == 0
    np.testing.assert_allclose(result.states[0, :, 0], x0 * np.exp(-k * times), rtol=1e-8)
    np.testing.assert_allclose(result.sensitivities[0, :, 0, 0], -times * x0 * np.exp(-k * times), rtol=1e-7,
                               atol=1e-12)
    np.testing.assert_allclose(result.sensitivities[0, :, 0, 1], np.exp(-k * times), rtol=1e-8)


def test_sensitivities_outside_the_error_control_follow_the_states_steps(tmp_path):
    controlled = compile_sensitivities(_decay(), varying=["k", "x0"], cache_dir=tmp_path)
    loose = compile_sensitivities(_decay(), varying=["k", "x0"], error_control=False, cache_dir=tmp_path)
    assert loose.compiled.path != controlled.compiled.path
    times = np.array([0.0, 0.5, 1.0, 3.0])
    k, x0 = 0.7, 2.0
    result = loose.simulate(np.array([[k, x0]]), times, rtol=1e-10, atol=1e-12, method="implicit")
    assert result.status[0] == 0
    np.testing.assert_allclose(result.states[0, :, 0], x0 * np.exp(-k * times), rtol=1e-8)
    # The states' steps bound the sensitivities' error too where they vary on the same time scale.
    np.testing.assert_allclose(result.sensitivities[0, :, 0, 0], -times * x0 * np.exp(-k * times), rtol=1e-6,
                               atol=1e-12)


def test_a_cached_sensitivity_system_is_loaded_without_building_it_again(tmp_path, monkeypatch):
    # Building the extended model and hashing it cost a job seconds; the cache knows it by its inputs.
    first = compile_sensitivities(_decay(), varying=["k", "x0"], cache_dir=tmp_path)
    monkeypatch.setattr(sensitivity, "sensitivity_model", lambda *args: pytest.fail("the system was built again"))
    again = compile_sensitivities(_decay(), varying=["k", "x0"], cache_dir=tmp_path)
    assert again.compiled.path == first.compiled.path
    with pytest.raises(pytest.fail.Exception):  # other parameters to differentiate by: another system
        compile_sensitivities(_decay(), varying=["k", "x0"], wrt=["k"], cache_dir=tmp_path)


def test_sensitivities_to_a_subset_and_the_system_they_solve():
    model, names = sensitivity_model(_decay(), ["k"])
    assert names == [["s_x_k"]]
    s, x, k = symbol("s_x_k"), symbol("x"), symbol("k")
    assert sympy.simplify(model.rhs["s_x_k"] - (-k * s - x)) == 0
    assert model.initial["s_x_k"] == 0
    with pytest.raises(ModelError, match="varying"):
        compile_sensitivities(_decay(), varying=["k"], wrt=["x0"])


def test_a_model_without_the_sensitivity_structure_is_refused_for_block_solves(tmp_path):
    x, y = symbol("x"), symbol("y")
    coupled = OdeModel("coupled", ["x", "y"], {"k": Parameter("k", 1.0)}, {"x": -y * x, "y": x * y}, {"x": 1, "y": 1})
    with pytest.raises(ModelError, match="sensitivity system"):
        compile_model(coupled, varying=["k"], cache_dir=tmp_path, block=1)


def test_blocks_with_other_coefficients_or_nonlinear_in_their_sensitivities_are_refused(tmp_path):
    """The generated code computes A·s_k in one loop over the blocks (`codegen._split`): a block that is
    not A·s_k + g_k with the first block's A would be integrated wrongly, so it is refused."""
    x, s1, s2, k = symbol("x"), symbol("s1"), symbol("s2"), symbol("k")

    def system(second: sympy.Expr) -> OdeModel:
        return OdeModel("system", ["x", "s1", "s2"], {"k": Parameter("k", 1.0)},
                        {"x": -k * x, "s1": -k * s1 - x, "s2": second}, {"x": 1, "s1": 0, "s2": 0})

    with pytest.raises(ModelError, match="coefficients of the first"):
        compile_model(system(-2 * k * s2 - x), varying=["k"], cache_dir=tmp_path, block=1)
    with pytest.raises(ModelError, match="linearly"):
        compile_model(OdeModel("square", ["x", "s1"], {"k": Parameter("k", 1.0)}, {"x": -k * x, "s1": -k * s1**2},
                               {"x": 1, "s1": 0}), varying=["k"], cache_dir=tmp_path, block=1)


@pytest.mark.parametrize("method", ["auto", "implicit"])
def test_sensitivities_of_a_time_dependent_decay_are_the_analytic_derivatives(tmp_path, method):
    """x' = −k(1 + sin t)x: the Jacobian and ∂f/∂k both depend on t, so Rodas's ∂f/∂t of the sensitivity
    rows takes both of their time derivatives. x = x0·e^(−kτ), τ = t + 1 − cos t."""
    x, k, x0 = symbol("x"), symbol("k"), symbol("x0")
    model = OdeModel("forced", ["x"], {"k": Parameter("k", 1.0), "x0": Parameter("x0", 1.0)},
                     {"x": -k * (1 + sympy.sin(TIME)) * x}, {"x": x0})
    compiled = compile_sensitivities(model, varying=["k", "x0"], cache_dir=tmp_path)
    times = np.array([0.0, 0.5, 2.0, 5.0])
    tau = times + 1 - np.cos(times)
    result = compiled.simulate(np.array([[0.4, 3.0]]), times, rtol=1e-10, atol=1e-12, method=method)
    np.testing.assert_allclose(result.states[0, :, 0], 3.0 * np.exp(-0.4 * tau), rtol=1e-7)
    np.testing.assert_allclose(result.sensitivities[0, :, 0, 0], -tau * 3.0 * np.exp(-0.4 * tau), rtol=1e-6,
                               atol=1e-12)
    np.testing.assert_allclose(result.sensitivities[0, :, 0, 1], np.exp(-0.4 * tau), rtol=1e-7)


def test_the_derivative_of_a_sign_whose_argument_may_be_undefined_is_dropped():
    """d sign(C/V)/dC is an impulse (2δ(C/V)/V), dropped like DiracDelta; sympy leaves it unevaluated because
    V may be 0, and the sensitivity system of |C/V|ⁿ with V estimated could not be generated."""
    c, e, v, n = symbol("C"), symbol("E"), symbol("V"), symbol("n")
    assert derivative(sympy.sign(c / v), c) == 0
    model = OdeModel("effect", ["C", "E"], {"V": Parameter("V", 2.0), "n": Parameter("n", 1.5)},
                     {"C": -c, "E": sympy.Abs(c / v) ** n - e}, {"C": 1, "E": 0})
    extended, _ = sensitivity_model(model, ["V", "n"])
    assert "rhs" in generate(extended, ["V", "n"], block=2).source


def _hill_effect() -> OdeModel:
    """A drug C (first-order elimination) acting on E through C^n / (1 + C^n), n a Hill coefficient."""
    c, e, k, n, c0 = symbol("C"), symbol("E"), symbol("k"), symbol("n"), symbol("c0")
    return OdeModel("hill", ["C", "E"], {"k": Parameter("k", 1.0), "n": Parameter("n", 0.7),
                                         "c0": Parameter("c0", 1.0)},
                    {"C": -k * c, "E": c**n / (1 + c**n) - e}, {"C": c0, "E": 0})


@pytest.mark.parametrize("method", ["auto", "implicit"])
def test_a_hill_coefficient_below_one_on_an_absent_drug_has_finite_sensitivities(tmp_path, method):
    """d(Cⁿ)/dC = n·Cⁿ⁻¹ is infinite at C = 0 for n < 1; where the drug is absent its sensitivities
    are 0 and so are E's, and where it is given they match finite differences. (To the dose c0 the
    sensitivity at c0 = 0 is truly infinite: E grows as c0ⁿ.)"""
    compiled = compile_sensitivities(_hill_effect(), varying=["k", "n", "c0"], wrt=["k", "n"], cache_dir=tmp_path)
    times = np.array([0.0, 0.5, 2.0, 6.0])
    absent = compiled.simulate(np.array([[0.5, 0.7, 0.0]]), times, rtol=1e-10, atol=1e-12, method=method)
    assert absent.status[0] == 0
    np.testing.assert_array_equal(absent.states[0], 0.0)
    np.testing.assert_array_equal(absent.sensitivities[0], 0.0)
    plain = compile_model(_hill_effect(), varying=["k", "n", "c0"], cache_dir=tmp_path)
    params = np.array([0.5, 0.7, 2.0])
    given = compiled.simulate(params[None, :], times, rtol=1e-10, atol=1e-12, method=method)
    assert given.status[0] == 0
    for k in range(2):
        expected = _finite_differences(plain, params, times, k)
        np.testing.assert_allclose(given.sensitivities[0, :, :, k], expected, rtol=1e-5, atol=1e-8)


def _finite_differences(compiled, params: np.ndarray, times: np.ndarray, k: int) -> np.ndarray:
    step = 1e-6 * abs(params[k])
    up, down = params.copy(), params.copy()
    up[k] += step
    down[k] -= step
    values = compiled.simulate(np.array([up, down]), times, rtol=1e-12, atol=1e-14, what="states").values
    return (values[0] - values[1]) / (2 * step)


def test_an_observable_and_its_derivatives_in_the_states_and_parameters_a_group_at_a_time():
    a, b, scale, offset, noise = (symbol(n) for n in ("a", "b", "scale", "offset", "noise"))
    group = MeasurementGroup(np.array([0, 1]), np.array([0, 1]), np.array([20.0, 30.0]), scale * a + offset,
                             noise * b, None, "lin", "normal")
    functions = {}
    observations = _Observations(group, [a, b], [scale, offset, noise], functions)
    assert list(functions[group.simulation][1]) == [0, 1, 3, 4]  # ∂/∂b and ∂/∂noise are zero: not evaluated
    x, L = np.array([[2.0, 5.0], [3.0, 7.0]]), np.array([10.0, 1.0, 0.5])
    h, sigma, h_x, h_t, s_x, s_t = observations(x, L)
    np.testing.assert_array_equal(h, [21.0, 31.0])
    np.testing.assert_array_equal(sigma, [2.5, 3.5])
    np.testing.assert_array_equal(h_x, [[10.0, 0.0], [10.0, 0.0]])
    np.testing.assert_array_equal(h_t, [[2.0, 1.0, 0.0], [3.0, 1.0, 0.0]])
    np.testing.assert_array_equal(s_x, [[0.0, 0.5], [0.0, 0.5]])
    np.testing.assert_array_equal(s_t, [[0.0, 0.0, 5.0], [0.0, 0.0, 7.0]])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["auto", "implicit"])
def test_sensitivities_of_boehm_agree_with_finite_differences(cases, tmp_path, method):
    model = OdeModel.from_sbml(cases / "petab-collection" / "Boehm_JProteomeRes2014" /
                               "model_Boehm_JProteomeRes2014.xml")
    varying = ["k_exp_hetero", "k_exp_homo", "k_imp_hetero", "k_imp_homo", "k_phos"]
    params = np.array([model.parameters[p].value for p in varying])
    times = np.linspace(0.0, 240.0, 17)
    plain = compile_model(model, varying=varying, cache_dir=tmp_path)
    result = compile_sensitivities(model, varying=varying, cache_dir=tmp_path).simulate(
        params[None, :], times, rtol=1e-10, atol=1e-12, method=method)
    references = np.stack([_finite_differences(plain, params, times, k) for k in range(len(varying))], axis=-1)
    # Relative to the largest sensitivity: below that, the differences' own rounding (1e-12 of states
    # of 100, over steps of 1e-6·p) is what would be compared.
    np.testing.assert_allclose(result.sensitivities[0], references, rtol=1e-5, atol=1e-5 * np.abs(references).max())


def _central_gradient(problem: GradientProblem, x: np.ndarray, step: float = 1e-5) -> np.ndarray:
    gradient = np.empty_like(x)
    for i in range(len(x)):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        gradient[i] = (problem.evaluate(up).nll - problem.evaluate(down).nll) / (2 * step)
    return gradient


@pytest.fixture(scope="module")
def boehm(cases):  # compiles Boehm's sensitivity system: the tests using it are slow
    spec = CalibrationSpec(load_problem(cases / "petab-collection" / "Boehm_JProteomeRes2014" /
                                        "Boehm_JProteomeRes2014.yaml"))
    return GradientProblem(BatchProblem(spec))


@pytest.mark.slow
def test_gradient_and_fisher_information_of_boehm(boehm):
    spec = boehm.spec
    x = spec.nominal + 0.1 * (spec.upper - spec.lower) * np.sin(np.arange(spec.dimension))  # away from the optimum
    e = boehm.evaluate(x)
    assert e.nll == pytest.approx(-spec.simulated_llh(x), rel=1e-7)
    np.testing.assert_allclose(e.gradient, _central_gradient(boehm, x), rtol=1e-5, atol=1e-4)
    assert np.allclose(e.fim, e.fim.T) and np.linalg.eigvalsh(e.fim).min() > -1e-8
    at_optimum = boehm.evaluate(spec.nominal)
    assert -at_optimum.nll == pytest.approx(BOEHM_LLH, abs=1e-5)
    np.testing.assert_allclose(at_optimum.gradient, _central_gradient(boehm, spec.nominal), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_gradient_through_a_preequilibration_agrees_with_finite_differences(cases):
    spec = CalibrationSpec(load_problem(cases / "petab-collection" / "Weber_BMC2015" / "Weber_BMC2015.yaml"))
    assert any(e.preequilibration for e in spec.experiments)
    problem = GradientProblem(BatchProblem(spec))
    x = spec.nominal
    e = problem.evaluate(x)
    assert -e.nll == pytest.approx(-296.2017922646865, abs=1e-3)  # AMICI's reference
    reference = _central_gradient(problem, x)
    # The differences see the simulated steady state, settled to 10·rtol: ~1e-3 noise over steps of 1e-5.
    np.testing.assert_allclose(e.gradient, reference, rtol=1e-3, atol=1e-3 * np.abs(reference).max())


@pytest.mark.slow
def test_shooting_reaches_boehms_published_optimum_and_holds_fixed_parameters(boehm):
    spec = boehm.spec
    x0 = spec.nominal + 0.15 * (spec.upper - spec.lower) * np.cos(np.arange(spec.dimension))
    x0 = np.clip(x0, spec.lower, spec.upper)
    result = shoot(boehm, x0, spec.lower, spec.upper, max_iter=500)
    assert result.converged and result.status in ("FTOL", "GTOL", "XTOL")
    assert -result.nll >= BOEHM_LLH - 1e-3
    assert spec.simulated_llh(result.x) == pytest.approx(-result.nll, abs=1e-5)
    fixed = shoot(boehm, result.x, spec.lower, spec.upper, max_iter=500, fixed={0: result.x[0] + 0.05})
    assert fixed.x[0] == result.x[0] + 0.05
    assert -fixed.nll < -result.nll


@pytest.mark.slow
def test_a_start_that_cannot_be_simulated_ends_with_the_reason(boehm):
    spec = boehm.spec
    failing = GradientProblem.__new__(GradientProblem)
    failing.__dict__.update(boehm.__dict__)
    failing.evaluate = lambda x: type(boehm.evaluate(spec.nominal))(math.inf, x * np.nan, np.zeros((9, 9)),
                                                                     "condition model1_data1: step size underflow")
    result = shoot(failing, spec.nominal, spec.lower, spec.upper, max_iter=10)
    assert not result.converged and result.status.startswith("simulation failed at the start: condition")


@pytest.mark.slow
def test_a_non_finite_proposal_is_a_failed_evaluation_not_an_error(boehm):
    x = boehm.spec.nominal.copy()
    x[3] = np.nan  # what fides' subproblem proposed on Fujita_SciSignal2010 (sqrt of a negative)
    e = boehm.evaluate(x)
    assert e.nll == math.inf and e.reason == "non-finite parameters proposed"


class _Underflowing:
    """A compiled sensitivity system whose error-controlled integration fails, as Weber_BMC2015's does
    far from its optimum (step size underflow) while its states integrate."""

    def __init__(self, real):
        self.real, self.varying, self.wrt, self.compiled = real, real.varying, real.wrt, real.compiled

    def simulate(self, params, times, **options):
        result = self.real.simulate(params, times, **options)
        result.status[:] = kernel.UNDERFLOW
        return result


@pytest.mark.slow
def test_where_the_sensitivities_error_control_fails_the_states_alone_control_the_steps(boehm):
    spec = boehm.spec
    failing = boehm.with_tolerances(boehm.rtol, boehm.atol)
    failing.simulator = _Underflowing(boehm.simulator)
    e, reference = failing.evaluate(spec.nominal), boehm.evaluate(spec.nominal)
    assert -e.nll == pytest.approx(BOEHM_LLH, abs=1e-5)
    np.testing.assert_allclose(e.gradient, reference.gradient, rtol=1e-4, atol=1e-4)
    assert failing._states_controlled[0].compiled.path != boehm.simulator.compiled.path
