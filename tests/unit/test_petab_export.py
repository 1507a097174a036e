"""Exporting a study's PEtab problem: round trip, likelihood by hand, the true model, bad input.

The model is the example study's true model built by `qspflow.convert` from
`truth/network.bnet` (normalized HillCube, two-compartment oral PK driving MEK), at the true
parameters, so that its simulations can also be checked against `truth/trajectories.tsv`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import petab.v1 as petab_v1
import pytest

from qspflow.boolean import read_bnet
from qspflow.convert import add_inhibitors, boolean_to_ode, couple_pkpd
from qspflow.data import read_experiments, read_measurements
from qspflow.errors import PetabError
from qspflow.io import atomic_folder
from qspflow.model import OdeModel
from qspflow.petab import NumericModel, load_problem, log_likelihood, simulate_condition, simulate_problem
from qspflow.petab.export import build_problem, problem_files, write_problem

READOUTS = ["Akt", "Casp3", "ERK", "IKK", "NFkB", "Raf"]
SD = 0.05  # the example's measurement noise


@pytest.fixture(scope="module")
def truth(example) -> OdeModel:
    model = boolean_to_ode(read_bnet(example / "truth" / "network.bnet"))
    model = couple_pkpd(model, target="MEK", compartments=2, route="oral", interval=12, n_doses=2)
    model = add_inhibitors(model, ["PI3K"])
    values = pd.read_csv(example / "truth" / "parameters.tsv", sep="\t")
    for name, value in zip(values["parameter"], values["value"], strict=True):
        model.parameters[name].value = float(value)
    return model


@pytest.fixture(scope="module")
def study(example) -> tuple[pd.DataFrame, pd.DataFrame]:
    measurements, _ = read_measurements(example / "measurements.tsv")
    return measurements, read_experiments(example / "experiments.tsv")


@pytest.fixture(scope="module")
def states(truth, study) -> pd.DataFrame:
    """The measured rows with the model's state there (`x`), simulated without PEtab tables."""
    measurements, experiments = study
    rows = measurements.dropna(subset=["value"]).copy()
    rows["x"] = np.nan
    numeric = NumericModel(truth)
    for _, experiment in experiments.iterrows():
        values = {"input_EGF": experiment["stimulus:EGF"], "input_TNFa": experiment["stimulus:TNFa"],
                  "inh_PI3K": experiment["inhibitor:PI3K"], "dose_drug": experiment["dose:drug"]}
        here = rows["experiment"] == experiment["experiment"]
        simulated = simulate_condition(truth, values, rows.loc[here, "time"].to_numpy(), numeric=numeric)
        columns = [truth.states.index(o) for o in rows.loc[here, "observable"]]
        rows.loc[here, "x"] = simulated[np.arange(len(columns)), columns]
    return rows


def with_parameter(model: OdeModel, name: str, **changes: object) -> OdeModel:
    """A copy of `model` with fields of one parameter changed (the fixture's model stays as it is)."""
    changed = dataclasses.replace(model.parameters[name], **changes)
    return dataclasses.replace(model, parameters={**model.parameters, name: changed})


def normal_log_likelihood(r: np.ndarray, sigma: np.ndarray | float) -> float:
    return float(np.sum(-0.5 * (np.log(2 * math.pi * sigma**2) + (r / sigma) ** 2)))


def test_example_problem_round_trips_with_the_log_likelihood_of_the_normal_formula(truth, study, states,
                                                                                   tmp_path):
    tables = build_problem(truth, *study, observables=READOUTS, drug_parameter={"dose:drug": "dose_drug"})
    write_problem(tables, truth, tmp_path / "petab")
    path = tmp_path / "petab" / "problem.yaml"

    petab_v1.yaml.validate(path)
    assert petab_v1.lint_problem(petab_v1.Problem.from_yaml(path)) is False
    problem = load_problem(path)
    assert len(problem.measurement_table) == 882 == len(states)  # 900 values, 18 missing
    expected = normal_log_likelihood(states["value"].to_numpy() - states["x"].to_numpy(), states["sd"].to_numpy())
    assert log_likelihood(problem) == pytest.approx(expected, rel=1e-9)


