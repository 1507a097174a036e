"""Calibration against problems solved independently: least squares and least absolute deviations by
scipy on the analytic solution, the likelihood-ratio interval, `petab.log_likelihood` on a problem
with preequilibration, conservation laws, piecewise inputs and every noise model; AICc/BIC by hand.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy
from scipy.optimize import brentq, least_squares, minimize_scalar

from qspflow.calibrate import THRESHOLD, calibrate_problem, check_profile_candidates, open_session, rank_models
from qspflow.calibrate import session as calibrate_session
from qspflow.calibrate import transcription as calibrate_pyomo
from qspflow.calibrate.derivatives import GradientProblem
from qspflow.calibrate.objective import BatchProblem
from qspflow.calibrate.shooting import COARSE_ATOL, COARSE_RTOL, Abandoned, shoot, shoot_in_stages
from qspflow.calibrate.spec import CalibrationSpec
from qspflow.calibrate.transcription import PyomoProblem, check_solver, conservation_laws
from qspflow.errors import ConfigError, DataError, PetabError, SolverError
from qspflow.model import TIME, OdeModel, Parameter
from qspflow.model.sbml import write_sbml
from qspflow.petab import load_problem, log_likelihood
from qspflow.steps import calibration as steps

K_TRUE, SIGMA = 0.5, 0.05
TIMES = (0.5, 1.0, 2.0, 4.0)
STARTS = {"low": 1.0, "high": 2.0}  # x(0) per condition
FAST = dict(starts=2, random_starts=0, global_method="none", profile=False, hops=0, refine_time=0)


def write_problem(folder: Path, model: OdeModel, **tables: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_sbml(model, folder / "model.xml")
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
    (folder / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- condition_files: [conditions.tsv]\n"
        "  measurement_files: [measurements.tsv]\n  observable_files: [observables.tsv]\n  sbml_files: [model.xml]\n")
    return folder / "problem.yaml"


def _decay_data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = [(c, t, x0 * math.exp(-K_TRUE * t) + SIGMA * rng.standard_normal()) for c, x0 in STARTS.items()
            for t in TIMES]
    return pd.DataFrame(rows, columns=["condition", "time", "value"])


def decay_problem(folder: Path, *, distribution: str = "normal", bounds: tuple[float, float] = (1e-3, 1e2),
                  nominal: float = 1.0, noise: str = str(SIGMA), rate: str = "k") -> Path:
    """dx/dt = −k·x, x(0) = x0 set by two conditions; k (named `rate`) estimated on log10 scale, σ known."""
    x, k, x0 = sympy.symbols(f"x {rate} x0", real=True)
    model = OdeModel("decay", ["x"], {rate: Parameter(rate, 1.0), "x0": Parameter("x0", 1.0)}, {"x": -k * x},
                     {"x": x0})
    data = _decay_data()
    return write_problem(
        folder, model,
        conditions=pd.DataFrame({"conditionId": list(STARTS), "x0": list(STARTS.values())}),
        observables=pd.DataFrame({"observableId": ["obs_x"], "observableFormula": ["x"],
                                  "noiseFormula": [noise], "observableTransformation": ["lin"],
                                  "noiseDistribution": [distribution]}),
        measurements=pd.DataFrame({"observableId": "obs_x", "simulationConditionId": data["condition"],
                                   "time": data["time"], "measurement": data["value"]}),
        parameters=pd.DataFrame({"parameterId": [rate], "parameterScale": ["log10"], "lowerBound": [bounds[0]],
                                 "upperBound": [bounds[1]], "nominalValue": [nominal], "estimate": [1]}))


def _residuals(log10_k: float) -> np.ndarray:
    data = _decay_data()
    x0 = data["condition"].map(STARTS).to_numpy()
    return data["value"].to_numpy() - x0 * np.exp(-(10.0**log10_k) * data["time"].to_numpy())


def _normal_llh(log10_k: float) -> float:
    r = _residuals(log10_k)
    return float(np.sum(-0.5 * np.log(2 * np.pi * SIGMA**2) - 0.5 * (r / SIGMA) ** 2))


def _least_squares(lower: float = -3.0, upper: float = 2.0) -> float:
    fit = least_squares(lambda p: _residuals(p[0]), x0=[(lower + upper) / 2], bounds=([lower], [upper]),
                        xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return float(fit.x[0])


def _best_row(result) -> pd.Series:
    """The start the result's optimum came from: not always the highest llh in the table, since a polished
    optimum replaces shooting's where the simulation finds it at most POLISH_SLACK worse."""
    at_best = result.starts[result.starts["llh"] == result.best_llh]
    assert len(at_best), "no start has the result's log-likelihood"
    return at_best.iloc[0]


# ------------------------------------------------------------------------------ estimates


def test_pyomo_estimate_is_the_least_squares_estimate_and_collocation_matches_simulation(tmp_path):
    result = calibrate_problem(decay_problem(tmp_path), n_elements=8, **FAST)
    expected = _least_squares()
    assert math.log10(result.best["k"]) == pytest.approx(expected, abs=1e-5)
    best = _best_row(result)
    # Only the best shooting optimum is polished by the transcription.
    assert best["status"] == "optimal" and best["method"] == "shooting+transcription"
    assert set(result.starts.drop(index=best.name)["method"]) == {"shooting"}
    assert -best["objective"] == pytest.approx(result.best_llh, abs=1e-6)  # collocation vs simulation
    assert result.best_llh == pytest.approx(_normal_llh(expected), abs=1e-6)


_EIGH_AROUND_SOLVES = """
import hashlib, sys
import numpy as np
from qspflow.calibrate import calibrate_problem
from qspflow.calibrate.transcription import pyo
a = np.random.default_rng(5).normal(size=(40, 40))
def digest():
    w, v = np.linalg.eigh(a @ a.T)
    return hashlib.sha256(w.tobytes() + v.tobytes()).hexdigest()
before = digest()
calibrate_problem(sys.argv[1], local_method="transcription", starts=1, random_starts=0, global_method="none",
                  profile=False)
ours = digest()
m = pyo.ConcreteModel()
m.x = pyo.Var(initialize=1.0)
m.o = pyo.Objective(expr=(m.x - 2) ** 2)
pyo.SolverFactory("cyipopt").solve(m)
print(before == ours, before == digest())
"""


