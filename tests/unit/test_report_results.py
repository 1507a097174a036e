"""Report tables and figures (`qspflow.report.results`, `qspflow.plots.calibration`) on small tables
with known numbers, and the calibration, sensitivity and vpop notebooks executed on synthetic results."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest

from qspflow.calibrate import CONVERGED, THRESHOLD
from qspflow.calibrate.selection import rank_models
from qspflow.errors import DataError
from qspflow.io import write_table, write_text
from qspflow.plots.calibration import acceptance_figure, ecdf_figure, parameter_figure, trajectory_figure
from qspflow.report import results

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_calibration_conventions_are_the_calibration_stacks():
    assert results.PROFILE_THRESHOLD == pytest.approx(THRESHOLD, rel=1e-12)
    assert results.PROFILE_THRESHOLD == pytest.approx(3.841459 / 2, abs=1e-6)  # χ²₁(0.95), any table
    assert results.CONVERGED == CONVERGED


def test_ranking_weights_sum_to_one_and_the_best_has_delta_zero():
    ranking = rank_models({"a": (100.0, 3, 50), "b": (99.0, 2, 50), "c": (90.0, 2, 50)})
    table = results.ranking_table(ranking, best=str(ranking["model"].iat[0])).set_index("model")
    assert table["AICc weight"].sum() == pytest.approx(1)
    assert table["BIC weight"].sum() == pytest.approx(1)
    assert table.loc[table["selected"] == "✓", "ΔAICc"].tolist() == [0.0]
    assert table["ΔBIC"].min() == 0.0
    # BIC_a − BIC_b = ln 50 − 2, so the Schwarz weights differ by exp(−(ln 50 − 2)/2)
    assert table.at["a", "BIC weight"] / table.at["b", "BIC weight"] == pytest.approx(math.exp(-(math.log(50) - 2) / 2))


def test_starts_table_groups_starts_by_origin_and_status():
    starts = pd.DataFrame({"start": range(5), "origin": ["ess", "ess", "ess", "lhs", "lhs"],
                           "status": ["optimal", "optimal", "maxIterations", "optimal", "infeasible"],
                           "llh": [10.0, 9.5, 3.0, 8.0, -math.inf]})
    table = results.starts_table(starts)
    assert table[["origin", "status", "starts", "converged"]].values.tolist() == [
        ["ess", "optimal", 2, "yes"], ["lhs", "optimal", 1, "yes"], ["ess", "maxIterations", 1, "no"],
        ["lhs", "infeasible", 1, "no"]]
    assert table["gap to best"].tolist() == [0.0, 2.0, 7.0, math.inf]


def _measurements() -> pd.DataFrame:
    return pd.DataFrame({
        "observableId": ["a", "a", "b", "c", "d"],
        "preequilibrationConditionId": ["", "", "ss", "", ""],
        "simulationConditionId": ["x", "x", "y", "x", "x"],
        "time": [0.0, 1.0, 2.0, 1.0, 1.0],
        "measurement": [1.0, 2.0, 3.0, 100.0, 5.0],
        "noiseParameters": ["0.1", "0.3", "", "", ""]})


def _observables() -> pd.DataFrame:
    return pd.DataFrame({"observableId": ["a", "b", "c", "d"],
                         "noiseFormula": ["noiseParameter1_a", "sigma_b", "0.5", "2 * sigma_b"],
                         "observableTransformation": ["lin", "lin", "log10", "lin"]})


def test_fit_error_bars_are_the_noise_sigma_on_the_observables_scale():
    fit = results.fit_table(_measurements(), [1.1, 1.9, 3.2, 90.0, 5.0], _observables(), {"sigma_b": 0.25})
    assert fit["experiment"].tolist() == ["x", "x", "ss → y", "x", "x"]
    assert fit["sigma"].tolist()[:4] == [0.1, 0.3, 0.25, 0.5]
    assert math.isnan(fit["sigma"].iat[4])  # a formula beyond number/parameter/placeholder: no bar
    assert fit["low"].tolist()[:3] == pytest.approx([0.9, 1.7, 2.75])
    assert fit["high"].tolist()[:3] == pytest.approx([1.1, 2.3, 3.25])
    assert (fit.at[3, "low"], fit.at[3, "high"]) == pytest.approx((100 / 10**0.5, 100 * 10**0.5))
    figure = trajectory_figure(fit)
    bars = figure.axes[0].collections[0].get_segments()  # experiment "ss → y" sorts first
    assert [tuple(segment[:, 1]) for segment in bars] == [pytest.approx((2.75, 3.25))]


def test_intervals_table_lists_profiled_parameters_first():
    estimates = pd.DataFrame({"parameter": ["k1", "k2", "k3", "k4"], "estimate": [2.0, 1.0, 4.0, 3.0],
                              "lower_95": [1.0, np.nan, 3.0, np.nan], "upper_95": [3.0, np.nan, np.nan, np.nan],
                              "identifiable": [True, pd.NA, False, pd.NA]})
    table = results.intervals_table(estimates)
    assert table["parameter"].tolist() == ["k1", "k3", "k2", "k4"]
    assert table["identifiable"].tolist() == ["yes", "no", "", ""]
    assert table.at[0, "relative width"] == 1.0


def _sensitivity_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    def rows(output, index, values, converged=True):
        return [(output, p, index, v, v - 0.01, v + 0.01, converged) for p, v in values.items()]

    columns = ["output", "parameter", "index", "value", "ci_low", "ci_high", "converged"]
    sobol = pd.DataFrame(rows("y1", "ST", {"p": 0.2, "q": 0.7, "r": 0.2, "s": 0.05})
                         + rows("y1", "S1", {"p": 0.1, "q": 0.6, "r": 0.2, "s": 0.0}, converged=False),
                         columns=columns)
    morris = pd.DataFrame(rows("y1", "mu_star", {"p": 5.0, "q": 1.0, "r": 0.5, "s": 0.1})
                          + rows("y2", "mu_star", {"p": 0.3, "q": 2.0, "r": 0.1, "s": 0.9})
                          + [(o, p, "sigma", 0.1, np.nan, np.nan, pd.NA) for o in ("y1", "y2") for p in "pqrs"],
                          columns=columns)
    summary = pd.DataFrame({"method": ["morris", "morris", "sobol"], "output": ["y1", "y2", "y1"],
                            "samples": [100, 100, 600], "failed": [0, 5, 0]})
    return sobol, morris, summary


def test_top_drivers_rank_by_sobol_st_and_fall_back_to_morris_mu_star():
    sobol, morris, _ = _sensitivity_tables()
    table = results.top_drivers(sobol, morris, n=3)
    assert table[["output", "rank", "parameter", "by"]].values.tolist() == [
        ["y1", 1, "q", "ST"], ["y1", 2, "p", "ST"], ["y1", 3, "r", "ST"],  # p, r tie on ST: by name
        ["y2", 1, "q", "μ*"], ["y2", 2, "s", "μ*"], ["y2", 3, "p", "μ*"]]
    assert table.loc[0, ["ST", "ST low", "ST high", "S1", "μ*"]].tolist() == pytest.approx([0.7, 0.69, 0.71, 0.6, 1.0])
    assert table.loc[3, ["ST", "S1"]].isna().all()


def test_diagnostics_count_failed_simulations_and_unconverged_indices():
    sobol, morris, summary = _sensitivity_tables()
    table = results.diagnostics_table(summary, sobol, morris)
    assert table[["method", "output", "failed", "not converged"]].values.tolist() == [
        ["morris", "y1", 0, 0], ["morris", "y2", 5, 0], ["sobol", "y1", 0, 4]]
    assert table["failed share"].tolist() == [0.0, 0.05, 0.0]


def test_acceptance_counts_each_stage_and_its_share():
    plausible = pd.DataFrame({"patient": [f"plausible{i}" for i in range(40)]})
    vpop = pd.DataFrame({"patient": ["vp1", "vp2", "vp3", "vp4", "vp5"], "plausible": ["plausible1"] * 5})
    table = results.acceptance_table(1000, plausible, vpop)
    assert table["patients"].tolist() == [1000, 40, 5]
    assert table["share of candidates"].tolist() == [1.0, 0.04, 0.005]
    assert table["share of previous"].tolist() == [1.0, 0.04, 0.125]
    assert [bar.get_width() for bar in acceptance_figure(table).axes[0].patches] == [1000, 40, 5]


def test_vpop_figures_draw_every_population_and_log_axes_for_wide_parameters():
    rng = np.random.default_rng(1)
    plausible = pd.DataFrame({"k": 10 ** rng.uniform(-2, 1, 200), "v": rng.uniform(1, 2, 200),
                              "y": rng.normal(size=200)})
    vp, target = plausible.iloc[:50], pd.DataFrame({"y": rng.normal(size=30)})
    ecdf = ecdf_figure(target, plausible, vp, ["y"], pd.DataFrame({"output": ["y"], "ks_p": [0.5]}), {"y": [-1, 1]})
    ax = ecdf.axes[0]
    assert [line.get_label() for line in ax.get_lines()[:3]] == ["plausible", "target", "VP"]
    assert all(line.get_ydata()[-1] == 1.0 for line in ax.get_lines()[:3])
    assert ax.get_title() == "y (KS p = 0.5)"
    figure = parameter_figure(plausible, vp, ["k", "v"])
    assert [a.get_xlabel() for a in figure.axes[:2]] == ["log₁₀ k", "v"]


def test_config_sections_become_key_value_rows():
    outputs = [{"name": "y", "kind": "value", "of": "x", "condition": {"dose": 1, "egf": 0}, "time": 8},
               {"name": "z", "kind": "auc", "of": "x", "window": [0, 24]}]
    table = results.outputs_table(outputs)
    assert table.columns.tolist() == ["name", "kind", "of", "condition", "time", "window"]
    assert table.loc[0].tolist() == ["y", "value", "x", "dose: 1; egf: 0", "8", ""]
    assert table.at[1, "window"] == "0, 24"
    options = results.options_table({"outputs": outputs, "ranges": {"y": [0, 1]}, "n": 3}, skip=("outputs",))
    assert options.values.tolist() == [["ranges", "y: 0, 1"], ["n", "3"]]


# ------------------------------------------------------------------------------ notebooks on synthetic results


def _calibration_files(folder: Path) -> dict:
    petab = folder / "models" / "m1" / "petab"
    petab.mkdir(parents=True)
    measurements = _measurements()
    write_table(measurements, petab / "measurements.tsv")
    write_table(_observables(), petab / "observables.tsv")
    write_table(pd.DataFrame({"parameterId": ["k", "sigma_b"], "parameterScale": ["log10", "lin"],
                              "lowerBound": [0.01, 0.01], "upperBound": [100.0, 1.0], "nominalValue": [1.0, 0.2],
                              "estimate": [1, 0]}), petab / "parameters.tsv")
    write_text("format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- condition_files: [conditions.tsv]\n"
               "  measurement_files: [measurements.tsv]\n  observable_files: [observables.tsv]\n"
               "  sbml_files: [model.sbml]\n", petab / "problem.yaml")
    models = {}
    for name, llh in (("m1", 10.0), ("m2", 7.0)):
        out = folder / "calibration" / name
        write_table(pd.DataFrame({"key": ["best_llh", "n_params", "n_data"], "value": [str(llh), "1", "5"]}),
                    out / "summary.tsv")
        write_table(pd.DataFrame({"start": [0, 1, 2], "origin": ["ess", "ess", "lhs"],
                                  "status": ["optimal", "optimal", "maxIterations"], "objective": [-llh] * 3,
                                  "llh": [llh, llh - 1e-6, llh - 3]}), out / "starts.tsv")
        write_table(pd.DataFrame({"parameter": ["k"], "estimate": [2.0], "lower_95": [np.nan], "upper_95": [np.nan],
                                  "identifiable": [pd.NA]}), out / "estimates.tsv")
        simulation = measurements.drop(columns="measurement").assign(simulation=[1.1, 1.9, 3.2, 90.0, 5.0])
        write_table(simulation, out / "simulation.tsv")
        models[name] = {k: str(out / f"{k}.tsv") for k in ("summary", "starts", "estimates", "simulation")}
        models[name]["problem"] = str(petab / "problem.yaml")  # both hypotheses on one problem: enough here
    selection = folder / "selection"
    write_table(rank_models({"m1": (10.0, 1, 5), "m2": (7.0, 1, 5)}), selection / "ranking.tsv")
    write_text("m1\n", selection / "best.txt")
    write_table(pd.DataFrame({"parameter": ["k"], "estimate": [2.0], "lower_95": [1.0], "upper_95": [3.5],
                              "identifiable": [True]}), selection / "estimates.tsv")
    write_table(pd.DataFrame({"parameter": ["k"] * 5, "value": [-0.2, 0.0, 0.3, 0.5, 0.7],
                              "llh": [7.0, 8.5, 10.0, 8.6, 7.5]}), selection / "profiles.tsv")
    return {"ranking": str(selection / "ranking.tsv"), "best": str(selection / "best.txt"), "models": models,
            "selected": {k: str(selection / f"{k}.tsv") for k in ("estimates", "profiles")}}


def _sensitivity_files(folder: Path) -> dict:
    files = {}
    for name, table in zip(("sobol", "morris", "summary"), _sensitivity_tables()):
        files[name] = str(folder / "sensitivity" / f"{name}.tsv")
        write_table(table, files[name])
    return files


def _vpop_files(folder: Path) -> dict:
    rng = np.random.default_rng(3)
    plausible = pd.DataFrame({"patient": [f"plausible{i + 1:07d}" for i in range(300)],
                              "k": 10 ** rng.uniform(-1, 1, 300), "y1": rng.uniform(0, 1, 300),
                              "y2": rng.uniform(0, 2, 300)})
    chosen = np.sort(rng.choice(300, 60, replace=False))
    vpop = plausible.iloc[chosen].reset_index(drop=True)
    vpop.insert(0, "plausible", vpop.pop("patient"))
    vpop.insert(0, "patient", [f"vp{i + 1:07d}" for i in range(len(vpop))])
    target = pd.DataFrame({"patient": [f"P{i:03d}" for i in range(50)], "y1": rng.beta(2, 2, 50),
                           "y2": rng.uniform(0, 2, 50)})
    fit = pd.DataFrame({"output": ["y1", "y2", "y1:y2"], "n_vp": [60, 60, 60], "n_target": [50, 50, 50],
                        "ks": [0.1, 0.2, np.nan], "ks_p": [0.8, 0.1, np.nan], "matches": ["yes", "yes", ""],
                        "vp_mean": [0.5, 1.0, np.nan], "target_mean": [0.5, 1.0, np.nan],
                        "vp_sd": [0.3, 0.6, np.nan], "target_sd": [0.2, 0.6, np.nan],
                        "vp_corr": [np.nan, np.nan, 0.05], "target_corr": [np.nan, np.nan, -0.1],
                        "corr_diff": [np.nan, np.nan, 0.15]})
    files = {"plausible": folder / "vpop" / "plausible.tsv", "vpop": folder / "vpop" / "vpop.tsv",
             "fit": folder / "vpop" / "fit.tsv", "target": folder / "target.tsv"}
    for name, table in (("plausible", plausible), ("vpop", vpop), ("fit", fit), ("target", target)):
        write_table(table, files[name])
    return {k: str(v) for k, v in files.items()}


OUTPUTS = [{"name": "y1", "kind": "value", "of": "x", "time": 1.0}, {"name": "y2", "kind": "value", "of": "x",
                                                                      "time": 2.0}]
NOTEBOOK_CASES = {  # notebook: (files, options, images expected)
    "calibration": (_calibration_files, {"calibrate": {"starts": 3, "profile": True}}, 5),
    "sensitivity": (_sensitivity_files, {"sensitivity": {"outputs": OUTPUTS, "method": "both"}}, 2),
    "vpop": (_vpop_files, {"vpop": {"outputs": OUTPUTS, "ranges": {"y1": [0, 1], "y2": [0, 2]},
                                    "n_candidates": 1000}}, 4),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NOTEBOOK_CASES))
def test_notebook_runs_on_synthetic_results_and_shows_its_figures(tmp_path, name):
    make_files, options, images = NOTEBOOK_CASES[name]
    files = make_files(tmp_path / "results")
    files = _relative(files, tmp_path)  # the report rule passes workdir-relative paths
    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), cwd=str(tmp_path), progress_bar=False,
                               parameters={"study": "test", "files": files, "options": options})
    executed = nbformat.read(out, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == images


def _relative(files: object, base: Path) -> object:
    if isinstance(files, dict):
        return {k: _relative(v, base) for k, v in files.items()}
    return str(Path(files).relative_to(base))


def test_read_fit_refuses_a_simulation_of_other_rows(tmp_path):
    files = _calibration_files(tmp_path)
    model = files["models"]["m1"]
    simulation = pd.read_csv(model["simulation"], sep="\t").iloc[::-1]
    write_table(simulation, model["simulation"])
    with pytest.raises(DataError, match="one row per measurement"):
        results.read_fit(model["simulation"], model["problem"], pd.DataFrame({"parameter": [], "estimate": []}))
