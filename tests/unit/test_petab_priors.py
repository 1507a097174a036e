"""Objective priors: PEtab 1 densities against scipy.stats, their derivatives, and the posterior
through loading, `petab-llh`, the batch objective and the gradient."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from qspflow.calibrate.objective import BatchProblem
from qspflow.calibrate.spec import CalibrationSpec
from qspflow.errors import PetabError
from qspflow.petab import Prior, load_problem, log_likelihood, log_prior
from qspflow.steps.petab import petab_llh
from test_petab import turnover_log_likelihood, turnover_problem

LN10 = math.log(10)
X = np.array([-0.7, 0.2, 0.9])  # scaled values (on lin: θ itself)


def _theta(scale: str, x: np.ndarray) -> np.ndarray:
    return {"lin": x, "log": np.exp(x), "log10": 10.0**x}[scale]


# (type, parameters, scale, log-density of x by scipy.stats)
CASES = [
    ("normal", (0.5, 0.4), "log10", lambda x: stats.norm(0.5, 0.4).logpdf(10.0**x)),
    ("normal", (0.5, 0.4), "lin", lambda x: stats.norm(0.5, 0.4).logpdf(x)),
    ("laplace", (1.0, 2.0), "log", lambda x: stats.laplace(1.0, 2.0).logpdf(np.exp(x))),
    ("laplace", (0.1, 0.3), "lin", lambda x: stats.laplace(0.1, 0.3).logpdf(x)),
    ("uniform", (0.1, 20.0), "log10", lambda x: stats.uniform(0.1, 19.9).logpdf(10.0**x)),
    ("logNormal", (0.3, 0.7), "log10", lambda x: stats.lognorm(s=0.7, scale=math.exp(0.3)).logpdf(10.0**x)),
    ("logNormal", (0.3, 0.7), "log", lambda x: stats.lognorm(s=0.7, scale=math.exp(0.3)).logpdf(np.exp(x))),
    ("logNormal", (-0.5, 0.7), "lin", lambda x: stats.lognorm(s=0.7, scale=math.exp(-0.5)).logpdf(x)),
    ("logLaplace", (0.3, 0.5), "log10",  # log θ ~ Laplace: density of θ is f(log θ)/θ
     lambda x: stats.laplace(0.3, 0.5).logpdf(x * LN10) - x * LN10),
    ("parameterScaleNormal", (0.2, 0.3), "log10", lambda x: stats.norm(0.2, 0.3).logpdf(x)),
    ("parameterScaleLaplace", (0.2, 0.3), "log", lambda x: stats.laplace(0.2, 0.3).logpdf(x)),
    ("parameterScaleUniform", (-1.0, 1.0), "log10", lambda x: stats.uniform(-1.0, 2.0).logpdf(x)),
]


@pytest.mark.parametrize(("kind", "parameters", "scale", "logpdf"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_prior_density_is_scipys(kind, parameters, scale, logpdf):
    x = np.abs(X) if scale == "lin" and kind.startswith("log") else X
    value, _, _ = Prior(kind, parameters, scale).terms(x)
    expected = logpdf(x)
    assert np.isinf(value[np.isinf(expected)]).all()
    finite = np.isfinite(expected)
    assert -value[finite] == pytest.approx(expected[finite], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("kind", "parameters", "scale", "logpdf"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_prior_gradient_is_the_derivative_on_the_parameter_scale(kind, parameters, scale, logpdf):
    x = np.abs(X) if scale == "lin" and kind.startswith("log") else X
    prior = Prior(kind, parameters, scale)
    _, gradient, _ = prior.terms(x)
    h = 1e-6
    central = (prior.terms(x + h)[0] - prior.terms(x - h)[0]) / (2 * h)
    finite = np.isfinite(central)
    assert gradient[finite] == pytest.approx(central[finite], rel=1e-6, abs=1e-8)


def test_prior_fisher_information_is_the_curvature_of_a_gaussian_on_the_parameter_scale():
    prior = Prior("parameterScaleNormal", (0.2, 0.3), "log10")
    assert prior.terms(X)[2] == pytest.approx(np.full(3, 1 / 0.09), rel=1e-12)
    # On the linear scale of a log10 parameter: (dθ/dx)²/σ², the Gauss–Newton term (positive).
    theta = 10.0**X
    assert Prior("normal", (0.5, 0.4), "log10").terms(X)[2] == pytest.approx((theta * LN10) ** 2 / 0.16, rel=1e-12)
    assert Prior("laplace", (0.1, 0.3), "lin").terms(X)[2] == pytest.approx(np.full(3, 1 / 0.09), rel=1e-12)
    assert Prior("uniform", (0.1, 20.0), "log10").terms(X)[2].tolist() == [0.0, 0.0, 0.0]


# ----------------------------------------------------------------- the posterior of a problem

PRIORS = {"k_out": ("parameterScaleNormal", "-0.5;0.2"), "scale": ("laplace", "1.5;0.5"),
          "sd_log": ("logNormal", "-2;1")}


def _with_priors(tmp_path, priors=PRIORS, **changes):
    parameters = pd.read_csv(turnover_problem(tmp_path).parent / "parameters.tsv", sep="\t")
    parameters["objectivePriorType"] = [priors.get(p, ("", ""))[0] for p in parameters["parameterId"]]
    parameters["objectivePriorParameters"] = [priors.get(p, ("", ""))[1] for p in parameters["parameterId"]]
    for (row, column), value in changes.items():
        parameters.loc[row, column] = value
    return turnover_problem(tmp_path, parameters=parameters)


def _expected_log_prior() -> float:
    k_out, scale, sd_log = 0.5, 1.7, 0.1  # the turnover problem's nominal values
    return (stats.norm(-0.5, 0.2).logpdf(math.log10(k_out)) + stats.laplace(1.5, 0.5).logpdf(scale)
            + stats.lognorm(s=1.0, scale=math.exp(-2)).logpdf(sd_log))


def test_petab_llh_gives_the_log_posterior_and_the_log_likelihood(tmp_path):
    path = _with_priors(tmp_path)
    problem = load_problem(path)
    m = problem.measurement_table["measurement"].to_numpy(dtype=float)
    llh = turnover_log_likelihood(m)

    assert set(problem.priors) == set(PRIORS)  # x0 (fixed) has none
    assert log_prior(problem) == pytest.approx(_expected_log_prior(), rel=1e-12)
    posterior, likelihood = petab_llh(problem=path)
    assert likelihood == pytest.approx(llh, rel=1e-8)
    assert posterior == pytest.approx(llh + _expected_log_prior(), rel=1e-8)


def test_batch_objective_is_the_negative_log_posterior(tmp_path):
    problem = load_problem(_with_priors(tmp_path))
    spec = CalibrationSpec(problem)
    batch = BatchProblem(spec, rtol=1e-10, atol=1e-12)
    x = np.array([math.log10(0.6), 1.2, math.log10(0.2)])  # k_out, scale, sd_log
    values = spec.linear(x)
    expected = -(log_likelihood(problem, values) + log_prior(problem, values))
    assert batch.objective(x[None, :])[0] == pytest.approx(expected, rel=1e-6)
    assert spec.simulated_llh(x) == pytest.approx(-expected, rel=1e-10)


def test_gradient_and_fisher_information_include_the_priors(tmp_path):
    from qspflow.calibrate.derivatives import GradientProblem

    problem = load_problem(_with_priors(tmp_path))
    spec = CalibrationSpec(problem)
    gradient_problem = GradientProblem(BatchProblem(spec), rtol=1e-11, atol=1e-13)
    x = np.array([math.log10(0.6), 1.2, math.log10(0.2)])
    evaluation = gradient_problem.evaluate(x)
    assert evaluation.nll == pytest.approx(-spec.simulated_llh(x), rel=1e-6)
    h = 1e-5
    central = np.array([(gradient_problem.evaluate(x + h * e).nll - gradient_problem.evaluate(x - h * e).nll) / (2 * h)
                        for e in np.eye(3)])
    assert evaluation.gradient == pytest.approx(central, rel=1e-4, abs=1e-6)
    without = CalibrationSpec(load_problem(turnover_problem(tmp_path / "plain")))
    fim = GradientProblem(BatchProblem(without), rtol=1e-11, atol=1e-13).evaluate(x).fim
    scale_information = 1 / 0.5**2
    k_out_information = 1 / 0.2**2
    sd_information = (math.log(10) / 1.0) ** 2  # log θ = x·ln 10, σ = 1
    assert np.diag(evaluation.fim - fim) == pytest.approx([k_out_information, scale_information, sd_information],
                                                          rel=1e-6)


def test_a_parameter_scale_uniform_prior_without_parameters_spans_the_bounds(tmp_path):
    priors = {"k_out": ("parameterScaleUniform", ""), "scale": ("uniform", "0;10")}
    problem = load_problem(_with_priors(tmp_path, priors))
    assert problem.priors["k_out"].parameters == pytest.approx((-3.0, 3.0))
    assert log_prior(problem) == pytest.approx(-math.log(6.0) - math.log(10.0), rel=1e-12)


@pytest.mark.parametrize(("kind", "parameters", "words"), [
    ("gamma", "1;2", r"column 'objectivePriorType', element 'scale': expected one of uniform, .*found 'gamma'"),
    ("normal", "1", r"column 'objectivePriorParameters', element 'scale': expected two numbers 'mean;standard "
                    r"deviation' separated by ';' for a normal prior, found '1'"),
    ("laplace", "", r"column 'objectivePriorParameters', element 'scale': expected two numbers 'location;scale'.*empty"),
    ("normal", "1;0", r"column 'objectivePriorParameters', element 'scale': expected .*finite, with a scale > 0, found '1;0'"),
    ("uniform", "3;1", r"column 'objectivePriorParameters', element 'scale': expected .*finite, with lower < upper, found '3;1'"),
])
def test_a_bad_prior_is_refused_naming_the_row_and_column(tmp_path, kind, parameters, words):
    with pytest.raises(PetabError, match=r"parameters\.tsv, row 4, " + words):
        load_problem(_with_priors(tmp_path, {"scale": (kind, parameters)}))


def test_the_transcription_refuses_a_problem_with_priors_it_would_ignore(tmp_path):
    from qspflow.calibrate import open_session
    from qspflow.errors import ConfigError

    path = _with_priors(tmp_path)
    with pytest.raises(ConfigError, match=r"key 'calibrate.local_method': found 'transcription', objective priors "
                                          r"\(on k_out, scale, sd_log\)"):
        open_session(path, local_method="transcription", profile=False)
    open_session(path, local_method="shooting", profile=False)