def test_an_ipopt_solve_leaves_the_floating_point_environment_as_it_found_it(tmp_path):
    # A fresh process, so that the x87 control word is the loader's (no earlier test's solve changed it).
    proc = subprocess.run([sys.executable, "-c", _EIGH_AROUND_SOLVES, str(decay_problem(tmp_path))],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours, raw = proc.stdout.split()
    assert raw == "False", "a bare Ipopt solve no longer changes NumPy's LAPACK results: the check cannot fail"
    assert ours == "True", "numpy.linalg.eigh gave other bits after a calibration's Ipopt solve"


def test_each_local_method_alone_gives_the_least_squares_estimate(tmp_path):
    path = decay_problem(tmp_path)
    for options, method, statuses in ((dict(local_method="transcription"), "transcription", {"optimal"}),
                                      (dict(polish=False), "shooting", {"FTOL", "GTOL", "XTOL"})):
        result = calibrate_problem(path, n_elements=8, **options, **FAST)
        assert math.log10(result.best["k"]) == pytest.approx(_least_squares(), abs=1e-5)
        assert (result.starts["method"] == method).all() and set(result.starts["status"]) <= statuses
        assert result.best_llh == pytest.approx(_normal_llh(_least_squares()), abs=1e-6)
        assert result.reached and result.starts_at_best == 2


def test_the_local_phase_solves_are_the_first_starts_repeated_from_where_they_began(tmp_path):
    path = decay_problem(tmp_path)
    options = dict(starts=2, random_starts=0, profile=False, global_evaluations=2000, n_elements=8, hops=0,
                   refine_time=0)
    result = calibrate_problem(path, local_phase=True, **options)
    local = result.starts[result.starts["origin"] == "ess-local"]
    assert result.starts["origin"].iloc[0] == "ess-local"
    assert math.log10(result.best["k"]) == pytest.approx(_least_squares(), abs=1e-5)
    assert (local["final:k"] - math.log10(result.best["k"])).abs().max() < 1e-5
    without = calibrate_problem(path, **options)
    assert set(without.starts["origin"]) <= {"ess", "lhs"}
    assert math.log10(without.best["k"]) == pytest.approx(_least_squares(), abs=1e-5)


def test_laplace_noise_gives_the_least_absolute_deviation_estimate(tmp_path):
    result = calibrate_problem(decay_problem(tmp_path, distribution="laplace"), n_elements=8, **FAST)
    expected = minimize_scalar(lambda p: np.sum(np.abs(_residuals(p))), bounds=(-3, 2), method="bounded",
                               options={"xatol": 1e-12}).x
    assert math.log10(result.best["k"]) == pytest.approx(expected, abs=1e-5)
    b = SIGMA  # the Laplace scale is the noise formula's value
    llh = float(np.sum(-np.log(2 * b) - np.abs(_residuals(expected)) / b))
    assert result.best_llh == pytest.approx(llh, abs=1e-5)
    assert -_best_row(result)["objective"] == pytest.approx(result.best_llh, abs=1e-6)


def test_random_starts_follow_the_global_starts(tmp_path):
    session = open_session(decay_problem(tmp_path), starts=2, random_starts=3, global_evaluations=500, seed=2)
    table = session.global_starts()
    # One basin (first-order decay): one start from the search, a Latin-hypercube point for the other.
    assert list(table["origin"]) == ["ess", "lhs", "lhs", "lhs", "lhs"] and list(table["start"]) == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(table, open_session(decay_problem(tmp_path), starts=2, random_starts=3,
                                                      global_evaluations=500, seed=2).global_starts())


def test_global_stages_find_the_same_optimum_and_are_seeded(tmp_path):
    path = decay_problem(tmp_path)
    expected = _least_squares()
    for method in ("de", "ess"):
        first = calibrate_problem(path, global_method=method, starts=2, random_starts=0, seed=3, profile=False,
                                  global_evaluations=3000)
        again = calibrate_problem(path, global_method=method, starts=2, random_starts=0, seed=3, profile=False,
                                  global_evaluations=3000)
        assert math.log10(first.best["k"]) == pytest.approx(expected, abs=1e-5)
        pd.testing.assert_frame_equal(first.starts, again.starts)
        # the default basin hops and the refinement of the two best ends follow, seeded too
        origins = first.starts["origin"]
        planned = ~origins.isin(["hop", "refine"])
        assert sorted(first.starts.loc[planned, "origin"]) == sorted([method, "lhs"])  # one basin: one start
        # every hop returns to the one optimum: hop_stall of them, and the HOP_LAG − 1 drawn before the last ended
        assert (origins == "hop").sum() == first.options.hop_stall + calibrate_session.HOP_LAG - 1
        assert list(origins.iloc[-2:]) == ["refine", "refine"]
        assert (first.starts["llh"].iloc[-2:] - first.best_llh).abs().max() < 1e-6


def test_ripopt_finds_the_same_estimate(tmp_path):
    result = calibrate_problem(decay_problem(tmp_path), solver="ripopt", n_elements=8, **FAST)
    assert math.log10(result.best["k"]) == pytest.approx(_least_squares(), abs=1e-5)


# ------------------------------------------------------------------------------ profiles


def test_profile_interval_is_the_likelihood_ratio_interval(tmp_path):
    result = calibrate_problem(decay_problem(tmp_path), starts=1, random_starts=0, global_method="none", n_elements=8)
    optimum = _least_squares()
    target = _normal_llh(optimum) - THRESHOLD
    low = brentq(lambda p: _normal_llh(p) - target, optimum - 1, optimum, xtol=1e-14)
    high = brentq(lambda p: _normal_llh(p) - target, optimum, optimum + 1, xtol=1e-14)
    row = result.estimates.iloc[0]
    assert (row["parameter"], bool(row["identifiable"])) == ("k", True)
    assert math.log10(row["lower_95"]) == pytest.approx(low, abs=1e-5)
    assert math.log10(row["upper_95"]) == pytest.approx(high, abs=1e-5)
    assert row["lower_95"] < K_TRUE < row["upper_95"]
    profile = result.profiles
    assert (profile["parameter"] == "k").all() and profile["value"].is_monotonic_increasing
    assert profile["llh"].max() == pytest.approx(result.best_llh, abs=1e-6)


def test_bounds_that_exclude_the_optimum_give_a_one_sided_interval(tmp_path):
    upper = 0.3  # the unconstrained estimate is ≈ 0.5
    result = calibrate_problem(decay_problem(tmp_path, bounds=(1e-3, upper), nominal=0.1), starts=2, random_starts=0,
                               global_method="none", n_elements=8)
    assert math.log10(result.best["k"]) == pytest.approx(_least_squares(upper=math.log10(upper)), abs=1e-6)
    row = result.estimates.iloc[0]
    assert row["estimate"] == pytest.approx(upper, rel=1e-6)
    assert not row["identifiable"] and math.isnan(row["upper_95"]) and row["lower_95"] < upper


def test_a_nominal_value_outside_the_bounds_is_accepted_and_the_calibration_stays_inside(tmp_path):
    result = calibrate_problem(decay_problem(tmp_path, bounds=(1e-3, 0.3), nominal=1.0), **FAST)
    lower, upper = math.log10(1e-3), math.log10(0.3)
    for column in ("initial:k", "final:k"):
        assert result.starts[column].between(lower, upper).all(), column
    assert 1e-3 <= result.best["k"] <= 0.3


# ------------------------------------------------------------- formulation vs petab simulation


def _network_problem(folder: Path) -> Path:
    """A ⇌ B (A + B conserved), preequilibrated under k1 = 0.5, then k1 = 2; x driven by an input
    switched on at t = 1; observables with a scaling parameter, log and log10 transformations,
    Laplace noise proportional to the signal, and a steady-state measurement (time inf)."""
    a, b, x, k1, k2, k_in, k_out = sympy.symbols("A B x k1 k2 k_in k_out", real=True)
    u = sympy.Piecewise((1, TIME >= 1), (0, True))
    parameters = {n: Parameter(n, v) for n, v in dict(k1=1.0, k2=0.7, k_in=2.0, k_out=0.8).items()}
    parameters |= {"A0": Parameter("A0", 3.0)}
    model = OdeModel("network", ["A", "B", "x"], parameters,
                     {"A": -k1 * a + k2 * b, "B": k1 * a - k2 * b, "x": k_in * u - k_out * x},
                     {"A": sympy.Symbol("A0", real=True), "B": sympy.Integer(1), "x": sympy.Integer(0)})
    measurements = pd.DataFrame([
        ("obs_A", "pre", "main", 0.0, 1.3, "scale", "0.2"),
        ("obs_A", "pre", "main", 0.5, 2.0, "scale", "0.2"),
        ("obs_A", "pre", "main", 3.0, 2.6, "scale", "0.2"),
        ("obs_A", "pre", "main", math.inf, 2.7, "scale", "0.2"),
        ("obs_x", "pre", "main", 0.5, 0.4, "", ""),
        ("obs_x", "pre", "main", 2.0, 1.5, "", ""),
        ("obs_x", "pre", "main", 3.0, 2.0, "", ""),
        ("obs_B", "", "solo", 1.0, 2.1, "", "0.05"),
        ("obs_B", "", "solo", 2.5, 2.4, "", "0.05"),
    ], columns=["observableId", "preequilibrationConditionId", "simulationConditionId", "time", "measurement",
                "observableParameters", "noiseParameters"])
    return write_problem(
        folder, model,
        conditions=pd.DataFrame({"conditionId": ["pre", "main", "solo"], "k1": [0.5, 2.0, "k_solo"],
                                 "x": [math.nan, 0.2, math.nan]}),
        observables=pd.DataFrame({
            "observableId": ["obs_A", "obs_x", "obs_B"],
            "observableFormula": ["observableParameter1_obs_A * A", "x + 0.1", "B"],
            "noiseFormula": ["noiseParameter1_obs_A", "sd_x", "noiseParameter1_obs_B * B"],
            "observableTransformation": ["lin", "log", "log10"],
            "noiseDistribution": ["normal", "normal", "laplace"]}),
        measurements=measurements,
        parameters=pd.DataFrame({
            "parameterId": ["k2", "k_in", "k_out", "A0", "k_solo", "scale", "sd_x"],
            "parameterScale": ["log10", "log", "lin", "lin", "log10", "lin", "log10"],
            "lowerBound": [1e-3, 1e-3, 0.01, 0.1, 1e-3, 0.1, 1e-3],
            "upperBound": [1e3, 1e3, 10.0, 10.0, 1e3, 10.0, 10.0],
            "nominalValue": [0.7, 2.0, 0.8, 3.0, 1.5, 0.9, 0.3],
            "estimate": [1, 1, 1, 1, 1, 1, 1]}))


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    spec = CalibrationSpec(load_problem(_network_problem(tmp_path_factory.mktemp("network"))))
    return spec, BatchProblem(spec, threads=1)


def test_batch_objective_is_the_petab_likelihood(network):
    spec, batch = network
    points = np.array([spec.nominal, spec.nominal + 0.05, spec.nominal - 0.05])
    expected = [-log_likelihood(spec.problem, spec.linear(x)) for x in points]
    assert batch.objective(points) == pytest.approx(expected, rel=1e-5)


def test_the_blocks_are_the_parameters_of_each_states_equation(network, tmp_path):
    spec, _ = network
    # A: −k1·A + k2·B with k1 = k_solo in condition solo, A(0) = A0; B: the same reaction; x: k_in·u − k_out·x
    # (k2, k_in, k_out, A0, k_solo, scale, sd_x: the observables' parameters are in no state's equation)
    assert spec.blocks == [(0, 3, 4), (0, 4), (1, 2)]
    # one parameter in every state's equation: no block that is not all of them
    assert CalibrationSpec(load_problem(decay_problem(tmp_path))).blocks == []


def test_collocation_with_all_parameters_fixed_is_the_petab_likelihood(network):
    spec, batch = network
    nlp = PyomoProblem(spec, batch, n_elements=8)
    x = spec.nominal + 0.05
    assert nlp.initialize(x)
    solution = nlp.solve(dict(enumerate(x)))
    assert solution.status == "optimal"
    assert -solution.nll == pytest.approx(log_likelihood(spec.problem, spec.linear(x)), abs=1e-6)


def test_conservation_laws_of_a_reversible_reaction():
    a, b, x, k1, k2 = sympy.symbols("A B x k1 k2", real=True)
    laws, pivots = conservation_laws([-k1 * a + k2 * b, k1 * a - k2 * b, 1 - x], [a, b, x], [k1, k2])
    assert laws.shape == (1, 3) and pivots in ([0], [1])
    assert laws[0] / laws[0][pivots[0]] == pytest.approx([1.0, 1.0, 0.0])


# --------------------------------------------------------------------------------- solvers


def test_missing_ripopt_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyomo_ripopt", None)  # makes `import pyomo_ripopt` fail
    with pytest.raises(SolverError, match="pip install pyomo-ripopt"):
        calibrate_problem(tmp_path / "never-read.yaml", solver="ripopt")


def test_missing_pynumero_says_to_run_setup(monkeypatch):
    monkeypatch.setattr(calibrate_pyomo, "_pynumero_available", lambda: False)
    with pytest.raises(SolverError, match="run bin/setup"):
        check_solver("ipopt")


def test_unknown_solver_and_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="key 'calibrate.solver'"):
        check_solver("snopt")
    with pytest.raises(ConfigError, match="key 'calibrate.solver'"):
        calibrate_problem(tmp_path / "p.yaml", solver="snopt")
    with pytest.raises(ConfigError, match="key 'calibrate.global_method'"):
        calibrate_problem(tmp_path / "p.yaml", global_method="cmaes")
    with pytest.raises(ConfigError, match="key 'calibrate.starts'"):
        calibrate_problem(tmp_path / "p.yaml", starts=0)
    with pytest.raises(ConfigError, match="key 'calibrate.stars'"):
        calibrate_problem(tmp_path / "p.yaml", stars=3)
    with pytest.raises(ConfigError, match="key 'calibrate.profile_parameters'"):
        calibrate_problem(tmp_path / "p.yaml", profile_parameters="k")


