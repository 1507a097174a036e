"""The mechanistic route: `snakemake` calibrates a study's own PEtab problem (Boehm et al. 2014), profiles it and
packages it; a problem that fails the linter stops the workflow at start-up. (The Boolean route on the example
study: test_example.py.)"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import configure, run_snakemake


@pytest.mark.slow
def test_mechanistic_route_calibrates_boehm_to_the_published_optimum(workflow_copy: Path, cases: Path) -> None:
    # The problem's files inside the workflow folder, as a study that is to be packaged keeps them.
    shutil.copytree(cases / "petab/Boehm_JProteomeRes2014", workflow_copy / "resources/boehm")
    configure(workflow_copy, "boehm.yaml", data={"petab": "resources/boehm/Boehm_JProteomeRes2014.yaml"},
              calibrate={"starts": 2, "random_starts": 0, "profile_parameters": ["k_phos"]})
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

    # The package holds the PEtab problem's every file and the mechanistic route's outputs, and verifies.
    manifest = (workflow_copy / "package/MANIFEST.sha256").read_text()
    for name in ("Boehm_JProteomeRes2014.yaml", "model_Boehm_JProteomeRes2014.xml",
                 "measurementData_Boehm_JProteomeRes2014.tsv", "parameters_Boehm_JProteomeRes2014.tsv"):
        assert f"  resources/boehm/{name}\n" in manifest, name
    assert "  results/boehm/reports/calibration.html\n" in manifest and "reports/networks" not in manifest
    verify = subprocess.run([str(Path(sys.executable).with_name("qspflow")), "verify", "package/boehm-submission.tar.gz"],
                            cwd=workflow_copy, capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr


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
    configure(workflow_copy, "boehm.yaml", data={"petab": str(broken / "Boehm_JProteomeRes2014.yaml")})
    proc = run_snakemake(workflow_copy, "--cores", "1", "--configfile", "config/boehm.yaml", check=False)
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr  # the study is checked at start-up: no job runs
    assert "parameters_Boehm_JProteomeRes2014.tsv" in said or "parameterScale" in said, said
    assert "Traceback" not in said
    assert not (workflow_copy / "results").exists()
