"""Report notebooks: the engine gives byte-stable, self-contained reports and one-line cell errors;
the tables and figures of the data, networks, models and summary notebooks show the right numbers."""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import sympy
from matplotlib.patches import Rectangle
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from qspflow import plots
from qspflow.boolean import BooleanNetwork
from qspflow.errors import QspflowError
from qspflow.infer import network_mismatches
from qspflow.io import write_table, write_text
from qspflow.model import OdeModel, Parameter, symbol
from qspflow.model.sbml import sbml_text
from qspflow.plots import png_bytes
from qspflow.plots.networks import (
    binarized_figure,
    layered_layout,
    network_figure,
    network_fit_figure,
    time_courses_figure,
)
from qspflow.report import notebook, tables
from qspflow.report.notebook import run_notebook

# --- the engine --------------------------------------------------------------------------------


def _notebook(path: Path, *code: str) -> Path:
    """A notebook: a markdown cell with a link, a papermill parameters cell, then `code` cells."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = new_code_cell('x = 1\nlabel = "default"', metadata={"tags": ["parameters"]})
    nb.cells = [new_markdown_cell("# Tiny report\n\nSee [the docs](https://example.org/docs)."), parameters,
                *(new_code_cell(c) for c in code)]
    nbformat.write(nb, path)
    return path


TINY = (
    "from matplotlib.figure import Figure\nfigure = Figure(figsize=(3, 2))\n"
    "figure.add_subplot().plot([0, 1, 2], [0, x, 0])\nfigure",
    'print(label, {"alpha", "beta", "gamma", "delta", "epsilon"})',  # a set's order depends on the hash seed
    'import os\nprint("hash seed", os.environ["PYTHONHASHSEED"])',
)


@pytest.fixture(scope="module")
def twice(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The tiny notebook executed twice into two folders (each run in its own working folder)."""
    base = tmp_path_factory.mktemp("engine")
    source = _notebook(base / "tiny.ipynb", *TINY)
    for run in ("one", "two"):
        (base / run).mkdir()
        run_notebook(source, {"x": 5, "label": "from the test"}, base / run / "tiny.ipynb", base / run / "tiny.html",
                     cwd=base / run, title="Tiny report — example")
    return base, base / "one", base / "two"


def test_a_report_is_byte_identical_from_run_to_run(twice):
    _, one, two = twice
    assert (one / "tiny.ipynb").read_bytes() == (two / "tiny.ipynb").read_bytes()
    assert (one / "tiny.html").read_bytes() == (two / "tiny.html").read_bytes()