def test_profiling_a_parameter_that_is_not_estimated_is_refused(tmp_path):
    message = r"key 'calibrate.profile_parameters': expected ids of estimated parameters \(k\), found 'x0'"
    with pytest.raises(ConfigError, match=message):
        calibrate_problem(decay_problem(tmp_path), profile_parameters=["x0"], **{**FAST, "profile": True})


# ------------------------------------------------------------------ checks before any simulation


@pytest.fixture
def no_simulator(monkeypatch):
    """Fails a test that compiles the simulator (the first step of any search or solve)."""
    def compile_(*args, **kwargs):
        raise AssertionError("the simulator was compiled")

    monkeypatch.setattr(calibrate_session, "BatchProblem", compile_)


def test_unknown_profile_parameter_fails_before_the_simulator_is_compiled(tmp_path, no_simulator):
    path = decay_problem(tmp_path)
    with pytest.raises(ConfigError, match=r"problem\.yaml, key 'calibrate.profile_parameters': expected ids of "
                                          r"estimated parameters \(k\), found 'k_typo'"):
        calibrate_problem(path, profile_parameters=["k_typo"], starts=2)


def test_profile_parameters_concern_only_a_profiled_model(tmp_path, no_simulator):
    """Without `profile`, a model's jobs ignore the parameters to profile: they may belong to another model."""
    session = open_session(decay_problem(tmp_path), profile=False, profile_parameters=["other"])
    assert session.spec.names == ["k"] and session.options.profile_parameters == ("other",)
    with pytest.raises(ConfigError, match="found 'other'"):
        open_session(decay_problem(tmp_path), profile=True, profile_parameters=["other"])


