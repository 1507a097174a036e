"""`snakemake` calibrates every candidate model, selects one and profiles it: the Boolean route on the
example study (checked against its ground truth) and the mechanistic route on Boehm et al. 2014."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import run_snakemake

RESULTS = Path("results/example")
# Profiling all 33 parameters takes ~25 min on two cores; these (two Hill thresholds and the EC50 that
# the full example run found identifiable) keep the test to a few minutes.
PROFILED = ["k_Akt_Casp3", "k_MEK_ERK", "pd_ec50"]


def _configure(workdir: Path, config: str, **sections: dict) -> None:
    path = workdir / "config" / config
    data = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.slow
def test_example_true_network_is_selected_and_its_intervals_hold_the_true_values(workflow_copy: Path) -> None:
    # Two candidates (the true network and the next best one) and a smaller global budget: ~6 min.
    _configure(workflow_copy, "config.yaml", infer={"max_networks": 2},
               calibrate={"profile_parameters": PROFILED, "global_evaluations": 10000})
    run_snakemake(workflow_copy, "--cores", "2")

    ranking = pd.read_csv(workflow_copy / RESULTS / "selection/ranking.tsv", sep="\t")
    assert list(ranking["model"]) == ["net_1", "net_2"]  # net_1 is the true network (test_infer)
    assert (workflow_copy / RESULTS / "selection/best.txt").read_text() == "net_1\n"
    assert ranking["delta_aicc"].iloc[1] > 100 and ranking["rank_bic"].iloc[0] == 1
    assert ranking["n_data"].eq(882).all()

    starts = pd.read_csv(workflow_copy / RESULTS / "calibration/net_1/starts.tsv", sep="\t")
    assert len(starts) == 2 and starts["status"].eq("optimal").all()
    # The true parameters have llh 1378.98 by simulation; the optimum must fit at least as well.
    assert ranking["llh"].iloc[0] > 1378.98

    truth = pd.read_csv(workflow_copy / "resources/example/truth/parameters.tsv", sep="\t").set_index("parameter")
    estimates = pd.read_csv(workflow_copy / RESULTS / "selection/estimates.tsv", sep="\t").set_index("parameter")
    profiled = estimates.loc[PROFILED]
    identifiable = profiled[profiled["identifiable"].astype(bool)]
    assert len(identifiable) == len(PROFILED)
    for name, row in identifiable.iterrows():
        assert row["lower_95"] <= truth.loc[name, "value"] <= row["upper_95"], name
    assert estimates.drop(PROFILED)[["lower_95", "upper_95"]].isna().all().all()

    profile_log = (workflow_copy / "logs/profile/example.log").read_text()
    assert f"profile {len(PROFILED)}/{len(PROFILED)}" in profile_log and "Traceback" not in profile_log
    start_log = (workflow_copy / "logs/calibrate_start/example/net_1/0.log").read_text()
    assert "local start 1/2" in start_log
    for name in ("waterfall.png", "fit.png", "simulation.tsv", "summary.tsv", "estimates.tsv"):
        assert (workflow_copy / RESULTS / "calibration/net_2" / name).is_file(), name

    # Sensitivity and the virtual population of the selected model (the example config defines both).
    summary = pd.read_csv(workflow_copy / RESULTS / "sensitivity/summary.tsv", sep="\t")
    assert summary["failed"].eq(0).all() and set(summary["method"]) == {"morris", "sobol"}
    sobol = pd.read_csv(workflow_copy / RESULTS / "sensitivity/sobol.tsv", sep="\t")
    total = sobol[(sobol["output"] == "erk_8h") & (sobol["index"] == "ST")].set_index("parameter")["value"]
    # ERK at 8 h under the MEK inhibitor is driven by the drug's effect and the MEK→ERK edge, not by NFkB's
    assert total.nlargest(4).index.isin(["pd_emax", "pd_ec50", "pd_hill", "k_MEK_ERK", "n_MEK_ERK"]).all()
    assert total.filter(like="NFkB").max() < 1e-6
    fit = pd.read_csv(workflow_copy / RESULTS / "vpop/fit.tsv", sep="\t").dropna(subset=["ks_p"])
    assert set(fit["output"]) == {"erk_8h", "casp3_1h", "ctrough_12h"}
    assert (fit["ks_p"] >= 0.05).all() and fit["matches"].eq("yes").all()
    assert len(pd.read_csv(workflow_copy / RESULTS / "vpop/vpop.tsv", sep="\t")) >= 900


@pytest.mark.slow
def test_mechanistic_route_calibrates_boehm_to_the_published_optimum(workflow_copy: Path, cases: Path) -> None:
    problem = cases / "petab/Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml"
    _configure(workflow_copy, "boehm.yaml", data={"petab": str(problem)},
               calibrate={"starts": 2, "profile_parameters": ["k_phos"]})
    run_snakemake(workflow_copy, "--cores", "2", "--configfile", "config/boehm.yaml")

    results = workflow_copy / "results/boehm"
    assert not (results / "prepared").exists() and not (results / "networks").exists()
    ranking = pd.read_csv(results / "selection/ranking.tsv", sep="\t")
    assert list(ranking["model"]) == ["model"]
    assert ranking["llh"].iloc[0] >= -138.2320  # published optimum −138.22199693517703
    estimates = pd.read_csv(results / "selection/estimates.tsv", sep="\t").set_index("parameter")
    k_phos = estimates.loc["k_phos"]
    assert bool(k_phos["identifiable"]) and k_phos["lower_95"] < k_phos["estimate"] < k_phos["upper_95"]
    assert math.isnan(estimates.loc["k_imp_homo", "lower_95"])  # not profiled


@pytest.mark.slow
def test_a_problem_that_fails_the_petab_linter_stops_the_workflow_at_start_up_with_the_lint_message(workflow_copy: Path,
                                                                                      cases: Path) -> None:
    source = cases / "petab/Boehm_JProteomeRes2014"
    broken = workflow_copy / "broken"
    broken.mkdir()
    for path in source.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    parameters = broken / "parameters_Boehm_JProteomeRes2014.tsv"
    parameters.write_text(parameters.read_text().replace("\tlog10\t", "\tlog12\t", 1))
    _configure(workflow_copy, "boehm.yaml", data={"petab": str(broken / "Boehm_JProteomeRes2014.yaml")})
    proc = run_snakemake(workflow_copy, "--cores", "1", "--configfile", "config/boehm.yaml", check=False)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr  # the study is checked at start-up: no job runs
    assert "parameters_Boehm_JProteomeRes2014.tsv" in said or "parameterScale" in said, said
    assert "Traceback" not in said
    assert not (workflow_copy / "results").exists()
