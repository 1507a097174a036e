"""The bundled example study: reproducible bytes, and a ground truth that holds together.

The Boolean expectations below were derived by hand from the rules in the README, not by the
code under test; the PK check is the textbook one-compartment oral solution.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qspflow import example as ex
from qspflow import steps
from qspflow.errors import DataError, ModelError

# Readouts Akt, Raf, ERK, IKK, NFkB, Casp3 at the fixpoint, by hand from the rules
# (dose 300 mg = MEK off, 30 mg = no inhibition at the Boolean level).
HAND_FIXPOINTS = {
    "ctrl_d0": "000000", "ctrl_d30": "000000", "ctrl_d300": "000000",
    "EGF_d0": "111110", "EGF_d30": "111110", "EGF_d300": "110110", "EGF_PI3Ki": "011000",
    "TNFa_d0": "000111", "TNFa_d30": "000111", "TNFa_d300": "000111", "TNFa_PI3Ki": "000111",
    "EGF_TNFa_d0": "111110", "EGF_TNFa_d30": "111110", "EGF_TNFa_d300": "110110",
    "EGF_TNFa_PI3Ki": "011110",
}  # fmt: skip


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("example")
    steps.example(out=out)
    return out


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "README.md")


def test_regeneration_equals_the_committed_copy_byte_for_byte(regenerated, example):
    assert _files(regenerated) == _files(example)
    differ = [name for name in _files(example) if (regenerated / name).read_bytes() != (example / name).read_bytes()]
    assert differ == []


def test_missingness_and_seed_move_only_their_own_random_stream(example, monkeypatch):
    truth = _read(example / "truth" / "trajectories.tsv")
    committed = _read(example / "measurements.tsv")["value"]
    monkeypatch.setattr(ex, "MISSING_FRACTION", 0.10)
    more_missing = pd.to_numeric(ex.measurements(truth, ex.DEFAULT_SEED)["value"].replace("", np.nan))
    assert more_missing.isna().sum() == 90
    both = committed.notna() & more_missing.notna()
    np.testing.assert_allclose(more_missing[both], committed[both], rtol=0, atol=1.5e-4)
    other_seed = pd.to_numeric(ex.measurements(truth, 1)["value"].replace("", np.nan))
    assert (other_seed - committed).abs().max() > 0.1


def test_boolean_fixpoints_match_the_hand_derived_table(example):
    binarized = _read(example / "truth" / "binarized_8h.tsv")
    states = binarized.pivot(index="experiment", columns="observable", values="state")
    found = {e: "".join(str(states.at[e, r]) for r in ex.READOUTS) for e in states.index}
    assert found == HAND_FIXPOINTS


def test_noise_free_states_at_8h_binarized_at_half_agree_with_the_fixpoint(example):
    trajectories = _read(example / "truth" / "trajectories.tsv")
    at8 = trajectories[trajectories["time"] == ex.BINARIZATION_TIME]
    simulated = at8.set_index(["experiment", "observable"])["value"]
    for row in _read(example / "experiments.tsv").to_dict("records"):
        fixpoint = ex.experiment_fixpoint(row)
        for node in ex.INTERNAL:  # the 6 readouts and the unmeasured PI3K and MEK
            value = simulated[(row["experiment"], node)]
            assert int(value > 0.5) == fixpoint[node], (row["experiment"], node, value)
            assert abs(value - 0.5) > 0.1, (row["experiment"], node, value)  # not a near tie


def test_each_decoy_edge_is_refuted_by_some_experiment_and_readout(example):
    rows = _read(example / "experiments.tsv").to_dict("records")
    for decoy in ex.DECOY_EDGES:
        refuting = [
            (row["experiment"], r)
            for row in rows
            for r in ex.READOUTS
            if ex.experiment_fixpoint(row, extra_edges=[decoy])[r] != ex.experiment_fixpoint(row)[r]
        ]
        assert refuting, decoy


def test_pkn_is_the_true_edges_plus_the_decoys(example):
    lines = (example / "pkn.sif").read_text().splitlines()
    edges = {(s, int(sign), t) for s, sign, t in (line.split("\t") for line in lines)}
    truth = set(ex.true_edges())
    assert len(truth) == 11 and len(lines) == 16
    assert edges == truth | set(ex.DECOY_EDGES) and not truth & set(ex.DECOY_EDGES)
    assert lines == sorted(lines, key=lambda line: (line.split("\t")[0], line.split("\t")[2]))
    bnet = (example / "truth" / "network.bnet").read_text().splitlines()
    assert bnet[0] == "targets, factors" and bnet[-1] == "Casp3, TNFa & !Akt & !ERK"


def test_one_compartment_oral_pk_matches_the_analytic_solution():
    p = ex.true_parameters() | {"pk_q": 0.0}
    ka, ke, vc, f, dose = p["pk_ka"], p["pk_cl"] / p["pk_vc"], p["pk_vc"], p["pk_f"], 300.0
    times = np.array([0.25, 0.5, 1, 2, 3, 4, 6, 8, 10, 11.9])
    sim = ex.simulate_truth(p, {"dose:drug": dose}, np.concatenate([[0.0], times]))
    analytic = f * dose * ka / (vc * (ka - ke)) * (np.exp(-ke * times) - np.exp(-ka * times))
    np.testing.assert_allclose(sim["C_drug"].to_numpy()[1:], analytic, rtol=1e-8, atol=0)
    assert sim["C_drug"].iloc[0] == 0.0


def test_300mg_suppresses_erk_at_8h_while_30mg_inhibits_only_partially(example):
    trajectories = _read(example / "truth" / "trajectories.tsv").set_index(["experiment", "observable", "time"])
    erk = {d: trajectories.at[(f"EGF_d{d}", "ERK", 8.0), "value"] for d in (0, 30, 300)}
    assert erk[300] < 0.1 < 0.5 < erk[30] < erk[0] - 0.05
    early = {d: trajectories.at[(f"EGF_d{d}", "ERK", 2.0), "value"] for d in (0, 30)}
    assert early[30] < 0.5 * early[0]  # the partial dose delays activation


def test_measurements_follow_the_noise_and_missingness_model(example):
    raw = (example / "measurements.tsv").read_text().splitlines()
    assert all(re.fullmatch(r"-?\d+\.\d{4}|", line.split("\t")[3]) for line in raw[1:])
    data = _read(example / "measurements.tsv")
    assert list(data.columns) == ["experiment", "time", "observable", "value", "sd"]
    assert len(data) == 15 * 10 * 6 and set(data["observable"]) == set(ex.READOUTS)
    assert data.equals(data.sort_values(["experiment", "observable", "time"], ignore_index=True))
    missing = data["value"].isna()
    assert missing.sum() == 18 and not (missing & (data["time"] == 0)).any()
    assert (data["sd"] == 0.05).all()
    truth = _read(example / "truth" / "trajectories.tsv")
    merged = data.merge(truth, on=["experiment", "time", "observable"], suffixes=("", "_true"))
    residuals = (merged["value"] - merged["value_true"]).dropna()
    assert abs(residuals.std() - 0.05) < 4 * 0.05 / math.sqrt(2 * len(residuals))
    assert abs(residuals.mean()) < 4 * 0.05 / math.sqrt(len(residuals))
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", e) for e in data["experiment"])


def test_vpop_summary_equals_the_statistics_of_the_target_table(example):
    target = _read(example / "vpop_target.tsv")
    summary = _read(example / "vpop_summary.tsv").set_index("biomarker")
    assert len(target) == ex.N_PATIENTS and list(summary.index) == ["erk_8h", "casp3_1h", "ctrough_12h"]
    for name, row in summary.iterrows():
        values = target[name].to_numpy()
        expected = [len(values), values.mean(), values.std(ddof=1), *np.percentile(values, [5, 25, 50, 75, 95])]
        np.testing.assert_allclose(row.to_numpy(dtype=float), expected, rtol=1e-5, atol=1e-9)


def test_cohort_parameters_have_the_documented_log_normal_spread(example):
    patients = _read(example / "truth" / "patients.tsv")
    population = _read(example / "truth" / "population.tsv")
    n = len(patients)
    for row in population.to_dict("records"):
        logs = np.log(patients[row["parameter"]].to_numpy())
        sigma = math.sqrt(math.log1p(row["cv"] ** 2))
        assert abs(np.median(logs) - math.log(row["median"])) < 4 * 1.25 * sigma / math.sqrt(n)
        assert abs(logs.std(ddof=1) - sigma) < 4 * sigma / math.sqrt(2 * n)


def test_batched_cohort_solves_agree_with_one_by_one_solves(example):
    patients = _read(example / "truth" / "patients.tsv")
    names = list(ex.POPULATION_CV)
    for i in (0, 101, 199):
        row = patients.iloc[i]
        sim = ex.simulate_truth(ex.true_parameters() | row[names].to_dict(), ex.VPOP_CONDITION, sorted({t for _, _, t, *_ in ex.BIOMARKERS} | {ex.VPOP_DURATION_H}))
        sim = sim.set_index("time")
        for biomarker, observable, time, *_ in ex.BIOMARKERS:
            assert sim.at[time, observable] == pytest.approx(row[f"{biomarker}_true"], rel=1e-7, abs=1e-9)


def test_parameters_file_and_readme_table_hold_the_truth(example):
    table = _read(example / "truth" / "parameters.tsv")
    assert dict(zip(table["parameter"], table["value"])) == ex.true_parameters()
    assert len(table) == 8 + 2 * 11 + 6 + 3
    readme = (example / "README.md").read_text()
    for name, value in ex.true_parameters().items():
        assert re.search(rf"^\| `{name}` \| {format(value, 'g')} \|", readme, re.MULTILINE), name


def test_simulate_truth_names_what_is_wrong_with_its_input():
    with pytest.raises(ModelError, match="missing: pk_ka"):
        ex.simulate_truth({k: v for k, v in ex.true_parameters().items() if k != "pk_ka"}, {}, [0, 1])
    with pytest.raises(DataError, match="stimulus:EGF"):
        ex.simulate_truth(ex.true_parameters(), {"stimulus:EGF": 2}, [0, 1])
    with pytest.raises(DataError, match="increasing times"):
        ex.simulate_truth(ex.true_parameters(), {}, [1, 0])