def test_a_parameter_to_profile_must_be_estimated_in_some_candidate(tmp_path, no_simulator):
    own, other = decay_problem(tmp_path / "own"), decay_problem(tmp_path / "other", rate="k_other")
    session = open_session(own, profile=False, profile_parameters=["k_other"])
    check_profile_candidates(session, [own, other])  # estimated in the other candidate: it may be the selected one
    check_profile_candidates(session, [])  # no candidates given: nothing to check against
    session = open_session(own, profile=False, profile_parameters=["k", "z"])
    with pytest.raises(ConfigError, match=r"^key 'calibrate.profile_parameters': expected ids of parameters estimated "
                                          r"in at least one of the 2 candidate models \(k, k_other\), found 'z'$"):
        check_profile_candidates(session, [own, other])
    with pytest.raises(ConfigError, match=r"own/problem\.yaml, key 'calibrate.profile_parameters': expected ids of "
                                          r"estimated parameters \(k\), found 'z'$"):
        check_profile_candidates(session, [own])


def test_global_stage_of_a_model_without_a_parameter_to_profile_runs(tmp_path):
    """The workflow's `calibrate_global` of a candidate that lacks a parameter the selected model will
    profile writes its starts; a parameter in no candidate fails it before the search, writing nothing."""
    own, other = decay_problem(tmp_path / "own"), decay_problem(tmp_path / "other", rate="k_other")
    options = dict(starts=2, random_starts=0, global_method="none", profile=False)
    steps.calibrate_global(problem=own, global_starts=tmp_path / "global.tsv", seed=1, candidates=[own, other],
                           profile_parameters=["k_other"], **options)
    assert len(pd.read_csv(tmp_path / "global.tsv", sep="\t")) == 2
    with pytest.raises(ConfigError, match="found 'z'"):
        steps.calibrate_global(problem=own, global_starts=tmp_path / "never.tsv", seed=1, candidates=[own, other],
                               profile_parameters=["z"], **options)
    assert not (tmp_path / "never.tsv").exists()


@pytest.mark.parametrize(("noise", "sigma"), [("0", "0"), ("-0.1", "-0.1"), ("sigma_fixed", "0")])
def test_a_noise_sigma_that_is_not_positive_is_a_petab_error_naming_the_row(tmp_path, noise, sigma, no_simulator):
    path = decay_problem(tmp_path, noise=noise)
    if noise == "sigma_fixed":  # a fixed parameter whose value is 0
        with (tmp_path / "parameters.tsv").open("a") as table:
            table.write("sigma_fixed\tlin\t0\t1\t0\t0\n")
    with pytest.raises(PetabError, match=rf"measurements\.tsv, row 2, element 'obs_x': expected a noise σ > 0 "
                                         rf"\(noiseFormula '{noise}'.*found '{sigma}'$"):
        calibrate_problem(path, **FAST)


def test_an_estimated_parameter_with_one_value_is_a_petab_error(tmp_path, no_simulator):
    message = (r"parameters\.tsv, row 2, column 'lowerBound', element 'k': expected finite bounds with "
               r"lowerBound < upperBound .*set estimate to 0.*found '\[0.5, 0.5\]'")
    with pytest.raises(PetabError, match=message):
        calibrate_problem(decay_problem(tmp_path, bounds=(0.5, 0.5), nominal=0.5), **FAST)


def test_missing_cyipopt_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cyipopt", None)
    with pytest.raises(SolverError, match=r"^key 'calibrate.solver': found 'ipopt', Ipopt \(cyipopt\) is not "
                                          r"installed: run bin/setup \(or pip install cyipopt-wheels\)$"):
        check_solver("ipopt")


# ---------------------------------------------------------------------------------- output


def test_outputs_are_written_and_byte_stable(tmp_path):
    for folder in ("a", "b"):
        steps.calibrate_folder(problem=decay_problem(tmp_path / "problem"), out=tmp_path / folder, starts=2, random_starts=0,
                               global_method="none")
    names = ["estimates.tsv", "starts.tsv", "profiles.tsv", "simulation.tsv", "summary.tsv", "waterfall.png",
             "profiles.png", "fit.png"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    estimates = pd.read_csv(tmp_path / "a" / "estimates.tsv", sep="\t")
    assert list(estimates.columns) == ["parameter", "estimate", "lower_95", "upper_95", "identifiable"]
    starts = pd.read_csv(tmp_path / "a" / "starts.tsv", sep="\t")
    assert list(starts.columns[:7]) == ["start", "origin", "method", "status", "objective", "llh", "n_elements"]
    assert set(starts["method"]) <= {"shooting", "shooting+transcription"}
    assert {"initial:k", "final:k"} <= set(starts.columns)
    simulation = pd.read_csv(tmp_path / "a" / "simulation.tsv", sep="\t")
    assert len(simulation) == 2 * len(TIMES) and simulation["simulation"].notna().all()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(names)


def test_the_stages_as_separate_jobs_give_the_in_process_result(tmp_path, monkeypatch):
    """calibrate_global → calibrate_start per start → calibrate (the Snakemake jobs) reproduce the
    one-process `calibrate_folder` byte for byte; `profile` then adds intervals around its optimum."""
    path = decay_problem(tmp_path / "problem")
    options = dict(starts=3, random_starts=0, global_evaluations=2000, n_elements=8, profile=False)
    best_llh = steps.calibrate_folder(problem=path, out=tmp_path / "whole", seed=5, **options)
    steps.calibrate_global(problem=path, global_starts=tmp_path / "global.tsv", seed=5, **options)
    tables = [tmp_path / "starts" / f"{k}.tsv" for k in range(3)]
    for k, table in enumerate(tables):
        steps.calibrate_start(problem=path, global_starts=tmp_path / "global.tsv", start=k, result=table, **options)
    out = tmp_path / "out"
    staged = steps.calibrate(problem=path, start_tables=tables, seed=5, **{k: out / v for k, v in steps.FILES.items()
                                                                     if k not in ("profiles", "plot")}, **options)
    assert staged == best_llh
    for name in ("estimates.tsv", "starts.tsv", "summary.tsv", "simulation.tsv", "waterfall.png", "fit.png"):
        assert (tmp_path / "whole" / name).read_bytes() == (out / name).read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "whole").iterdir())
    profiled = tmp_path / "profiled"

    def polished_twice(session, result):
        raise AssertionError("the profile step polished the optimum that `calibrate` had polished")

    monkeypatch.setattr(calibrate_session.CalibrationSession, "_polish", polished_twice)
    steps.profile(problem=path, starts_table=out / "starts.tsv", estimates=profiled / "estimates.tsv",
                  profiles=profiled / "profiles.tsv", plot=profiled / "profiles.png", **options)
    estimates = pd.read_csv(profiled / "estimates.tsv", sep="\t")
    k = pd.read_csv(out / "estimates.tsv", sep="\t")["estimate"].iat[0]
    assert estimates["lower_95"].iat[0] < k < estimates["upper_95"].iat[0]
    assert sorted(p.name for p in profiled.iterdir()) == ["estimates.tsv", "profiles.png", "profiles.tsv"]


