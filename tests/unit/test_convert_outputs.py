"""The `convert` step's files for the example study: the true network with the configured drug
reproduces the data, the SBML simulates the same in libroadrunner, model.py through BioNetGen,
the PEtab problem lints clean; and bad input is named."""

from __future__ import annotations

import importlib.util
import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import petab.v1 as petab_v1
import pytest
import yaml
from pysb.core import ModelExistsWarning

from qspflow.boolean import read_bnet
from qspflow.convert import convert_network
from qspflow.data import read_experiments, read_measurements
from qspflow.errors import ConfigError, DataError, NetworkError, OutputError
from qspflow.model.pysb import from_pysb
from qspflow.model.sbml import read_sbml
from qspflow.petab import load_problem, log_likelihood, simulate_condition
from qspflow.steps import in_folder
from qspflow.steps.models import FILES, convert, convert_with_config
from test_convert import assert_same_odes  # tests/unit is on sys.path (pytest prepend import mode)

# The example study's `drug:` config section: the dosing of dosing.tsv; PK known (fixed at the
# truth, as from a PK study); PD to be estimated from the starting values below.
EXAMPLE_DRUG = {
    "target": "MEK",
    "name": "drug",
    "effect": "inhibit",
    "route": "oral",
    "compartments": 2,
    "interval": 12,
    "n_doses": 2,
    "infusion_duration": None,
    "parameters": {"pk_ka": 1.0, "pk_cl": 10.0, "pk_vc": 50.0, "pk_q": 5.0, "pk_vp": 100.0, "pk_f": 0.6,
                   "pd_emax": 1.0, "pd_ec50": 1.0, "pd_hill": 1.0},
    "estimate": ["pd_emax", "pd_ec50", "pd_hill"],
}
OUTPUTS = ["equations.md", "model.py", "model.sbml", "petab/conditions.tsv", "petab/measurements.tsv",
           "petab/model.sbml", "petab/observables.tsv", "petab/parameters.tsv", "petab/problem.yaml"]
NOT_ZERO = 1e-5  # values below are ~0 (a node's onset, an input that is off): compared absolutely


def _truth(example: Path) -> dict[str, float]:
    table = pd.read_csv(example / "truth" / "parameters.tsv", sep="\t")
    return dict(zip(table["parameter"], table["value"].astype(float), strict=True))


def _inputs(example: Path) -> dict[str, Path]:
    return {"network": example / "truth" / "network.bnet", "measurements": example / "measurements.tsv",
            "experiments": example / "experiments.tsv"}


def _study(example: Path, **kwargs):
    """The library's conversion of the example study (the data read as the step reads them)."""
    measurements, _ = read_measurements(example / "measurements.tsv")
    network = example / "truth" / "network.bnet"
    return convert_network(read_bnet(network), network, measurements=measurements,
                           experiments=read_experiments(example / "experiments.tsv"),
                           experiments_source=str(example / "experiments.tsv"), **{"drug": EXAMPLE_DRUG, **kwargs})