def test_the_injected_parameters_are_used_and_shown(twice):
    _, one, _ = twice
    nb = nbformat.read(one / "tiny.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 5" in injected[0].source and 'label = "from the test"' in injected[0].source
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "from the test" in printed and "hash seed 0" in printed
    assert nb.metadata.papermill["parameters"] == {"x": 5, "label": "from the test"}
    assert "from the test" in (one / "tiny.html").read_text(encoding="utf-8")


def test_a_report_carries_no_times_paths_or_host_names(twice):
    base, one, _ = twice
    nb = json.loads((one / "tiny.ipynb").read_text(encoding="utf-8"))
    assert set(nb["metadata"]["papermill"]) == {"default_parameters", "parameters", "version"}
    assert [c["id"] for c in nb["cells"]] == [f"cell-{k}" for k in range(len(nb["cells"]))]
    assert all(set(c["metadata"]) <= {"tags"} for c in nb["cells"])
    for cell in nb["cells"]:  # the text without the figures' base64
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("image/png", None)
    text = json.dumps(nb)
    for stamp in ("start_time", "end_time", "duration", '"execution"', "iopub.", "shell.execute_reply"):
        assert stamp not in text
    assert not re.search(rf"\b{re.escape(socket.gethostname())}\b", text)
    page = (one / "tiny.html").read_text(encoding="utf-8")
    for path in (str(base), str(Path.home()), str(Path(notebook.__file__).parents[3])):
        assert path not in text and path not in page


def test_the_html_fetches_nothing_and_embeds_its_figure(twice):
    _, one, _ = twice
    page = (one / "tiny.html").read_text(encoding="utf-8")
    assert re.findall(r"<title>(.*?)</title>", page) == ["Tiny report — example"]
    assert re.findall(r"<script[^>]*\bsrc=", page) == []
    assert re.findall(r"<link[^>]*\bhref=", page) == []
    assert re.findall(r"@import|url\(\s*['\"]?https?:", page) == []
    assert re.findall(r"<(?:img|iframe|video|audio|source|embed|object)\b[^>]*\b(?:src|data)=\"(?!data:)", page) == []
    assert re.findall(r"mathjax|require\.js|mermaid", page, re.I) == []
    assert len(re.findall(r'<img[^>]*src="data:image/png;base64,', page)) == 1
    assert '<a href="https://example.org/docs">' in page  # a link in the text stays a link


def test_figures_are_png_at_the_fixed_dpi_without_a_software_tag(twice):
    _, one, _ = twice
    nb = nbformat.read(one / "tiny.ipynb", as_version=4)
    pngs = [base64.b64decode(o.data["image/png"]) for c in nb.cells if c.cell_type == "code"
            for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1
    png = pngs[0]
    assert b"tEXt" not in png and b"Software" not in png
    at = png.index(b"pHYs") + 4
    x_ppm, y_ppm, unit = struct.unpack(">IIB", png[at:at + 9])
    assert (round(x_ppm * 0.0254), round(y_ppm * 0.0254), unit) == (notebook.DPI, notebook.DPI, 1)
    assert notebook.DPI == plots.DPI


def test_a_failing_cell_is_one_error_naming_the_notebook_cell_line_and_error_and_writes_nothing(tmp_path):
    source = _notebook(tmp_path / "broken.ipynb", "y = 2", "z = y + x\nraise ValueError(f'bad input {z}')")
    (tmp_path / "out.html").write_text("the earlier report", encoding="utf-8")
    with pytest.raises(QspflowError) as failure:  # cell 4 of the notebook as written: papermill's cell 5
        run_notebook(source, {"x": 1}, tmp_path / "out.ipynb", tmp_path / "out.html", cwd=tmp_path, title="t")
    message = str(failure.value)
    assert message.startswith(f"{source}: cell 4, line 2 `raise ValueError(f'bad input {{z}}')` failed")
    assert message.endswith("ValueError: bad input 3")
    assert "\n" not in message and "Traceback" not in message
    assert not (tmp_path / "out.ipynb").exists()
    assert (tmp_path / "out.html").read_text(encoding="utf-8") == "the earlier report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.ipynb", "out.html"]


def test_a_missing_notebook_is_named(tmp_path):
    with pytest.raises(QspflowError, match=r"nothing\.ipynb: expected a report notebook, file not found"):
        run_notebook(tmp_path / "nothing.ipynb", {}, tmp_path / "a.ipynb", tmp_path / "a.html", cwd=tmp_path, title="t")


# --- networks: layout, terms, fit -----------------------------------------------------------------


def test_layered_layout_puts_each_node_one_layer_after_its_latest_regulator():
    edges = [("EGF", "Raf"), ("Raf", "MEK"), ("MEK", "ERK"), ("EGF", "PI3K"), ("PI3K", "Akt"), ("Akt", "Raf"),
             ("TNFa", "IKK"), ("IKK", "NFkB"), ("NFkB", "IKK"), ("ERK", "ERK")]
    nodes = ["Akt", "EGF", "ERK", "IKK", "MEK", "NFkB", "PI3K", "Raf", "TNFa"]
    position = layered_layout(nodes, edges)
    layer = {n: x for n, (x, _) in position.items()}
    assert layer == {"EGF": 0, "TNFa": 0, "PI3K": 1, "IKK": 1, "NFkB": 1, "Akt": 2, "Raf": 3, "MEK": 4, "ERK": 5}
    assert layer["EGF"] < layer["ERK"] and layer["TNFa"] < layer["NFkB"]  # inputs left of readouts
    for k in set(layer.values()):  # each layer centred, one unit apart
        ys = sorted(y for n, (x, y) in position.items() if x == k)
        assert sum(ys) == pytest.approx(0) and np.diff(ys).tolist() == [1.0] * (len(ys) - 1)
    assert layered_layout(nodes[::-1], edges[::-1]) == position


def test_network_terms_keep_and_gates_and_signs():
    net = BooleanNetwork.from_rules({"A": "A", "B": "B", "C": "C", "X": "A & !B | C", "Y": "!(A & B)", "Z": "0"})
    terms = tables.network_terms(net)
    assert terms["A"] == [] and terms["Z"] == []
    assert terms["X"] == [[("A", 1), ("B", -1)], [("C", 1)]]
    assert terms["Y"] == [[("A", -1)], [("B", -1)]]  # not in DNF: its signed regulators


def _perturbation_data():
    experiments = pd.DataFrame({"experiment": ["inh", "off", "on"], "stimulus:S": [1, 0, 1], "inhibitor:X": [1, 0, 0]})
    states = {("inh", "X"): 0, ("inh", "Y"): 0, ("off", "X"): 0, ("off", "Y"): 1, ("on", "X"): 1, ("on", "Y"): 1}
    binarized = pd.DataFrame([(e, 1.0, n, s) for (e, n), s in states.items()],
                             columns=["experiment", "time", "observable", "state"])
    return binarized, experiments


def test_network_fit_finds_the_known_steady_state_mismatches_as_inference_counts_them():
    binarized, experiments = _perturbation_data()
    net = BooleanNetwork.from_rules({"S": "S", "X": "S", "Y": "!X"})
    data = tables.observations(binarized, experiments, method="steady_state", time=1.0)
    fit = tables.network_fit(net, data)
    assert fit.columns.tolist() == tables.FIT_COLUMNS
    assert fit["predicted"].tolist() == [0, 1, 0, 1, 1, 0]  # inh X, Y; off X, Y; on X, Y
    wrong = tables.mismatches(fit)
    assert [(e, n) for e, _, n in wrong.index] == [("inh", "Y"), ("on", "Y")]
    assert sorted(network_mismatches(net, data)) == [("inh", "Y"), ("on", "Y")]
    figure = network_fit_figure(fit)
    frames = [p for p in figure.axes[0].patches if isinstance(p, Rectangle) and not p.get_fill()]
    assert len(frames) == 2


def test_a_network_without_a_steady_state_mismatches_every_readout_of_that_experiment():
    binarized, experiments = _perturbation_data()
    net = BooleanNetwork.from_rules({"S": "S", "X": "S", "Y": "!Y"})
    data = tables.observations(binarized, experiments, method="steady_state", time=1.0)
    fit = tables.network_fit(net, data)
    assert fit["predicted"].isna().all() and not fit["match"].any()
    assert int((~fit["match"]).sum()) == len(network_mismatches(net, data)) == 6


def test_network_fit_on_time_series_predicts_each_transition_from_the_state_before():
    rows = [("e1", t, "S", 1) for t in (0.0, 1.0, 2.0)] + [("e1", t, "X", s) for t, s in ((0.0, 0), (1.0, 1), (2.0, 0))]
    binarized = pd.DataFrame(rows, columns=["experiment", "time", "observable", "state"])
    experiments = pd.DataFrame({"experiment": ["e1"], "stimulus:S": [1]})
    assert tables.inference_method("auto", ["S", "X"], binarized) == "time_series"
    assert tables.inference_method("auto", ["S", "X", "Y"], binarized) == "steady_state"
    assert tables.inference_method("steady_state", ["S", "X"], binarized) == "steady_state"
    data = tables.observations(binarized, experiments, method="time_series", nodes=["S", "X"])
    fit = tables.network_fit(BooleanNetwork.from_rules({"S": "S", "X": "S"}), data)
    assert fit[["time", "node", "observed", "predicted", "match"]].values.tolist() == [
        [1.0, "X", 1, 1, True], [2.0, "X", 0, 1, False]]  # S is clamped: not fitted
    assert network_fit_figure(fit).axes[0].texts[0].get_text() == "1/2"


def test_ranking_gets_the_recomputed_mismatches_beside_the_reported_ones():
    index = pd.DataFrame({"network": ["net_1", "net_2"], "score": [0.001, 1.001], "mismatches": [0, 1],
                          "size": [10, 10], "missed": ["", "on:Y"]})
    fit = pd.DataFrame({"match": [True, False, True]})
    table = tables.ranking_with_fit(index, {"net_1": fit[fit["match"]], "net_2": fit})
    assert table["recomputed"].tolist() == table["mismatches"].tolist() == [0, 1]


def test_network_figure_draws_every_node_and_one_gate_per_and_term():
    net = BooleanNetwork.from_rules({"A": "A", "B": "B", "X": "A & !B | B", "Y": "X & A", "Z": "Z | X"})
    figure = network_figure(tables.network_terms(net), inputs=net.inputs, readouts=["Y"], title="t")
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert sorted(t for t in texts if t not in ("&", "")) == ["A", "B", "X", "Y", "Z"]  # "": the edges
    assert texts.count("&") == 2
    assert png_bytes(figure) == png_bytes(network_figure(tables.network_terms(net), inputs=net.inputs,
                                                         readouts=["Y"], title="t"))


# --- data ----------------------------------------------------------------------------------------


def _measurements() -> pd.DataFrame:
    rows = [(e, t, o, 0.1 * k if k != 4 else np.nan) for k, (e, t, o) in enumerate(
        (e, t, o) for e in ("a", "b") for o in ("P", "Q") for t in (0.0, 1.0, 2.0))]
    frame = pd.DataFrame(rows, columns=["experiment", "time", "observable", "value"])
    frame["sd"] = 0.05
    frame["normalized"] = frame["value"] / 1.1
    return frame


def test_data_overview_and_missing_values_count_the_data():
    measurements = _measurements()
    experiments = pd.DataFrame({"experiment": ["a", "b"], "stimulus:S": [1, 0], "dose:drug": [0, 30]})
    overview = tables.data_overview(measurements, experiments)["value"].to_dict()
    assert overview == {"experiments": "2", "observables": "2", "time points": "3", "values measured": "11",
                        "values missing": "1", "values per experiment, time and observable (replicates)": "1",
                        "perturbations (experiment table)": "stimulus:S, dose:drug"}
    missing = tables.missing_values(measurements)
    assert missing.index.tolist() == [("a", "Q")] and missing.iloc[0].tolist() == [1, "1"]


def test_binarized_and_time_course_figures_have_a_row_per_experiment_and_a_column_per_measurement():
    binarized = pd.DataFrame([(e, t, o, int(t > 0)) for e in ("b", "a") for o in ("Q", "P") for t in (0.0, 2.0)]
                             + [("a", 5.0, "P", 1)], columns=["experiment", "time", "observable", "state"])
    ax = binarized_figure(binarized).axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "5", "0", "2"]  # P at 0, 2, 5; Q at 0, 2
    assert ax.images[0].get_array().mask.sum() == 1  # b has no P at 5
    thresholds = pd.DataFrame({"observable": ["P", "Q"], "threshold": [0.5, 0.4]})
    figure = time_courses_figure(_measurements(), thresholds)
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["a", "b", "threshold"]