def test_select_models_reads_summaries_and_names_the_best(tmp_path):
    for name, llh, k in (("small", -10.0, 2), ("large", -9.5, 4)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.tsv").write_text(f"key\tvalue\nbest_llh\t{llh}\nn_params\t{k}\nn_data\t30\n")
    selection = tmp_path / "selection"
    best = steps.select(summaries={n: tmp_path / n / "summary.tsv" for n in ("large", "small")},
                        ranking=selection / "ranking.tsv", best=selection / "best.txt")
    assert best == "small"  # 0.5 llh does not pay for 2 more parameters
    assert (tmp_path / "selection" / "best.txt").read_text() == "small\n"
    ranking = pd.read_csv(tmp_path / "selection" / "ranking.tsv", sep="\t")
    assert list(ranking["model"]) == ["small", "large"]
    (tmp_path / "bad.tsv").write_text("key\tvalue\nbest_llh\tmany\n")
    with pytest.raises(DataError, match="bad.tsv"):
        steps.select(summaries={"x": tmp_path / "bad.tsv"}, ranking=tmp_path / "never" / "ranking.tsv",
                     best=tmp_path / "never" / "best.txt")
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------------------- selection


def test_rank_models_by_aicc_and_bic_computed_by_hand(tmp_path):
    ranking = rank_models({"a": (-10.0, 2, 20), "b": (-8.0, 4, 20), "c": (-9.0, 3, 4)})
    # a: AIC 24, AICc 24 + 2·2·3/17, BIC 2 ln 20 + 20; b: AIC 24, AICc 24 + 2·4·5/15, BIC 4 ln 20 + 16;
    # c: n − k − 1 = 0, so AICc is infinite; BIC 3 ln 4 + 18.
    aicc = {"a": 24 + 12 / 17, "b": 24 + 40 / 15, "c": math.inf}
    bic = {"a": 2 * math.log(20) + 20, "b": 4 * math.log(20) + 16, "c": 3 * math.log(4) + 18}
    assert list(ranking["model"]) == ["a", "b", "c"]
    assert ranking["aicc"].tolist() == pytest.approx([aicc[m] for m in "abc"])
    assert ranking["bic"].tolist() == pytest.approx([bic[m] for m in "abc"])
    assert ranking["delta_aicc"].tolist()[:2] == pytest.approx([0.0, aicc["b"] - aicc["a"]])
    w = math.exp(-(aicc["b"] - aicc["a"]) / 2)
    assert ranking["weight"].tolist() == pytest.approx([1 / (1 + w), w / (1 + w), 0.0])
    assert ranking["rank_aicc"].tolist() == [1, 2, 3]
    assert ranking["rank_bic"].tolist() == [2, 3, 1]
    assert ranking["delta_bic"].tolist() == pytest.approx([bic[m] - bic["c"] for m in "abc"])


def test_worker_processes_give_the_same_result_as_one_process(tmp_path):
    """threads = 2 runs starts and profiles in worker processes: the same tables, bit for bit."""
    path = decay_problem(tmp_path / "problem")
    options = dict(starts=2, random_starts=0, seed=4, global_evaluations=2000, n_elements=8)
    one, two = (calibrate_problem(path, threads=n, **options) for n in (1, 2))
    for name in ("starts", "estimates", "profiles", "fit"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name), check_exact=True)


def test_fractional_powers_are_smoothed_only_where_the_base_can_reach_zero():
    x, n, k = sympy.symbols("x n k", real=True)
    eps2 = calibrate_pyomo.SMOOTHING**2
    assert calibrate_pyomo.smooth_powers(sympy.Abs(x) ** n) == (x**2 + eps2) ** (n / 2)
    assert calibrate_pyomo.smooth_powers(x**2 + 10**k) == x**2 + 10**k  # integer power, numeric base
    hill = calibrate_pyomo.smooth_powers(sympy.Abs(x) ** n / (sympy.Abs(x) ** n + k**n))
    # at x = 0 the value is ε^n/(ε^n + k^n) ≈ 0 and the derivative in n is finite
    at_zero = {x: 0, n: 1.5, k: 0.5}
    assert float(hill.subs(at_zero)) == pytest.approx(0.0, abs=1e-11)
    assert math.isfinite(float(sympy.diff(hill, n).subs(at_zero)))
    assert float(hill.subs({x: 0.4, n: 1.5, k: 0.5})) == pytest.approx(0.4**1.5 / (0.4**1.5 + 0.5**1.5), rel=1e-12)


class _KillsItsWorker:
    """Unpickled in a worker process, ends it at once (as SIGKILL or the OOM killer would)."""

    def __reduce__(self):
        import os

        return (os._exit, (9,))


def test_a_worker_process_that_dies_ends_the_run_with_a_clear_error(tmp_path):
    session = open_session(decay_problem(tmp_path), threads=2, **FAST)
    tasks = [("local", k, "test", _KillsItsWorker()) for k in range(2)]
    with pytest.raises(SolverError, match=r"key 'calibrate.threads': found '2', a worker process ended abruptly"):
        calibrate_session._run_tasks(session, tasks, lambda k, result: None)


def test_leaving_the_worker_pool_by_an_exception_ends_its_running_tasks_at_once(tmp_path):
    # SIGTERM and Ctrl-C unwind as exceptions: the pool must not wait for a solve of up to max_cpu_time.
    session = open_session(decay_problem(tmp_path), threads=2, **FAST)
    with pytest.raises(KeyboardInterrupt), session.workers():
        future = session._pool.submit(time.sleep, 60)
        processes = list(session._pool._processes.values())
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            future.result(timeout=1)  # the task is running
        raise KeyboardInterrupt
    assert time.monotonic() - began < 10
    for process in processes:
        process.join(timeout=5)
        assert not process.is_alive()


def test_starts_stopped_before_converging_end_with_the_best_point_and_reached_false(tmp_path, caplog):
    # One fides iteration from each start: none converges, the calibration still ends at the best
    # point found, saying so, and never claims to have reached the optimum.
    result = calibrate_problem(decay_problem(tmp_path), max_iter=1, polish=False, **FAST)
    assert not result.starts["status"].isin(["FTOL", "GTOL", "XTOL"]).any()
    assert result.best_llh == pytest.approx(result.starts["llh"].max(), abs=1e-9)
    assert result.best_llh < _normal_llh(_least_squares()) - 1e-3
    assert not result.reached
    assert result.summary.set_index("key").loc["reached", "value"] == "false"
    assert "stopped without converging" in caplog.text


def test_the_global_job_compiles_the_starts_sensitivity_system_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QSPFLOW_CACHE", str(tmp_path / "cache"))
    path = decay_problem(tmp_path / "problem")
    options = dict(starts=1, random_starts=0, global_evaluations=200, profile=False)
    steps.calibrate_global(problem=path, global_starts=tmp_path / "global.tsv", seed=1, **options)
    # The cache's index of what was compiled (its modules may be this process's from another cache).
    index = tmp_path / "cache" / "simulate" / "inputs"
    compiled = [json.loads(p.read_text())["states"] for p in index.glob("*.json")]
    assert sorted(compiled) == [["x"], ["x", "s_x_k"]]
    steps.calibrate_global(problem=path, global_starts=tmp_path / "other.tsv", seed=1, local_method="transcription",
                           **options)
    assert len(list(index.glob("*.json"))) == 2