def test_example_problem_at_the_true_parameters_fits_the_data_as_the_noise_model_says(truth, study, example,
                                                                                      tmp_path):
    write_problem(build_problem(truth, *study, observables=READOUTS), truth, tmp_path)
    problem = load_problem(tmp_path / "problem.yaml")

    # The whole chain (convert, PK/PD, conditions) reproduces the example's noise-free trajectories …
    simulated = simulate_problem(problem)
    simulated["observable"] = simulated["observableId"].str.removeprefix("obs_")
    reference = pd.read_csv(example / "truth" / "trajectories.tsv", sep="\t")
    both = simulated.merge(reference, left_on=["simulationConditionId", "time", "observable"],
                           right_on=["experiment", "time", "observable"], validate="one_to_one")
    assert len(both) == 882
    assert np.max(np.abs(both["simulation"] - both["value"])) < 1e-6
    # … so the residuals are the N(0, 0.05²) noise: mean r²/σ² = 1 ± 3·sqrt(2/882).
    n = len(problem.measurement_table)
    mean_chi2 = (-2 * log_likelihood(problem) - n * math.log(2 * math.pi * SD**2)) / n
    assert 0.85 <= mean_chi2 <= 1.15


def test_scaled_observables_and_estimated_noise_follow_their_formulas(truth, study, states, tmp_path):
    tables = build_problem(truth, *study, observables=READOUTS, observable_model="scaled", noise="estimate")
    write_problem(tables, truth, tmp_path)
    problem = load_problem(tmp_path / "problem.yaml")

    assert "noiseParameters" not in problem.measurement_table
    nominal = normal_log_likelihood(states["value"].to_numpy() - states["x"].to_numpy(), 0.1)
    assert log_likelihood(problem) == pytest.approx(nominal, rel=1e-9)
    # ERK with its own scale, offset and σ; the others at the nominal 1, 0, 0.1.
    erk = (states["observable"] == "ERK").to_numpy()
    y = np.where(erk, 2.0 * states["x"] + 0.1, states["x"])
    expected = normal_log_likelihood(states["value"].to_numpy() - y, np.where(erk, 0.2, 0.1))
    changed = {"scale_obs_ERK": 2.0, "offset_obs_ERK": 0.1, "sigma_obs_ERK": 0.2}
    assert log_likelihood(problem, changed) == pytest.approx(expected, rel=1e-9)


def test_tables_follow_the_model_and_condition_parameters_stay_out_of_the_parameter_table(truth, study):
    tables = build_problem(truth, *study, observables=["ERK", "Akt"], noise="estimate")

    assert list(tables.conditions.columns) == ["conditionId", "dose_drug", "inh_PI3K", "input_EGF", "input_TNFa"]
    assert list(tables.conditions["conditionId"]) == sorted(study[1]["experiment"])
    egf_d30 = tables.conditions.set_index("conditionId").loc["EGF_d30"].to_dict()
    assert egf_d30 == {"dose_drug": 30.0, "inh_PI3K": 0.0, "input_EGF": 1.0, "input_TNFa": 0.0}
    assert set(tables.measurements["observableId"]) == {"obs_Akt", "obs_ERK"}
    assert len(tables.measurements) == 2 * 150 - int(study[0].query("observable in ['Akt', 'ERK']")["value"]
                                                     .isna().sum())
    parameters = tables.parameters.set_index("parameterId")
    fixed = {"dose_drug", "inh_PI3K", "input_EGF", "input_TNFa"}
    assert set(parameters.index) == (set(truth.parameters) - fixed) | {"sigma_obs_Akt", "sigma_obs_ERK"}
    assert list(parameters.index) == sorted(parameters.index)
    for name, row in parameters.drop(["sigma_obs_Akt", "sigma_obs_ERK"]).iterrows():
        p = truth.parameters[name]
        assert (row["parameterScale"], row["lowerBound"], row["upperBound"], row["nominalValue"],
                row["estimate"]) == (p.scale, p.lower, p.upper, p.value, int(p.estimate))
    assert parameters.loc["sigma_obs_ERK"].tolist() == ["log10", 1e-3, 1.0, 0.1, 1]


def test_written_problem_is_canonical_with_relative_file_names(truth, study, tmp_path):
    measurements, experiments = study
    write_problem(build_problem(truth, measurements, experiments, observables=READOUTS), truth, tmp_path / "a")
    # Shuffled input rows, and a second write over an existing problem, give the same bytes.
    shuffled = build_problem(truth, measurements.sample(frac=1, random_state=1),
                             experiments.sample(frac=1, random_state=2), observables=READOUTS[::-1])
    write_problem(shuffled, truth, tmp_path / "b")
    write_problem(shuffled, truth, tmp_path / "b")

    names = ["conditions.tsv", "measurements.tsv", "model.sbml", "observables.tsv", "parameters.tsv",
             "problem.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary folders left
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "problem.yaml").read_text() == (
        "format_version: 1\n"
        "parameter_file: parameters.tsv\n"
        "problems:\n"
        "- condition_files: [conditions.tsv]\n"
        "  measurement_files: [measurements.tsv]\n"
        "  observable_files: [observables.tsv]\n"
        "  sbml_files: [model.sbml]\n")
    assert str(tmp_path) not in "".join((tmp_path / "a" / n).read_text() for n in names)