def test_options_table_flattens_nested_sections():
    table = tables.options_table({"method": "kmeans", "bounds": {"tau": [0.1, 10, "log10"], "k": {}}, "n": 3})
    assert table.index.tolist() == ["method", "bounds.tau", "bounds.k", "n"]
    assert table["value"].tolist() == ["kmeans", '[0.1, 10, "log10"]', "{}", "3"]


# --- models --------------------------------------------------------------------------------------


def _petab_problem(folder: Path) -> Path:
    """A two-state model written as SBML, X relaxing towards production_X = k*Y, and its PEtab tables."""
    x, y, k, tau = (symbol(n) for n in ("X", "Y", "k", "tau_X"))
    model = OdeModel("tiny", ["X", "Y"], {"k": Parameter("k", 2.0), "tau_X": Parameter("tau_X", 1.5)},
                     {"X": (k * y - x) / tau, "Y": -k * y}, {"X": sympy.Integer(0), "Y": sympy.Integer(1)},
                     expressions={"production_X": k * y})
    write_text(sbml_text(model), folder / "model.sbml")
    write_table(pd.DataFrame({"parameterId": ["k", "tau_X"], "parameterScale": ["log10", "lin"],
                              "lowerBound": [0.1, 1.0], "upperBound": [10.0, 2.0], "nominalValue": [2.0, 1.5],
                              "estimate": [1, 0]}), folder / "parameters.tsv")
    write_table(pd.DataFrame({"observableId": ["obs_X"], "observableFormula": ["X"], "noiseFormula": ["0.1"]}),
                folder / "observables.tsv")
    write_table(pd.DataFrame({"observableId": ["obs_X"] * 3, "simulationConditionId": ["c"] * 3,
                              "time": [0.0, 1.0, 2.0], "measurement": [0.0, 0.5, 0.6]}), folder / "measurements.tsv")
    write_text("format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- condition_files: [conditions.tsv]\n"
               "  measurement_files: [measurements.tsv]\n  observable_files: [observables.tsv]\n"
               "  sbml_files: [model.sbml]\n", folder / "problem.yaml")
    return folder / "problem.yaml"