# ------------------------------------------------------------------------------ basin hopping


def _away_from_the_optimum(session) -> list:
    """A real start at the decay problem's optimum, and one made to look converged two decades of k
    away from it (a local optimum the decay problem does not have), with its true log-likelihood."""
    real = session.local(0, "lhs", session.spec.nominal)
    x = real.x + 2.0
    llh = session.spec.simulated_llh(x, 60.0)
    return [real, dataclasses.replace(real, start=1, x0=x, x=x, llh=llh, nll=-llh)]


def test_basin_hops_move_to_a_better_optimum_and_stop_after_hops_without_progress(tmp_path):
    session = open_session(decay_problem(tmp_path), threads=1, **{**FAST, "hops": 20, "hop_stall": 3})
    real, away = _away_from_the_optimum(session)
    hopped = session.hop([dataclasses.replace(away, start=0)], time.monotonic())
    # From the made-up optimum every hop (k moved by a normal step of 0.1 × 5 decades) descends to the one
    # optimum: the first becomes the centre. Hop i is drawn from what hops 0..i − HOP_LAG left, so hops
    # 1..HOP_LAG − 1 come from the made-up optimum, which the first hop's gain rejects: hop 1, which ran beside
    # it, stands, and hops 2..HOP_LAG − 1 are abandoned (their starts, 3..HOP_LAG, are not in the table). The
    # next three gain nothing and end the hopping; the HOP_LAG − 1 hops drawn before the third was known run too.
    lag = calibrate_session.HOP_LAG
    assert away.llh < real.llh - calibrate_session.ABANDON_GAIN
    assert [s.origin for s in hopped] == ["lhs", *["hop"] * (3 + lag)]
    assert [s.start for s in hopped] == [0, 1, 2, *range(lag + 1, 2 * lag + 2)]
    for s in hopped[1:]:
        assert s.converged and s.llh == pytest.approx(real.llh, abs=1e-6)
    # the first two hops start from the made-up optimum, the later ones from the first one's optimum
    for s in hopped[1:3]:
        assert abs(s.x0[0] - away.x[0]) < abs(s.x0[0] - hopped[1].x[0])
    for s in hopped[3:]:
        assert abs(s.x0[0] - hopped[1].x[0]) < abs(s.x0[0] - away.x[0])
    result = session.conclude(hopped)
    assert result.reached and result.starts_at_best == 3 + lag
    assert result.best_llh == pytest.approx(real.llh, abs=1e-6)


def test_basin_hops_stop_at_their_budgets(tmp_path):
    session = open_session(decay_problem(tmp_path), threads=1, **{**FAST, "hops": 3, "hop_stall": 100})
    starts = _away_from_the_optimum(session)
    assert [s.origin for s in session.hop(starts, time.monotonic())] == ["lhs", "lhs", "hop", "hop", "hop"]
    late = session.hop(starts, time.monotonic() - session.options.hop_time)
    assert len(late) == 2  # the time was up before the first hop
    # a hop still running at the end stops there: no time is left to verify where it got, so it counts for nothing
    cut = session.local(9, "hop", starts[0].x + 1.0, time.monotonic())
    assert cut.llh == -math.inf and "end of the basin hops" in cut.notes[0]
    off = open_session(decay_problem(tmp_path / "off"), **FAST)
    assert len(off.hop(starts, time.monotonic())) == 2


def test_basin_hops_move_to_a_better_point_that_did_not_converge(tmp_path):
    # One fides iteration per hop: no hop converges, and the first hop's better end still becomes the centre.
    lag = calibrate_session.HOP_LAG
    options = {**FAST, "hops": lag + 2, "hop_stall": 100}
    session = open_session(decay_problem(tmp_path), threads=1, **options)
    _, away = _away_from_the_optimum(session)
    short = open_session(decay_problem(tmp_path / "short"), threads=1, **options, max_iter=1)
    hopped = short.hop([dataclasses.replace(away, start=0)], time.monotonic())
    assert not any(s.converged for s in hopped[1:]) and hopped[1].llh > away.llh + 1.0
    # Hop i's step, replayed from the hops' generator: the one coordinate moved by HOP_SCALE × its bound width
    # (no widening: fewer hops than the step's doubling takes).
    spec = short.spec
    rng = np.random.default_rng((short.options.seed, calibrate_session.HOP_STREAM))
    steps = []
    for _ in range(options["hops"]):
        rng.random(spec.dimension), rng.integers(spec.dimension)
        steps.append(rng.normal(0.0, calibrate_session.HOP_SCALE) * (spec.upper[0] - spec.lower[0]))
    # hop i (start i + 1) is drawn from the best end of hops 0..i − HOP_LAG, the first of them already past `away`
    for i, s in enumerate(hopped[lag + 1:], start=lag):
        origin = max(hopped[1:i - lag + 2], key=lambda h: h.llh)
        assert s.x0[0] == pytest.approx(np.clip(origin.x[0] + steps[i], spec.lower[0], spec.upper[0]), abs=1e-12)
        assert origin.llh > away.llh


def _two_decays_problem(folder: Path) -> Path:
    """dx/dt = −k·x and dy/dt = −j·y, both measured: two modules, k and j each the block of one state."""
    x, y, k, j = sympy.symbols("x y k j", real=True)
    model = OdeModel("two_decays", ["x", "y"], {"k": Parameter("k", 1.0), "j": Parameter("j", 1.0)},
                     {"x": -k * x, "y": -j * y}, {"x": sympy.Integer(1), "y": sympy.Integer(2)})
    times = np.array(TIMES)
    values = np.concatenate([np.exp(-K_TRUE * times), 2.0 * np.exp(-0.2 * times)]) + 0.01
    return write_problem(
        folder, model,
        conditions=pd.DataFrame({"conditionId": ["c"], "x": [1.0]}),
        observables=pd.DataFrame({"observableId": ["obs_x", "obs_y"], "observableFormula": ["x", "y"],
                                  "noiseFormula": [str(SIGMA)] * 2}),
        measurements=pd.DataFrame({"observableId": ["obs_x"] * len(times) + ["obs_y"] * len(times),
                                   "simulationConditionId": "c", "time": np.concatenate([times, times]),
                                   "measurement": values}),
        parameters=pd.DataFrame({"parameterId": ["k", "j"], "parameterScale": "log10", "lowerBound": 1e-3,
                                 "upperBound": 1e2, "nominalValue": 1.0, "estimate": 1}))