@pytest.fixture(scope="module")
def run(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "network"
    converted = convert(**_inputs(example), drug=EXAMPLE_DRUG, values=_truth(example), **in_folder(out, FILES))
    return converted, out


@pytest.fixture(scope="module")
def converted(run):
    return run[0]


@pytest.fixture(scope="module")
def written(run) -> Path:
    return run[1]


def test_writes_every_output(written):
    assert sorted(str(p.relative_to(written)) for p in written.rglob("*") if p.is_file()) == OUTPUTS


def test_true_network_with_the_configured_drug_reproduces_the_example_data(converted, written):
    problem = load_problem(written / "petab" / "problem.yaml")
    llh = log_likelihood(problem)  # at the nominal values: the truth
    sigma = problem.measurement_table["noiseParameters"].astype(float).to_numpy()
    mean_chi2 = (-2 * llh - np.sum(np.log(2 * np.pi * sigma**2))) / len(sigma)
    assert len(sigma) == 882  # 900 values of the 6 readouts, 18 missing
    assert 0.85 <= mean_chi2 <= 1.15
    params = problem.parameter_table
    assert not params.loc[["pk_cl", "pk_f"], "estimate"].any() and params.loc["pd_ec50", "estimate"] == 1
    assert params.loc["pk_f", "nominalValue"] == 0.6


def test_petab_problem_lints_clean_and_sets_stimuli_inhibitor_and_dose(written):
    problem = petab_v1.Problem.from_yaml(written / "petab" / "problem.yaml")
    assert not petab_v1.lint_problem(problem)
    assert list(problem.condition_df.columns) == ["dose_drug", "inh_PI3K", "input_EGF", "input_TNFa"]
    assert problem.condition_df.loc["EGF_PI3Ki", "inh_PI3K"] == 1
    assert sorted(problem.observable_df.index) == [f"obs_{o}" for o in ["Akt", "Casp3", "ERK", "IKK", "NFkB", "Raf"]]


def _roadrunner(path: Path, values: dict[str, float], times: np.ndarray, breakpoints: list[float]) -> np.ndarray:
    import roadrunner

    rr = roadrunner.RoadRunner(str(path))
    rr.integrator.relative_tolerance = 1e-10
    rr.integrator.absolute_tolerance = 1e-14
    rr.integrator.maximum_num_steps = 100_000
    for name, value in values.items():
        rr[name] = value
    rr.reset()  # re-applies the initial assignments (inputs) with the values just set
    states = read_sbml(path).states
    rr.timeCourseSelections = ["time", *states]
    edges = [0.0, *(b for b in breakpoints if 0 < b < times[-1]), float(times[-1])]
    out = np.full((len(times), len(states)), np.nan)
    for a, b in zip(edges[:-1], edges[1:]):  # restarted at each dose, as qspflow does
        inside = (times >= a) & (times <= b)
        points = np.unique(np.concatenate([[a, b], times[inside]]))
        result = np.asarray(rr.simulate(times=points))
        out[inside] = result[np.searchsorted(points, times[inside]), 1:]
    return out


@pytest.mark.parametrize("sbml", ["model.sbml", "petab/model.sbml"])
@pytest.mark.parametrize("condition", [
    {"input_EGF": 1.0, "input_TNFa": 1.0, "dose_drug": 30.0, "inh_PI3K": 1.0},
    {"input_EGF": 1.0, "input_TNFa": 0.0, "dose_drug": 300.0, "inh_PI3K": 0.0},
], ids=["egf-tnfa-pi3ki-30mg", "egf-300mg"])
def test_written_sbml_simulates_the_same_in_libroadrunner(converted, written, sbml, condition):
    model = converted.model
    times = np.linspace(0.0, 24.0, 49)
    ours = simulate_condition(model, condition, times, rtol=1e-10, atol=1e-14)
    values = {n: p.value for n, p in model.parameters.items()} | condition
    theirs = _roadrunner(written / sbml, condition, times, model.breakpoints(values))
    assert read_sbml(written / sbml).states == model.states
    assert theirs.shape == ours.shape
    large = np.abs(ours) >= NOT_ZERO
    assert large.any(axis=0).sum() >= 9  # every node that is on, and the drug amounts
    assert (np.abs(theirs - ours)[large] / np.abs(ours[large])).max() <= 1e-6
    assert np.abs(theirs - ours)[~large].max() <= 1e-10


def test_model_py_imports_and_bionetgen_gives_the_model_odes(converted, written):
    spec = importlib.util.spec_from_file_location("qspflow_test_converted_example", written / "model.py")
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelExistsWarning)
        spec.loader.exec_module(module)
    pysb_model = module.model
    assert pysb_model.parameters["pk_f"].value == 0.6 and pysb_model.parameters["tau_ERK"].value == 1.5
    assert str(pysb_model.expressions["production_MEK"].expr) == "hill_Raf_MEK*(1 - drug_effect)"
    assert str(pysb_model.expressions["production_PI3K"].expr) == "hill_EGF_PI3K*(1 - inh_PI3K)"
    assert_same_odes(converted.model, from_pysb(pysb_model))


def test_equations_md_has_every_state_quantity_and_parameter(converted, written):
    text = (written / "equations.md").read_text()
    for state in converted.model.states:
        escaped = state.replace("_", r"\_")
        assert text.count(rf"$$\frac{{d\mathrm{{{escaped}}}}}{{dt}} = ") == 1, state
    assert r"$$\mathrm{production\_MEK} = \mathrm{hill\_Raf\_MEK} \left(1 - \mathrm{drug\_effect}\right)$$" in text
    for name in converted.model.parameters:
        assert f"| `{name}` |" in text