def test_equations_are_plain_text_rates_over_the_named_quantities_they_use(tmp_path):
    problem = _petab_problem(tmp_path)
    assert tables.equations_text(tmp_path / "model.sbml") == (
        "dX/dt = (-X + production_X)/tau_X\ndY/dt = -Y*k\n\nwhere\nproduction_X = Y*k\n")
    write_text("# Model `tiny`\n\ntiny: a relaxing X.\n\n## Rate equations\n\n$$x$$\n", tmp_path / "equations.md")
    overview = tables.model_overview("tiny", problem, tmp_path / "equations.md")
    assert overview.description == "tiny: a relaxing X."
    assert overview.counts["value"].to_dict() == {"states": 2, "model parameters": 3,  # k, tau_X, the compartment
                                                  "estimated parameters (PEtab)": 1, "observables": 1,
                                                  "measurements": 3}
    assert overview.estimated.index.tolist() == ["k"]
    assert overview.estimated.loc["k"].tolist() == ["log10", 0.1, 10.0, 2.0]
    assert overview.observables.loc["obs_X"].tolist() == ["X", 0.1]
    assert "$" not in overview.equations


# --- summary -------------------------------------------------------------------------------------


def _ranking(deltas: list[float]) -> pd.DataFrame:
    n = len(deltas)
    return pd.DataFrame({"model": [f"net_{k + 1}" for k in range(n)], "llh": [10.0 - d / 2 for d in deltas],
                         "n_params": [3] * n, "n_data": [20] * n, "aicc": [-10.0 + d for d in deltas],
                         "delta_aicc": deltas, "weight": [1.0 / n] * n, "rank_aicc": list(range(1, n + 1)),
                         "bic": [0.0] * n, "delta_bic": [0.0] * n, "rank_bic": list(range(1, n + 1))})


