"""Sensitivity analysis (`qspflow.sensitivity`): SALib's Sobol indices against the analytic values
of Ishigami and Sobol's g-function, Morris ranking, the convergence flag, ranges and chunking."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from qspflow.errors import ConfigError
from qspflow.sensitivity import (
    COLUMNS,
    ParameterRange,
    analyze_morris,
    analyze_sobol,
    chunk_rows,
    linear_matrix,
    parameter_ranges,
    sample,
    sensitivity_options,
    summary_table,
)
from test_outputs import one_compartment_problem  # tests/unit is on sys.path (pytest prepend import mode)

OUTPUT = [{"name": "y", "kind": "value", "of": "x", "time": 1.0}]


def options(**given):
    return sensitivity_options({"outputs": OUTPUT, **given})


def run_sobol(f, ranges, n, seed=1, **given):
    """The step's path: sample on the scales, to linear, evaluate, analyze."""
    opts = options(method="sobol", sobol_n=n, **given)
    X = sample(ranges, opts, seed=seed)["sobol"]
    Y = f(linear_matrix(ranges, X))[:, None]
    return analyze_sobol([r.name for r in ranges], Y, ["y"], opts, seed=seed)


def ishigami(P, a=7.0, b=0.1):
    return np.sin(P[:, 0]) + a * np.sin(P[:, 1]) ** 2 + b * P[:, 2] ** 4 * np.sin(P[:, 0])


def ishigami_indices(a=7.0, b=0.1):
    pi = math.pi
    v1 = b * pi**4 / 5 + b**2 * pi**8 / 50 + 0.5
    v2 = a**2 / 8
    v13 = 8 * b**2 * pi**8 / 225
    v = v1 + v2 + v13
    return {"S1": [v1 / v, v2 / v, 0.0], "ST": [(v1 + v13) / v, v2 / v, v13 / v]}


G_A = np.array([0.0, 0.5, 3.0, 9.0, 99.0, 99.0])


def g_function(P):
    return np.prod((np.abs(4 * P - 2) + G_A) / (1 + G_A), axis=1)


def g_indices():
    vi = 1 / (3 * (1 + G_A) ** 2)
    v = np.prod(1 + vi) - 1
    return {"S1": list(vi / v), "ST": [vi[i] * np.prod(np.delete(1 + vi, i)) / v for i in range(len(G_A))]}


def lin_ranges(bounds):
    return [ParameterRange(f"x{i + 1}", "lin", (lo + hi) / 2, lo, hi, "config") for i, (lo, hi) in enumerate(bounds)]


def within_ci(table, expected, names):
    for index, values in expected.items():
        for name, value in zip(names, values):
            row = table[(table["index"] == index) & (table["parameter"] == name)].iloc[0]
            assert row.ci_low <= value <= row.ci_high, (index, name, value, row.ci_low, row.ci_high)


def test_sobol_matches_ishigami_within_the_reported_cis():
    ranges = lin_ranges([(-math.pi, math.pi)] * 3)
    table = run_sobol(ishigami, ranges, 8192)
    assert list(table.columns) == COLUMNS
    within_ci(table, ishigami_indices(), ["x1", "x2", "x3"])


def test_sobol_matches_the_g_function_within_the_reported_cis():
    ranges = lin_ranges([(0.0, 1.0)] * 6)
    table = run_sobol(g_function, ranges, 8192)
    within_ci(table, g_indices(), [f"x{i}" for i in range(1, 7)])
    st = table[table["index"] == "ST"].set_index("parameter")["value"]
    assert st["x1"] > st["x2"] > st["x3"] > st["x4"] > max(st["x5"], st["x6"])