# ------------------------------------------------------------------------------- bad input


def test_unknown_observable_names_the_key(truth, study):
    with pytest.raises(PetabError, match=r"key 'observables', element 'pERK': expected a state of model"):
        build_problem(truth, *study, observables=["ERK", "pERK"])


def test_condition_column_without_a_model_parameter_names_column_and_parameter(truth, study):
    measurements, experiments = study
    experiments = experiments.assign(**{"stimulus:IL6": 0.0})
    with pytest.raises(PetabError, match=r"experiment table, column 'stimulus:IL6': expected model "
                                         r"parameter 'input_IL6'"):
        build_problem(truth, measurements, experiments, observables=READOUTS)
    with pytest.raises(PetabError, match=r"column 'dose:drug': expected model parameter 'dose_mek_inhibitor'"):
        build_problem(truth, *study, observables=READOUTS, drug_parameter={"dose:drug": "dose_mek_inhibitor"})


def test_bounds_excluding_the_nominal_value_name_the_parameter(truth, study):
    model = with_parameter(truth, "tau_ERK", value=20.0)  # bounds [0.1, 10]
    with pytest.raises(PetabError, match=r"element 'tau_ERK': expected a nominal value within the bounds "
                                         r"\[0.1, 10\], found '20.0'"):
        build_problem(model, *study, observables=READOUTS)


def test_experiment_missing_from_the_experiment_table_names_the_measurement_row(truth, study):
    measurements, experiments = study
    experiments = experiments[experiments["experiment"] != "TNFa_d30"]
    first = int(np.flatnonzero(measurements["experiment"] == "TNFa_d30")[0]) + 2
    with pytest.raises(PetabError, match=rf"measurement table, row {first}, column 'experiment': expected an "
                                         rf"experiment of the experiment table, found 'TNFa_d30'"):
        build_problem(truth, measurements, experiments, observables=READOUTS)


def test_missing_sd_with_noise_from_the_data_names_the_row(truth, study):
    measurements, experiments = study
    measurements = measurements.copy()
    measurements.loc[4, "sd"] = math.nan
    with pytest.raises(PetabError, match=r"measurement table, row 6, column 'sd'"):
        build_problem(truth, measurements, experiments, observables=READOUTS)


def test_a_problem_that_fails_the_linter_is_not_written_and_leaves_the_old_one(truth, study, tmp_path):
    write_problem(build_problem(truth, *study, observables=READOUTS), truth, tmp_path / "petab")
    before = {p.name: p.read_bytes() for p in (tmp_path / "petab").iterdir()}
    model = with_parameter(truth, "pd_emax", scale="log10")  # estimated, lower bound 0: no log
    with pytest.raises(PetabError, match=r"petab/problem\.yaml: PEtab lint failed: .*pd_emax") as caught:
        with atomic_folder(tmp_path / "petab") as staging:  # as the convert step writes it
            write_problem(build_problem(model, *study, observables=READOUTS), model, staging,
                          source=tmp_path / "petab" / "problem.yaml")
    assert "\n" not in str(caught.value)
    assert {p.name: p.read_bytes() for p in (tmp_path / "petab").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["petab"]


def test_problem_files_are_the_written_files_and_name_each_other(truth, study, tmp_path):
    tables = build_problem(truth, *study, observables=READOUTS)
    files = problem_files(tables, truth, yaml_name="study.yaml")
    write_problem(tables, truth, tmp_path, yaml_name="study.yaml")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == files
    problem = petab_v1.Problem.from_yaml(tmp_path / "study.yaml")
    assert problem.model.model_id == tables.name == "model"
    assert len(problem.measurement_df) == 882 and list(problem.observable_df.index) == [f"obs_{r}" for r in READOUTS]


def test_a_clean_problem_is_written_without_a_warning_about_the_visualization_table(truth, study, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        write_problem(build_problem(truth, *study, observables=READOUTS), truth, tmp_path)
    assert [r.getMessage() for r in caplog.records] == []