@pytest.mark.parametrize(("deltas", "reading"), [
    ([0.0, 12.0], "essentially no support for it"),
    ([0.0, 6.0], "considerably less support for it"),
    ([0.0, 1.5], "substantial support also for it"),
    ([0.0], "the only candidate model"),
])
def test_evidence_reads_delta_aicc_by_burnham_and_anderson(deltas, reading):
    assert reading in tables.evidence(_ranking(deltas))


def test_study_overview_counts_data_and_models():
    overview = tables.study_overview("ex", _ranking([0.0, 3.0]), "net_1", seed=7, measurements=_measurements())
    assert overview["value"].to_dict() == {"study": "ex", "seed": "7", "experiments": "2", "observables": "2",
                                           "values measured": "11", "data points in calibration": "20",
                                           "candidate models": "2", "selected model": "net_1"}
    assert "experiments" not in tables.study_overview("ex", _ranking([0.0]), "net_1").index


def test_estimates_show_profiled_parameters_first_and_tolerate_missing_interval_columns():
    estimates = pd.DataFrame({"parameter": ["b", "a", "c"], "estimate": [1.0, 2.0, 3.0],
                              "lower_95": [np.nan, np.nan, 2.5], "upper_95": [np.nan, np.nan, 3.5],
                              "identifiable": [np.nan, np.nan, True]})
    assert tables.estimates_table(estimates).index.tolist() == ["c", "a", "b"]
    assert tables.estimates_table(estimates[["parameter", "estimate"]]).columns.tolist() == [
        "estimate", "lower_95", "upper_95", "identifiable"]


def test_sensitivity_drivers_are_the_top_parameters_by_total_index():
    rows = [("y", p, index, value, value - 0.01, value + 0.01)
            for p, s1, st in (("p1", 0.1, 0.2), ("p2", 0.5, 0.6), ("p3", 0.0, 0.05), ("p4", 0.3, 0.4))
            for index, value in (("S1", s1), ("ST", st))]
    sobol = pd.DataFrame(rows, columns=["output", "parameter", "index", "value", "ci_low", "ci_high"])
    drivers = tables.sensitivity_drivers(sobol, top=3)
    assert drivers.index.tolist() == [("y", "p2"), ("y", "p4"), ("y", "p1")]
    assert drivers.loc[("y", "p4")].tolist() == pytest.approx([0.3, 0.4, 0.39, 0.41])


def test_vpop_fit_table_keeps_the_outputs_not_their_pairs_and_links_are_relative():
    fit = pd.DataFrame({"output": ["a", "b", "a:b"], "n_vp": [10, 10, 10], "n_target": [20, 20, 20],
                        "ks": [0.1, 0.2, np.nan], "ks_p": [0.9, 0.01, np.nan], "matches": ["yes", "no", ""],
                        "vp_mean": [1.0, 2.0, np.nan], "target_mean": [1.1, 2.5, np.nan],
                        "vp_sd": [0.1, 0.2, np.nan], "target_sd": [0.1, 0.3, np.nan]})
    assert tables.vpop_fit_table(fit)["matches"].to_dict() == {"a": "yes", "b": "no"}
    assert tables.report_links({"data": "results/x/reports/data.html", "vpop": "results/x/reports/vpop.html"}) == (
        "- [data](data.html)\n- [vpop](vpop.html)\n")
