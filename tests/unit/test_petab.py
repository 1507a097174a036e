"""PEtab problems: published log-likelihoods and simulations, an analytic problem, bad input."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sympy

from qspflow.calibrate.spec import CalibrationSpec
from qspflow.errors import PetabError
from qspflow.model import TIME, OdeModel, Parameter, symbol
from qspflow.model.sbml import write_sbml
from qspflow.petab import NumericModel, load_problem, log_likelihood, simulate_problem
from qspflow.steps import in_folder
from qspflow.steps.petab import FILES, petab_llh, petab_simulate

BOEHM = "petab/Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml"
FUJITA = "petab/Fujita_SciSignal2010/Fujita_SciSignal2010.yaml"


@pytest.fixture(scope="module")
def boehm(cases):
    return load_problem(cases / BOEHM)


def test_boehm_log_likelihood_is_the_published_value(boehm):
    assert log_likelihood(boehm) == pytest.approx(-138.22199693517703, abs=1e-3)


def test_fujita_log_likelihood_with_piecewise_inputs_is_the_published_value(cases):
    assert log_likelihood(load_problem(cases / FUJITA)) == pytest.approx(53.08377736998929, abs=1e-3)


def test_boehm_simulation_table_matches_the_published_one(boehm, cases):
    ours = simulate_problem(boehm)
    reference = pd.read_csv(cases / BOEHM.replace("Boehm_JProteomeRes2014.yaml",
                                                  "simulatedData_Boehm_JProteomeRes2014.tsv"), sep="\t")
    a, b = ours["simulation"].to_numpy(), reference["simulation"].to_numpy()

    assert list(ours.columns) == [c if c != "measurement" else "simulation" for c in boehm.measurement_table]
    assert list(ours["observableId"]) == list(reference["observableId"])
    assert np.allclose(ours["time"], reference["time"])
    assert np.all(a[b == 0] == 0)
    assert np.max(np.abs(a - b)[b != 0] / np.abs(b[b != 0])) <= 1e-5


def test_parameter_table_is_applied_onto_the_model(boehm):
    k_phos = boehm.model.parameters["k_phos"]
    assert (k_phos.value, k_phos.lower, k_phos.upper, k_phos.scale, k_phos.estimate) == (
        15766.5070195731, 1e-5, 1e5, "log10", True)
    assert boehm.model.parameters["ratio"].estimate is False
    assert boehm.parameters["k_phos"] is k_phos
    assert "sd_pSTAT5A_rel" in boehm.parameters and "sd_pSTAT5A_rel" not in boehm.model.parameters
    # A noise parameter given by id: doubling σ changes the likelihood as the formula says.
    simulated = simulate_problem(boehm)
    rows = simulated["observableId"] == "pSTAT5A_rel"
    r = (boehm.measurement_table["measurement"] - simulated["simulation"])[rows].to_numpy()
    sigma = boehm.parameters["sd_pSTAT5A_rel"].value
    change = sum(-math.log(2) - 0.5 * (ri / (2 * sigma)) ** 2 + 0.5 * (ri / sigma) ** 2 for ri in r)
    doubled = log_likelihood(boehm, {"sd_pSTAT5A_rel": 2 * sigma})
    assert doubled == pytest.approx(log_likelihood(boehm) + change, rel=1e-12)


# -------------------------------------------------------------------- a problem solved by hand

K_OUT, X0, SCALE, SD_LOG = 0.5, 0.5, 1.7, 0.1


def turnover_problem(folder: Path, **tables: pd.DataFrame) -> Path:
    """dx/dt = k_in - k_out·x, x(0) = x0, as a PEtab problem; `tables` replace the default ones."""
    x, k_in, k_out, x0 = (symbol(n) for n in ("x", "k_in", "k_out", "x0"))
    # k_out's model value is not the nominal one: the parameter table must win.
    parameters = {"k_in": Parameter("k_in", 1.0), "k_out": Parameter("k_out", 9.0), "x0": Parameter("x0", X0)}
    write_sbml(OdeModel("turnover", ["x"], parameters, {"x": k_in - k_out * x}, {"x": x0}), folder / "model.xml")
    default = {
        "conditions": pd.DataFrame({
            "conditionId": ["pre", "on", "off", "off_reset"],
            "k_in": [1.0, 2.0, 0.0, 0.0],
            "x": [math.nan, math.nan, math.nan, 3.0],
        }),
        "observables": pd.DataFrame({
            "observableId": ["obs_lin", "obs_log", "obs_l10"],
            "observableFormula": ["observableParameter1_obs_lin * x", "x", "x"],
            "noiseFormula": ["noiseParameter1_obs_lin", "sd_log", "noiseParameter1_obs_l10 * x"],
            "observableTransformation": ["lin", "log", "log10"],
            "noiseDistribution": ["normal", "normal", "laplace"],
        }),
        "measurements": pd.DataFrame({
            "observableId": ["obs_lin", "obs_lin", "obs_log", "obs_l10", "obs_l10", "obs_lin"],
            "preequilibrationConditionId": ["", "", "pre", "pre", "pre", "pre"],
            "simulationConditionId": ["on", "on", "off", "off", "off_reset", "off_reset"],
            "time": [0.0, 1.5, 1.0, 2.0, 0.5, 1.0],
            "measurement": [0.9, 3.0, 1.5, 0.8, 2.0, 4.0],
            "observableParameters": ["scale", "2.0", "", "", "", "scale"],
            "noiseParameters": ["0.2", "0.3", "", "0.05", "0.05", "0.2"],
        }),
        "parameters": pd.DataFrame({
            "parameterId": ["k_out", "x0", "scale", "sd_log"],
            "parameterScale": ["log10", "lin", "lin", "log10"],
            "lowerBound": [1e-3, 0, 0, 1e-3],
            "upperBound": [1e3, 10, 10, 1e3],
            "nominalValue": [K_OUT, X0, SCALE, SD_LOG],
            "estimate": [1, 0, 1, 1],
        }),
    }
    default.update(tables)
    for name, table in default.items():
        table.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
    (folder / "problem.yaml").write_text(
        "format_version: 1\n"
        "parameter_file: parameters.tsv\n"
        "problems:\n"
        "- condition_files: [conditions.tsv]\n"
        "  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n"
        "  sbml_files: [model.xml]\n")
    return folder / "problem.yaml"


def turnover_simulation() -> list[float]:
    """The turnover problem's observables at its measurement rows, solved by hand."""

    def x(t, start, k_in):
        return k_in / K_OUT + (start - k_in / K_OUT) * math.exp(-K_OUT * t)

    steady = 1.0 / K_OUT  # preequilibration under k_in = 1, then k_in = 0 ("off")
    return [SCALE * x(0, X0, 2), 2.0 * x(1.5, X0, 2), x(1, steady, 0), x(2, steady, 0), x(0.5, 3, 0),
            SCALE * x(1, 3, 0)]  # "off_reset" overrides the preequilibrated x with 3