def test_rewriting_gives_the_same_bytes_and_keeps_other_files(example, written, tmp_path):
    out = tmp_path / "again"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for _ in range(2):  # the second time over its own outputs
        convert(**_inputs(example), drug=EXAMPLE_DRUG, values=_truth(example), **in_folder(out, FILES))
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (written / name).read_bytes(), name


def test_inhibitor_of_a_node_the_network_lacks_is_left_out(example, tmp_path, caplog):
    bnet = tmp_path / "pruned.bnet"
    text = (example / "truth" / "network.bnet").read_text()
    bnet.write_text(text.replace("PI3K, EGF\n", "").replace("Akt, PI3K", "Akt, EGF"))
    with caplog.at_level(logging.WARNING, logger="qspflow.convert"):
        converted = convert(**{**_inputs(example), "network": bnet}, drug=EXAMPLE_DRUG,
                            **in_folder(tmp_path / "out", FILES))
    assert "column 'inhibitor:PI3K' left out: node 'PI3K' is not in network" in caplog.text
    assert "inh_PI3K" not in converted.model.parameters
    assert "inh_PI3K" not in converted.problem.conditions.columns
    assert not petab_v1.lint_problem(petab_v1.Problem.from_yaml(tmp_path / "out" / "petab" / "problem.yaml"))


# --- bad input ----------------------------------------------------------------------------------


def test_node_name_that_is_not_an_id_is_named_with_the_file(tmp_path):
    bnet = tmp_path / "dotted.bnet"
    bnet.write_text("u, u\np.ERK, u\n")
    with pytest.raises(NetworkError, match=r"dotted\.bnet, element 'p\.ERK': expected a node name"):
        convert_network(read_bnet(bnet), bnet)
    bnet.write_text("u, u\nexp, u\n")
    with pytest.raises(NetworkError, match="element 'exp'"):
        convert_network(read_bnet(bnet), bnet)


def test_drug_target_missing_from_the_network_names_the_key_and_file(example):
    with pytest.raises(ConfigError, match=r"key 'drug\.target': expected a node of network .*network\.bnet, "
                                          r"found 'BRAF'"):
        convert_network(read_bnet(example / "truth" / "network.bnet"), example / "truth" / "network.bnet",
                        drug={**EXAMPLE_DRUG, "target": "BRAF"})


@pytest.mark.parametrize(("options", "key"), [
    ({"method": "squarecube"}, "convert.method"),
    ({"tau": 0}, "convert.tau"),
    ({"bounds": {"tau": [5.0, 1.0]}}, "convert.bounds.tau"),
    ({"bounds": {"k": [0.6, 0.9]}}, "convert.k"),  # the starting value 0.5 is outside
    ({"drug": {**EXAMPLE_DRUG, "route": "nasal"}}, "drug.route"),
    ({"drug": {**EXAMPLE_DRUG, "dose": 3}}, "drug.dose"),
    ({"drug": {**EXAMPLE_DRUG, "parameters": {"pk_x": 1.0}}}, "drug.parameters.pk_x"),
    ({"drug": {**EXAMPLE_DRUG, "parameters": {"pk_f": 1.5}}}, "drug.parameters.pk_f"),
    ({"drug": {**EXAMPLE_DRUG, "parameters": {"pk_f": "0.6"}}}, "drug.parameters.pk_f"),
    ({"drug": {**EXAMPLE_DRUG, "compartments": 3}}, "drug.compartments"),
    ({"drug": {**EXAMPLE_DRUG, "n_doses": 0}}, "drug.n_doses"),
    ({"drug": {**EXAMPLE_DRUG, "estimate": ["pd_emax", "pk_x"]}}, "drug.estimate"),
    ({"drug": {**EXAMPLE_DRUG, "route": "iv_infusion", "infusion_duration": None}}, "drug.infusion_duration"),
    ({"bounds": {"pd_ec50": [0.0, 10.0, "log10"]}}, "convert.bounds.pd_ec50"),
    ({"bounds": {"tau": [0.1, 10.0, "ln"]}}, "convert.bounds.tau"),
    ({"values": {"tau_XYZ": 1.0}}, "values.tau_XYZ"),
])
def test_bad_options_name_their_config_key(example, options, key):
    with pytest.raises(ConfigError, match=rf"key '{key}'"):
        convert_network(read_bnet(example / "truth" / "network.bnet"), example / "truth" / "network.bnet", **options)