def test_every_other_hop_draws_one_blocks_coordinates_anew_over_their_bounds(tmp_path):
    lag = calibrate_session.HOP_LAG
    options = {**FAST, "hops": lag + 4, "hop_stall": 100}
    session = open_session(_two_decays_problem(tmp_path), threads=1, **options, max_iter=1)
    spec = session.spec
    assert spec.blocks == [(0,), (1,)]
    start = session.local(0, "lhs", spec.nominal)
    hopped = session.hop([start], time.monotonic())
    by_hop = {s.start - 1: s for s in hopped[1:]}  # hop i is start i + 1; an abandoned hop is not in the table
    assert len(by_hop) > lag and [s.origin for s in hopped[:1]] == ["lhs"]
    assert all(s.origin == ("block-hop" if i % 2 else "hop") for i, s in by_hop.items())
    # Replayed from the hops' generator, which draws every hop, abandoned or not: hop i is drawn from the best of
    # the start and hops 0..i − HOP_LAG; an odd hop redraws the coordinates of one block uniformly and keeps the rest.
    rng = np.random.default_rng((session.options.seed, calibrate_session.HOP_STREAM))
    width = spec.upper - spec.lower
    for i in range(options["hops"]):
        origin = max([start, *(h for k, h in by_hop.items() if k <= i - lag)], key=lambda h: h.llh)
        if i % 2:
            block = list(spec.blocks[rng.integers(len(spec.blocks))])
            drawn = rng.uniform(spec.lower[block], spec.upper[block])
            kept = [c for c in range(spec.dimension) if c not in block]
            if i in by_hop:
                x0 = by_hop[i].x0
                assert x0[block] == pytest.approx(drawn, abs=1e-12) and x0[kept] == pytest.approx(origin.x[kept])
        else:
            moved = rng.random(spec.dimension) < calibrate_session.HOP_FRACTION
            moved[rng.integers(spec.dimension)] = True
            step = rng.normal(0.0, calibrate_session.HOP_SCALE, spec.dimension) * width
            expected = np.clip(np.where(moved, origin.x + step, origin.x), spec.lower, spec.upper)
            if i in by_hop:
                assert by_hop[i].x0 == pytest.approx(expected, abs=1e-12)


def test_a_fine_stage_that_cannot_simulate_where_the_coarse_one_ended_says_so(tmp_path):
    session = open_session(decay_problem(tmp_path), threads=1, **FAST)
    spec = session.spec
    # rtol 1e-30: no step passes the error test at the exact tolerances, while the coarse stage's (1e-6) converge
    failing = GradientProblem(session.batch, rtol=1e-30, atol=1e-30)
    result = shoot_in_stages(failing, spec.nominal, spec.lower, spec.upper, max_iter=100)
    coarse = shoot(failing.with_tolerances(COARSE_RTOL, COARSE_ATOL), spec.nominal, spec.lower, spec.upper,
                   max_iter=100)
    assert coarse.converged and result.x == pytest.approx(coarse.x)
    assert not result.converged and result.nll == math.inf
    assert result.status == (f"simulation failed at the problem's tolerances where the coarse stage ended "
                             f"({coarse.status}, llh {-coarse.nll:.8g}): condition low: step size underflow "
                             "(the solution may blow up or have a discontinuity in time)")


def _stopped_early(folder: Path) -> tuple:
    """A session with refine_time, a real start at the decay problem's optimum, and three ends made to look as if
    fides had stopped early, 0.5, −0.3 and 0.8 decades of k from it, with their true log-likelihoods."""
    session = open_session(decay_problem(folder), threads=1, **{**FAST, "refine_time": 40.0})
    real, away = _away_from_the_optimum(session)
    points = [real.x + d for d in (0.5, -0.3, 0.8)]
    return session, real, [dataclasses.replace(away, start=k, x0=x, x=x, llh=session.spec.simulated_llh(x, 60.0))
                           for k, x in enumerate(points)]


def test_the_two_best_ends_are_refined_to_the_optimum_within_the_refine_time(tmp_path):
    session, real, ends = _stopped_early(tmp_path)
    refined = session.refine(ends, time.monotonic())
    assert refined[:3] == ends
    assert [(s.start, s.origin, s.method) for s in refined[3:]] == [(3, "refine", "shooting"), (4, "refine", "shooting")]
    # the best two ends (−0.3, then 0.5), each refined from where it ended to the least-squares optimum
    assert [s.x0[0] for s in refined[3:]] == [ends[1].x[0], ends[0].x[0]]
    for s in refined[3:]:
        assert s.converged and s.x[0] == pytest.approx(_least_squares(), abs=1e-6)
        assert s.llh == pytest.approx(_normal_llh(_least_squares()), abs=1e-6)
    result = session.conclude(refined)
    assert result.reached and result.best_llh == pytest.approx(real.llh, abs=1e-6)
    # past hop_time + refine_time no refinement has time left: it counts for nothing
    late = session.refine(ends, time.monotonic() - session.options.hop_time - session.options.refine_time)
    assert [s.llh for s in late[3:]] == [-math.inf, -math.inf]
    for options in ({"local_method": "transcription"}, {"refine_time": 0}):
        other = open_session(decay_problem(tmp_path / "other"), threads=1, **{**FAST, "refine_time": 40.0, **options})
        assert other.refine(ends, time.monotonic()) == ends


def test_an_end_stopped_before_its_verification_is_refined_by_its_methods_own_log_likelihood(tmp_path):
    session, real, ends = _stopped_early(tmp_path)
    # the farthest end as a hop that hop_time stopped before its re-simulation: only its own objective is known,
    # and it ranks that end first; a failed end (no objective either) is never refined
    ends[2] = dataclasses.replace(ends[2], llh=-math.inf, nll=-ends[1].llh - 1.0)
    failed = dataclasses.replace(ends[0], start=3, llh=-math.inf, nll=math.inf)
    refined = session.refine([*ends, failed], time.monotonic())
    assert [s.x0[0] for s in refined[4:]] == [ends[2].x[0], ends[1].x[0]]
    for s in refined[4:]:
        assert s.llh == pytest.approx(_normal_llh(_least_squares()), abs=1e-6)
    assert session.conclude(refined).best_llh == pytest.approx(real.llh, abs=1e-6)


def test_a_best_point_stopped_by_time_a_hair_past_two_converged_ends_is_reached(tmp_path):
    session = open_session(decay_problem(tmp_path), threads=1, **FAST)
    real, _ = _away_from_the_optimum(session)
    ends = [dataclasses.replace(real, start=k) for k in range(2)]
    for gain, reached in ((0.05, True), (0.2, False)):
        stopped = dataclasses.replace(real, start=2, llh=real.llh + gain, status="MAXTIME", converged=False)
        assert calibrate_session._reached([*ends, stopped], stopped) is reached
    assert not calibrate_session._reached([ends[0], stopped], stopped)


def test_a_shooting_optimum_has_as_long_to_verify_as_its_solve_took_and_at_least_the_floor(tmp_path, monkeypatch):
    session = open_session(decay_problem(tmp_path), threads=1, **FAST)
    budgets = []
    monkeypatch.setattr(session.spec, "simulated_llh", lambda x, seconds: budgets.append(seconds) or -math.inf)
    result = session.local(0, "lhs", session.spec.nominal)
    assert result.seconds < calibrate_session.RESIMULATION_FLOOR  # the decay problem solves in milliseconds
    assert budgets == [calibrate_session.RESIMULATION_FLOOR]
    assert "ran out of its 10 s (the solve's time, at least 10 s" in result.notes[0]
    session.local(1, "lhs", session.spec.nominal, time.monotonic() + 3.0)
    assert 2.0 < budgets[1] <= 3.0  # the end of the hops comes first


def test_basin_hops_do_not_depend_on_threads(tmp_path):
    path = decay_problem(tmp_path)
    runs = []
    for threads in (1, 2):
        session = open_session(path, threads=threads, **{**FAST, "hops": 5, "hop_stall": 100})
        with session.workers():
            runs.append(session.starts_table(session.hop(_away_from_the_optimum(session), time.monotonic())))
    pd.testing.assert_frame_equal(runs[0], runs[1])
    assert list(runs[0]["origin"]) == ["lhs", "lhs", *["hop"] * 5]