def turnover_log_likelihood(m: np.ndarray) -> float:
    """The turnover problem's log-likelihood of measurements `m`, by hand."""
    y = np.array(turnover_simulation())
    normal = [(m[i] - y[i], s) for i, s in ((0, 0.2), (1, 0.3), (5, 0.2))]
    expected_llh = sum(-0.5 * (math.log(2 * math.pi * s**2) + (r / s) ** 2) for r, s in normal)
    r = math.log(m[2]) - math.log(y[2])  # log-normal: Jacobian term −log(m)
    expected_llh += -0.5 * (math.log(2 * math.pi * SD_LOG**2) + (r / SD_LOG) ** 2) - math.log(m[2])
    for i in (3, 4):  # log10-Laplace, σ = 0.05 · y: Jacobian term −log(m · ln 10)
        b = 0.05 * y[i]
        r = math.log10(m[i]) - math.log10(y[i])
        expected_llh += -(math.log(2 * b) + abs(r) / b) - math.log(m[i] * math.log(10))
    return expected_llh


def test_turnover_problem_matches_the_analytic_solution(tmp_path):
    problem = load_problem(turnover_problem(tmp_path))
    simulated = simulate_problem(problem)["simulation"].to_numpy()
    assert simulated == pytest.approx(turnover_simulation(), rel=1e-8)
    m = problem.measurement_table["measurement"].to_numpy()
    assert log_likelihood(problem) == pytest.approx(turnover_log_likelihood(m), rel=1e-8)