def test_dose_column_without_a_configured_drug_is_an_error(example):
    with pytest.raises(ConfigError, match=r"key 'drug\.target': expected a drug target: .*experiments\.tsv has "
                                          r"column 'dose:drug'"):
        _study(example, drug={"target": ""})


def test_stimulus_of_a_node_that_is_not_an_input_is_an_error(example, tmp_path):
    design = pd.read_csv(example / "experiments.tsv", sep="\t").rename(columns={"stimulus:TNFa": "stimulus:IKK"})
    data = pd.read_csv(example / "measurements.tsv", sep="\t")
    with pytest.raises(NetworkError, match="element 'IKK': expected an input node"):
        convert_network(read_bnet(example / "truth" / "network.bnet"), example / "truth" / "network.bnet",
                        measurements=data, experiments=design, drug=EXAMPLE_DRUG)


def test_experiments_without_measurements_are_refused(example, tmp_path):
    network = example / "truth" / "network.bnet"
    with pytest.raises(DataError, match="key 'measurements'"):
        convert_network(read_bnet(network), network, experiments=read_experiments(example / "experiments.tsv"))
    with pytest.raises(DataError, match="key 'measurements'"):
        convert_with_config(network=network, out=tmp_path, experiments=example / "experiments.tsv")


def test_problem_files_the_rule_names_elsewhere_are_refused_by_name(example, tmp_path):
    paths = in_folder(tmp_path / "m", FILES)
    with pytest.raises(OutputError, match=r"key 'conditions': expected '.*m/petab/conditions\.tsv'"):
        convert(**_inputs(example), drug=EXAMPLE_DRUG, **paths, conditions=tmp_path / "m" / "conditions.tsv")
    with pytest.raises(OutputError, match="key 'problem'"):  # its folder is replaced whole
        convert(**_inputs(example), drug=EXAMPLE_DRUG, **{**paths, "problem": tmp_path / "m" / "problem.yaml"})
    with pytest.raises(ConfigError, match="key 'problem'"):  # data without a problem to write
        convert(**_inputs(example), drug=EXAMPLE_DRUG, pysb=paths["pysb"], sbml=paths["sbml"],
                equations=paths["equations"])
    assert not (tmp_path / "m").exists()


def test_unknown_convert_option_names_its_key(example, tmp_path):
    with pytest.raises(ConfigError, match=r"key 'convert\.hill'"):
        convert(**_inputs(example), drug=EXAMPLE_DRUG, hill=2, **in_folder(tmp_path, FILES))


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_writes_the_model_files_and_with_data_the_problem(example, tmp_path):
    convert_with_config(network=example / "truth" / "network.bnet", out=tmp_path / "plain", method="boolecube")
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["equations.md", "model.py", "model.sbml"]
    assert "k_EGF_PI3K" not in read_sbml(tmp_path / "plain" / "model.sbml").parameters

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"study": "x", "convert": {"method": "hillcube"}, "drug": EXAMPLE_DRUG}))
    converted = convert_with_config(network=example / "truth" / "network.bnet", out=tmp_path / "study", config=config,
                                    measurements=example / "measurements.tsv",
                                    experiments=example / "experiments.tsv")
    assert converted.model.name == "network" and (tmp_path / "study" / "petab" / "problem.yaml").is_file()
    assert "hill_Raf_MEK" in converted.model.expressions and "pk_f" in converted.model.parameters
    config.write_text(yaml.safe_dump({"drug": {**EXAMPLE_DRUG, "effect": "block"}}))
    with pytest.raises(ConfigError, match=r"config\.yaml, key 'drug\.effect'"):
        convert_with_config(network=example / "truth" / "network.bnet", out=tmp_path / "bad", config=config)


def test_example_config_drug_section_is_the_one_tested_here(root):
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    drug = config.get("drug", {})
    if "route" not in drug:
        pytest.skip("config/config.yaml has no drug.route yet (the convert config keys are not wired)")
    assert {key: drug.get(key) for key in EXAMPLE_DRUG} == EXAMPLE_DRUG
    assert math.isclose(drug["parameters"]["pk_f"], 0.6)