def test_sobol_second_order_gives_each_pair_once():
    ranges = lin_ranges([(-math.pi, math.pi)] * 3)
    table = run_sobol(ishigami, ranges, 4096, second_order=True)
    s2 = table[table["index"] == "S2"].set_index("parameter")
    assert sorted(s2.index) == ["x1:x2", "x1:x3", "x2:x3"]
    assert s2.loc["x1:x3", "ci_low"] <= ishigami_indices()["ST"][2] <= s2.loc["x1:x3", "ci_high"]


def test_morris_ranks_a_known_linear_function_exactly():
    ranges = lin_ranges([(0.0, 1.0)] * 4)
    opts = options(method="morris", morris_trajectories=10)
    X = sample(ranges, opts, seed=3)["morris"]
    Y = (X @ np.array([10.0, -5.0, 1.0, 0.0]))[:, None]
    table = analyze_morris([r.name for r in ranges], X, Y, ["y"], opts, seed=3).set_index(["index", "parameter"])
    np.testing.assert_allclose(table.loc["mu_star", "value"].to_numpy(), [10.0, 5.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(table.loc["mu", "value"].to_numpy(), [10.0, -5.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(table.loc["sigma", "value"].to_numpy(), 0.0, atol=1e-12)
    assert table.loc["mu_star", "converged"].all()
    assert table.loc["sigma", "converged"].isna().all()


def test_convergence_flag_is_false_for_a_too_small_sample_and_the_log_says_which(caplog):
    ranges = lin_ranges([(-math.pi, math.pi)] * 3)
    with caplog.at_level(logging.WARNING, logger="qspflow.sensitivity"):
        small = run_sobol(ishigami, ranges, 8, seed=5)
    late = small[~small["converged"].astype(bool)]
    assert not late.empty
    for row in late.itertuples():
        assert f"{row.index} of {row.parameter} for y not converged" in caplog.text
    large = run_sobol(lambda P: P[:, 0] + 2 * P[:, 1] + 0.5 * P[:, 2], ranges, 4096)
    assert large["converged"].all()


def test_an_output_with_failed_simulations_gets_no_indices_and_the_others_do(caplog):
    ranges = lin_ranges([(0.0, 1.0)] * 2)
    opts = options(method="sobol", sobol_n=16)
    X = sample(ranges, opts, seed=1)["sobol"]
    Y = np.column_stack([X[:, 0], X[:, 1]])
    Y[[3, 7], 1] = np.nan
    table = analyze_sobol(["x1", "x2"], Y, ["a", "b"], opts, seed=1)
    assert table[table["output"] == "b"]["value"].isna().all()
    assert table[table["output"] == "a"]["value"].notna().all()
    assert "2 of 64 sobol simulations of b failed" in caplog.text
    summary = summary_table({"sobol": Y}, ["a", "b"])
    assert summary.to_dict("list") == {"method": ["sobol", "sobol"], "output": ["a", "b"], "samples": [64, 64],
                                       "failed": [0, 2]}


def test_samples_are_the_same_for_the_same_seed_and_on_the_log_scale():
    problem = one_compartment_problem()
    opts = options(factor=4.0)
    ranges = parameter_ranges(problem, opts)
    assert [r.name for r in ranges] == ["k", "x0"]  # estimated model parameters; sigma (noise) left out
    first, again = sample(ranges, opts, seed=7), sample(ranges, opts, seed=7)
    for method in ("morris", "sobol"):
        assert first[method].tobytes() == again[method].tobytes()
    k = first["sobol"][:, 0]
    assert k.min() >= math.log10(0.5 / 4) and k.max() <= math.log10(0.5 * 4)  # log10 k, uniform in log space
    assert first["sobol"].shape == (1024 * 4, 2)


def test_ranges_from_ci_fall_back_to_the_factor_and_say_so(caplog):
    problem = one_compartment_problem()
    estimates = pd.DataFrame({"parameter": ["k", "x0"], "estimate": [0.4, 12.0], "lower_95": [0.3, math.nan],
                              "upper_95": [0.6, math.nan]})
    with caplog.at_level(logging.WARNING, logger="qspflow.sensitivity"):
        k, x0 = parameter_ranges(problem, options(ranges="ci", factor=3.0), estimates=estimates)
    assert (k.source, k.centre) == ("ci", 0.4)
    assert (k.low, k.high) == (pytest.approx(math.log10(0.3)), pytest.approx(math.log10(0.6)))
    assert (x0.source, x0.low, x0.high) == ("factor", 4.0, 36.0)
    assert "no finite profile CI for x0" in caplog.text


def test_ranges_from_config_and_factor():
    problem = one_compartment_problem()
    (k,) = parameter_ranges(problem, options(ranges="config", parameters=["k"], bounds={"k": [0.1, 1.0]}))
    assert (k.low, k.high, k.scale) == (-1.0, 0.0, "log10")
    k, x0 = parameter_ranges(problem, options(factor=2.0))
    assert (k.centre, x0.low, x0.high) == (0.5, 5.0, 20.0)


@pytest.mark.parametrize(("given", "key"), [
    ({"ranges": "profile"}, "sensitivity.ranges"),
    ({"factor": 1.0}, "sensitivity.factor"),
    ({"sobol_n": 1000}, "sensitivity.sobol_n"),
    ({"morris_levels": 5}, "sensitivity.morris_levels"),
    ({"method": "fast"}, "sensitivity.method"),
    ({"bounds": {"k": [2, 1]}}, "sensitivity.bounds.k"),
    ({"confidence": 1.5}, "sensitivity.confidence"),
    ({"trajectories": 3}, "sensitivity.trajectories"),
])
def test_bad_options_name_the_key(given, key):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        options(**given)


@pytest.mark.parametrize(("given", "key"), [
    ({"ranges": "config", "bounds": {"k": [0.1, 1.0]}}, "sensitivity.bounds.x0"),
    ({"ranges": "ci"}, "sensitivity.ranges"),
    ({"parameters": ["nope"]}, "sensitivity.parameters"),
    ({"parameters": ["k"], "bounds": {"x0": [1, 2]}}, "sensitivity.bounds.x0"),
])
def test_bad_ranges_name_the_key(given, key):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        parameter_ranges(one_compartment_problem(), options(**given))


def test_chunks_cover_every_row_once():
    rows = [list(range(23))[chunk_rows(23, c, 5)] for c in range(5)]
    assert sum(rows, []) == list(range(23))
    assert [len(r) for r in rows] == [4, 5, 4, 5, 5]


# ---------------------------------------------------------------------------------------- steps


def write_problem(folder):
    """The one-compartment problem as PEtab files (SBML, tables, YAML); estimated: k (log10), x0; the
    conditions set A(0) only (PEtab forbids a condition column that the parameter table has)."""
    from qspflow.model.sbml import write_sbml

    problem = one_compartment_problem()
    write_sbml(problem.model, folder / "model.sbml")
    (folder / "conditions.tsv").write_text("conditionId\tA\ndecay\t0\ndosed\t10\n")
    (folder / "observables.tsv").write_text("observableId\tobservableFormula\tnoiseFormula\nobs_x\tx\tsigma\n")
    (folder / "measurements.tsv").write_text(
        "observableId\tsimulationConditionId\tmeasurement\ttime\nobs_x\tdecay\t3.7\t2\nobs_x\tdosed\t5\t1\n")
    (folder / "parameters.tsv").write_text(
        "parameterId\tparameterScale\tlowerBound\tupperBound\tnominalValue\testimate\n"
        "k\tlog10\t0.01\t10\t0.5\t1\nka\tlin\t\t\t2\t0\nk_in\tlin\t\t\t0\t0\nx0\tlin\t0\t100\t10\t1\n"
        "V\tlin\t\t\t2\t0\nsigma\tlog10\t0.1\t10\t1\t1\n")
    (folder / "problem.yaml").write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- sbml_files: [model.sbml]\n"
        "  condition_files: [conditions.tsv]\n  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n")
    (folder / "estimates.tsv").write_text("parameter\testimate\tlower_95\tupper_95\tidentifiable\n"
                                          "k\t0.4\t0.3\t0.55\tTrue\nx0\t9\t\t\tFalse\nsigma\t1\t0.5\t2\tTrue\n")
    return folder / "problem.yaml"


STEP_OPTIONS = {
    "outputs": [
        {"name": "x_2h", "kind": "value", "of": "obs_x", "condition": "decay", "time": 2.0},
        {"name": "auc_oral", "kind": "auc", "of": "x", "condition": "dosed", "window": [0.0, 4.0]},
        {"name": "steady", "kind": "steady_state", "of": "x", "condition": {"k_in": 3.0}},
    ],
    "ranges": "ci", "factor": 2.0, "sobol_n": 64, "morris_trajectories": 8, "bootstrap": 50,
}


def test_chunked_steps_give_the_bytes_of_one_process(tmp_path):
    from qspflow.steps.sensitivity import (
        FILES,
        sensitivity_analyze,
        sensitivity_folder,
        sensitivity_sample,
        sensitivity_simulate,
    )

    problem = write_problem(tmp_path)
    estimates = tmp_path / "estimates.tsv"
    rules = tmp_path / "rules"
    sensitivity_sample(problem=problem, estimates=estimates, samples=rules / "samples.tsv", seed=11,
                       **STEP_OPTIONS)
    chunks = [rules / f"chunk{i}.tsv" for i in range(3)]
    for i, path in enumerate(chunks):
        sensitivity_simulate(problem=problem, estimates=estimates, samples=rules / "samples.tsv", chunk=i,
                             n_chunks=3, result=path, threads=1 + i % 2, **STEP_OPTIONS)
    names = ("morris", "sobol", "summary", "sobol_plot", "morris_plot")
    sensitivity_analyze(samples=rules / "samples.tsv", results=chunks[::-1], seed=11,
                        **{k: rules / FILES[k] for k in names}, **STEP_OPTIONS)
    (tmp_path / "spec.yaml").write_text(__import__("yaml").safe_dump({"sensitivity": STEP_OPTIONS}))
    sensitivity_folder(problem=problem, spec=tmp_path / "spec.yaml", out=tmp_path / "out", estimates=estimates,
                       seed=11, threads=2)
    for key in ("samples", *names):
        assert (rules / FILES[key]).read_bytes() == (tmp_path / "out" / FILES[key]).read_bytes(), key
    sobol = pd.read_csv(rules / "sobol.tsv", sep="\t")
    assert list(sobol.columns) == COLUMNS
    assert sorted(sobol["parameter"].unique()) == ["k", "x0"]  # sigma (noise only) is not sampled
    st = sobol[sobol["index"] == "ST"].set_index(["output", "parameter"])["value"]
    assert st["steady", "x0"] == pytest.approx(0.0, abs=1e-9)  # the steady state forgets x(0)
    assert st["steady", "k"] > 0.9
    summary = pd.read_csv(rules / "summary.tsv", sep="\t")
    assert summary["failed"].sum() == 0 and set(summary["samples"]) == {64 * 4, 8 * 3}


def test_an_output_flat_up_to_integration_noise_gets_no_indices(caplog):
    # A steady state no parameter moves comes back as 1 ± 1e-16: indices of it would apportion rounding.
    rng = np.random.default_rng(3)
    names = ["a", "b"]
    opts = sensitivity_options({"outputs": [{"name": "flat", "kind": "value", "of": "x", "time": 1}],
                                "sobol_n": 64, "bootstrap": 20})
    y = 1.0 + 1e-16 * rng.standard_normal(64 * 4)
    table = analyze_sobol(names, y[:, None], ["flat"], opts, seed=1)
    assert table["value"].isna().all() and len(table) == 4
    assert "does not vary over the ranges beyond integration noise" in caplog.text