def test_petab_steps_write_the_analytic_simulation_and_return_the_llh(tmp_path):
    path = turnover_problem(tmp_path)
    outputs = in_folder(tmp_path / "out", FILES)
    petab_simulate(problem=path, **outputs)

    table = pd.read_csv(outputs["simulation"], sep="\t", keep_default_na=False)
    measurements = pd.read_csv(path.parent / "measurements.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == [c if c != "measurement" else "simulation" for c in measurements]
    assert table["simulation"].to_numpy() == pytest.approx(turnover_simulation(), rel=1e-8)
    m = measurements["measurement"].to_numpy(dtype=float)
    posterior, llh = petab_llh(problem=path)
    assert llh == pytest.approx(turnover_log_likelihood(m), rel=1e-8)
    assert posterior == llh  # no objective priors


# ------------------------------------------------------------------------------- bad input


def test_missing_column_names_the_table_and_column(tmp_path):
    measurements = pd.read_csv(turnover_problem(tmp_path).parent / "measurements.tsv", sep="\t")
    path = turnover_problem(tmp_path, measurements=measurements.drop(columns="time"))
    with pytest.raises(PetabError, match=r"measurements\.tsv, column 'time': expected a required column"):
        load_problem(path)


def test_unknown_observable_names_the_measurement_row(tmp_path):
    measurements = pd.read_csv(turnover_problem(tmp_path).parent / "measurements.tsv", sep="\t",
                               keep_default_na=False)
    measurements.loc[3, "observableId"] = "obs_unknown"  # data row 4 is line 5 of the file
    with pytest.raises(PetabError, match=r"measurements\.tsv, row 5, column 'observableId': .*'obs_unknown'"):
        load_problem(turnover_problem(tmp_path, measurements=measurements))


def test_a_nominal_value_outside_the_bounds_is_evaluated_with_a_warning(tmp_path, caplog):
    """The PEtab spec does not forbid it (Lang, Perelson, Zhao of the benchmark collection have them)."""
    parameters = pd.read_csv(turnover_problem(tmp_path).parent / "parameters.tsv", sep="\t")
    parameters.loc[2, "upperBound"] = 1.0  # scale: nominal 1.7
    path = turnover_problem(tmp_path, parameters=parameters)
    with caplog.at_level(logging.WARNING, logger="qspflow"):
        problem = load_problem(path)
    assert re.search(r"parameters\.tsv, row 4: the nominal value 1\.7 of 'scale' is outside its bounds \[0, 1\]",
                     caplog.text)
    m = problem.measurement_table["measurement"].to_numpy()
    assert log_likelihood(problem) == pytest.approx(turnover_log_likelihood(m), rel=1e-8)
    # A calibration starts inside the bounds: the nominal point it may start from is moved into them.
    spec = CalibrationSpec(problem)
    assert spec.nominal[spec.names.index("scale")] == 1.0
    assert np.all((spec.lower <= spec.nominal) & (spec.nominal <= spec.upper))


def test_lint_failures_are_passed_on_with_the_file_on_one_line(tmp_path):
    parameters = pd.read_csv(turnover_problem(tmp_path).parent / "parameters.tsv", sep="\t")
    unused = pd.DataFrame({"parameterId": ["unused"], "parameterScale": ["lin"], "lowerBound": [0.0],
                           "upperBound": [1.0], "nominalValue": [0.5], "estimate": [0]})
    path = turnover_problem(tmp_path, parameters=pd.concat([parameters, unused]))
    with pytest.raises(PetabError) as caught:
        load_problem(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: PEtab lint failed") and "unused" in message and "\n" not in message


def test_lint_does_not_warn_about_the_optional_visualization_table(tmp_path, caplog):
    with caplog.at_level("WARNING"):
        load_problem(turnover_problem(tmp_path))
    assert [r.getMessage() for r in caplog.records] == []


def test_a_parameter_missing_from_the_table_is_named_where_a_formula_uses_it(tmp_path):
    parameters = pd.read_csv(turnover_problem(tmp_path).parent / "parameters.tsv", sep="\t")
    path = turnover_problem(tmp_path, parameters=parameters[parameters.parameterId != "sd_log"])
    with pytest.raises(PetabError, match=r"observables\.tsv, row 3, column 'noiseFormula', element 'obs_log': "
                                         r"expected a model id, .*found 'sd_log'"):
        load_problem(path)


@pytest.mark.parametrize(("time", "found"), [(-1.0, "-1.0"), (math.nan, None)])
def test_a_measurement_before_time_zero_is_refused_naming_the_row(tmp_path, time, found):
    measurements = pd.read_csv(turnover_problem(tmp_path).parent / "measurements.tsv", sep="\t",
                               keep_default_na=False)
    measurements.loc[2, "time"] = time  # data row 3 is line 4 of the file
    with pytest.raises(PetabError, match=r"measurements\.tsv, row 4, column 'time': expected a number ≥ 0") as caught:
        load_problem(turnover_problem(tmp_path, measurements=measurements))
    assert (f"found '{found}'" if found else "the cell is empty") in str(caught.value)


def test_a_steady_state_measurement_time_inf_is_accepted(tmp_path):
    measurements = pd.read_csv(turnover_problem(tmp_path).parent / "measurements.tsv", sep="\t",
                               keep_default_na=False)
    measurements.loc[0, "time"] = math.inf  # under "on" (k_in = 2) from x0: x → k_in / k_out
    problem = load_problem(turnover_problem(tmp_path, measurements=measurements))
    assert simulate_problem(problem)["simulation"].iat[0] == pytest.approx(SCALE * 2 / K_OUT, rel=1e-7)


@pytest.mark.parametrize(("column", "value", "words"), [
    ("nominalValue", "abc", "column 'nominalValue', element 'scale': expected a number, found 'abc'"),
    ("estimate", "yes", "column 'estimate', element 'scale': expected 0 or 1, found 'yes'"),
    ("upperBound", "ten", "column 'upperBound', element 'scale': expected a number, found 'ten'"),
    ("lowerBound", "5", "column 'lowerBound', element 'scale': expected lowerBound ≤ upperBound, found '5 > 1'"),
    ("parameterScale", "ln", "column 'parameterScale', element 'scale': expected one of"),
])
def test_parameter_cells_are_checked_naming_row_and_column(tmp_path, column, value, words):
    parameters = pd.read_csv(turnover_problem(tmp_path).parent / "parameters.tsv", sep="\t", dtype=str)
    parameters.loc[2, "upperBound"] = "1"  # scale's nominal 1.7 would be outside [5, 1] too: the bounds are blamed
    parameters.loc[2, "nominalValue"] = "0.5"
    parameters.loc[2, column] = value
    with pytest.raises(PetabError) as caught:
        load_problem(turnover_problem(tmp_path, parameters=parameters))
    assert str(caught.value).startswith(f"{tmp_path / 'parameters.tsv'}, row 4, {words}")


def test_an_estimated_log_parameter_needs_positive_bounds(tmp_path):
    parameters = pd.read_csv(turnover_problem(tmp_path).parent / "parameters.tsv", sep="\t")
    parameters.loc[0, "lowerBound"] = 0.0  # k_out, log10, estimated
    with pytest.raises(PetabError, match=r"row 2, column 'lowerBound', element 'k_out': expected a bound > 0 "
                                         r"for a log10-scaled parameter, found '0.0'"):
        load_problem(turnover_problem(tmp_path, parameters=parameters))


@pytest.mark.parametrize(("text", "words"), [
    ("- format_version: 1\n", "expected a mapping with the keys format_version, parameter_file and problems, "
                                "found a list of 1"),
    ("format_version: 1\nproblems: [\n", "line 3, column 1: expected valid YAML"),
    ("format_version: !!python/object/apply:os.system ['true']\n",
     "line 1, column 17: expected plain YAML data (no tags), found '!!python/object/apply:os.system'"),
    ("format_version: 2\n", "key 'format_version': expected 1 (PEtab version 1), found '2'"),
])
def test_problem_yaml_errors_name_the_line_or_key(tmp_path, text, words):
    path = tmp_path / "problem.yaml"
    path.write_text(text)
    with pytest.raises(PetabError) as caught:
        load_problem(path)
    assert str(caught.value).startswith(str(path)) and words in str(caught.value)


def test_parameter_values_are_the_petab_librarys_numbers(boehm):
    """The checked text cells give the same floats as the PEtab library's round-trip parser."""
    table = boehm.parameter_table
    for name, parameter in boehm.parameters.items():
        assert (parameter.value, parameter.lower, parameter.upper) == tuple(
            table.loc[name, c] for c in ("nominalValue", "lowerBound", "upperBound"))


def test_jacobian_is_finite_where_a_hill_term_is_not_differentiable():
    """d|u|^n/du at u = 0 is 0/0 in sympy's form; the integrator gets 0 there (as the compiled simulator)."""
    u, x, n = (symbol(name) for name in ("u", "x", "n"))
    model = OdeModel("hill", ["u", "x"], {"n": Parameter("n", 1.5)},
                     {"u": -u, "x": sympy.Abs(u) ** n / (sympy.Abs(u) ** n + 0.125) - x}, {"u": 0, "x": 0})
    numeric = NumericModel(model)
    at_zero = numeric.jac(0.0, np.zeros(2), np.array([1.5]))
    assert np.isfinite(at_zero).all()
    assert at_zero.tolist() == [[-1.0, 0.0], [0.0, -1.0]]
    away = numeric.jac(0.0, np.array([0.5, 0.0]), np.array([1.5]))
    expected = 1.5 * 0.5**0.5 * 0.125 / (0.5**1.5 + 0.125) ** 2  # d/du u^n/(u^n + c) at u = 0.5
    assert away[1, 0] == pytest.approx(expected, rel=1e-12)


def test_a_noise_formula_may_hold_the_observables_placeholders(tmp_path):
    """PEtab 1 (PEtab-dev/PEtab#574, the linter since libpetab#231): observableParameter placeholders in a
    noise formula take the row's observableParameters, as in Raia_CancerResearch2011."""
    observables = pd.read_csv(turnover_problem(tmp_path).parent / "observables.tsv", sep="\t", keep_default_na=False)
    observables.loc[0, "noiseFormula"] = "noiseParameter1_obs_lin * observableParameter1_obs_lin"
    problem = load_problem(turnover_problem(tmp_path, observables=observables))
    assert [h.name for h in problem.observables["obs_lin"].observable_placeholders] == ["observableParameter1_obs_lin"]
    m = problem.measurement_table["measurement"].to_numpy()
    y = turnover_simulation()
    # σ = noiseParameter · observableParameter: rows 1, 2, 6 have (0.2, scale), (0.3, 2.0), (0.2, scale).
    change = 0.0
    for i, noise, factor in ((0, 0.2, SCALE), (1, 0.3, 2.0), (5, 0.2, SCALE)):
        r = m[i] - y[i]
        change += -math.log(factor) - 0.5 * (r / (noise * factor)) ** 2 + 0.5 * (r / noise) ** 2
    assert log_likelihood(problem) == pytest.approx(turnover_log_likelihood(m) + change, rel=1e-8)
    sigma = CalibrationSpec(problem).experiments[0].measurements[0].sigma
    assert {s.name for s in sigma.free_symbols} == {"scale"}  # the placeholder is the estimated 'scale'


def test_breakpoints_are_found_where_a_condition_is_linear_in_time():
    """Isensee's `Fsk_time - time > 0`, Chen's `time - 1799.99 < 0`: the integrator restarts there."""
    t_on, x = symbol("t_on"), symbol("x")
    step = sympy.Piecewise((0, t_on - TIME > 0), (1, True))
    ramp = sympy.Piecewise((0, TIME - 1799.99 < 0), (1, True))
    ignored = sympy.Piecewise((1, x * TIME > 1), (0, True))
    model = OdeModel("steps", ["x"], {"t_on": Parameter("t_on", 60.0)}, {"x": step + ramp + ignored - x}, {"x": 0})
    assert model.breakpoints() == [1799.99]
    assert model.breakpoints({"t_on": 60.0}) == [60.0, 1799.99]


def test_a_simulation_past_its_time_budget_gives_minus_infinity_naming_the_condition(boehm, caplog):
    # The calibration's verification of a start has a budget (calibrate.max_cpu_time): at some parameters
    # LSODA crawls for hours (Weber_BMC2015, a steady state). Here a budget no simulation meets.
    assert log_likelihood(boehm, max_seconds=0.0) == -math.inf
    assert "simulation failed (still integrating at t = 0 when its time ran out)" in caplog.text
    assert log_likelihood(boehm, max_seconds=60.0) == pytest.approx(-138.22199693517703, abs=1e-3)