def test_hops_drawn_from_a_centre_a_gain_rejected_are_abandoned_whatever_the_threads(tmp_path, caplog):
    caplog.set_level("INFO", logger="qspflow.calibrate")
    path = decay_problem(tmp_path)
    lag = calibrate_session.HOP_LAG
    runs = []
    for threads in (1, 2):
        session = open_session(path, threads=threads, **{**FAST, "hops": lag + 2, "hop_stall": 100})
        real, away = _away_from_the_optimum(session)
        with session.workers():
            runs.append(session.starts_table(session.hop([dataclasses.replace(away, start=0)], time.monotonic())))
    pd.testing.assert_frame_equal(runs[0], runs[1])
    # Hop 0 gains more than ABANDON_GAIN on the made-up optimum; hops 1..HOP_LAG − 1 were drawn from it, and
    # all but hop 1, which ran beside it, are abandoned.
    assert list(runs[0]["start"]) == [0, 1, 2, lag + 1, lag + 2]
    assert runs[0]["llh"].iloc[1:].to_numpy() == pytest.approx(real.llh, abs=1e-6)
    assert f"basin hop 2 (start 3) abandoned: drawn from llh {away.llh:.8g}, a centre the hops before hop 1 " \
           f"raised to {real.llh:.8g}" in caplog.text


def test_a_hop_stops_in_its_worker_once_it_is_abandoned(tmp_path):
    session = open_session(decay_problem(tmp_path), threads=2, **{**FAST, "hops": 2})
    x0, end = session.spec.nominal + 1.0, time.monotonic() + 60.0
    with session.workers():
        runner = calibrate_session._Runner(session, session._pool, 2)
        runner.abandon(0)
        runner.submit(0, ("hopped", 7, "hop", x0, end, 0))
        runner.submit(1, ("hopped", 8, "hop", x0, end, 1))
        ended = {}
        while runner.busy:
            ended.update(runner.collect())
    assert ended[0] is None
    assert ended[1].converged and ended[1].start == 8
    # in this process a hop is never stopped: hops run one at a time, and one abandoned is not begun
    assert session.hopped(7, "hop", x0, end, 0).converged
    with pytest.raises(Abandoned):
        shoot(session.gradient, x0, session.spec.lower, session.spec.upper, max_iter=10, stop=lambda: True)


def test_the_scaling_factor_is_found_and_its_closed_form_optimum_is_the_likelihoods(network):
    spec, batch = network
    assert [spec.names[i] for i in spec.scalings] == ["scale"]  # not sd_x (noise), A0 (dynamics) or the rest
    i = spec.names.index("scale")
    points = np.array([spec.nominal + 0.05, spec.nominal - 0.05])
    optimal = batch.optimal_scalings(points)
    for x, best in zip(points, optimal):
        def nll(s, x=x):
            return -log_likelihood(spec.problem, spec.linear(np.where(np.arange(spec.dimension) == i, s, x)))
        found = minimize_scalar(nll, bounds=(spec.lower[i], spec.upper[i]), method="bounded",
                                options={"xatol": 1e-10})
        assert best[i] == pytest.approx(found.x, abs=1e-6)
        assert np.array_equal(np.delete(best, i), np.delete(x, i))  # the other parameters untouched
    # the objective at the optimum, whatever the point holds for the factor
    elsewhere = optimal.copy()
    elsewhere[:, i] = spec.upper[i]
    assert batch.objective(elsewhere, optimal_scalings=True) == pytest.approx(batch.objective(optimal), rel=1e-12)
    assert np.all(batch.objective(elsewhere) > batch.objective(optimal) + 1)


def test_a_scaling_optimum_outside_the_bounds_is_clipped_to_them(tmp_path):
    model = OdeModel("constant", ["x"], {"k": Parameter("k", 1.0)}, {"x": sympy.Integer(0) * sympy.Symbol("k")},
                     {"x": sympy.Symbol("k", real=True)})
    measurements = pd.DataFrame({"observableId": "obs", "simulationConditionId": "c", "time": [1.0, 2.0],
                                 "measurement": [30.0, 50.0], "observableParameters": "s", "noiseParameters": 1.0})
    path = write_problem(
        tmp_path, model, conditions=pd.DataFrame({"conditionId": ["c"]}),
        observables=pd.DataFrame({"observableId": ["obs"], "observableFormula": ["observableParameter1_obs * x"],
                                  "noiseFormula": ["noiseParameter1_obs"]}),
        measurements=measurements,
        parameters=pd.DataFrame({"parameterId": ["k", "s"], "parameterScale": ["lin", "log10"],
                                 "lowerBound": [0.5, 0.1], "upperBound": [2.0, 10.0], "nominalValue": [1.0, 1.0],
                                 "estimate": [1, 1]}))
    spec = CalibrationSpec(load_problem(path))
    batch = BatchProblem(spec, threads=1)
    # x = k: the optimum s = 40 / k lies above 10 for k = 1 and inside for k = 2 (s = 20 > 10 too) …
    assert batch.optimal_scalings(np.array([[1.0, 0.0], [2.0, 0.0]]))[:, 1] == pytest.approx([1.0, 1.0])
    measurements["measurement"] = [3.0, 5.0]  # … and 4 / k inside: 4, 2
    measurements.to_csv(tmp_path / "measurements.tsv", sep="\t", index=False)
    batch = BatchProblem(CalibrationSpec(load_problem(path)), threads=1)
    assert batch.optimal_scalings(np.array([[1.0, 0.0], [2.0, 0.0]]))[:, 1] == pytest.approx(np.log10([4.0, 2.0]))


@pytest.mark.parametrize("optimal_scalings, local_phase", [(True, False), (False, False), (True, True)])
def test_the_starts_begin_with_their_scaling_factor_at_its_optimum(network, tmp_path, optimal_scalings, local_phase):
    spec, batch = network
    path = _network_problem(tmp_path)
    table = open_session(path, starts=2, random_starts=2, global_evaluations=300, seed=1,
                         optimal_scalings=optimal_scalings, local_phase=local_phase).global_starts()
    assert ("ess-local" in set(table["origin"])) == local_phase
    points = table[[f"initial:{n}" for n in spec.names]].to_numpy()
    at_optimum = np.isclose(points, batch.optimal_scalings(points), rtol=0, atol=1e-12).all(axis=1)
    assert at_optimum.all() == optimal_scalings
    assert table["objective"].to_numpy() == pytest.approx(batch.objective(points), rel=1e-12)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_a_calibration_at_once_leaving_out_as_it_was(tmp_path, signum):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "qspflow.cli", "calibrate", str(decay_problem(tmp_path)), "--threads", "2",
               "--global", "none", "--hops", "100", "--hop-stall", "100", "--hop-time", "120", "--no-profile",
               "--verbose", "--out", str(out)]
    # SIGINT as a terminal sends it: a background job (CI's) inherits it ignored, and Python then ignores it too
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in process.stderr:
        if "basin hopping from" in line:  # worker processes are solving hops
            break
    time.sleep(1)
    began = time.monotonic()
    process.send_signal(signum)
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 128 + signum
    assert time.monotonic() - began < 10
    assert "Traceback" not in stderr and ("qspflow: interrupted" in stderr) == (signum == signal.SIGINT)
    assert not out.exists()
