"""`qspflow calibrate` on Boehm et al. 2014 writes the calibration files and prints the optimum last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_calibrate_cli_reaches_the_published_optimum(cases: Path, tmp_path: Path) -> None:
    problem = cases / "petab/Boehm_JProteomeRes2014/Boehm_JProteomeRes2014.yaml"
    proc = subprocess.run([sys.executable, "-m", "qspflow.cli", "calibrate", str(problem), "--seed", "3",
                           "--no-profile", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.splitlines()[-1]) >= -138.2320
    estimates = pd.read_csv(tmp_path / "estimates.tsv", sep="\t")
    assert list(estimates.columns) == ["parameter", "estimate", "lower_95", "upper_95", "identifiable"]
    assert len(estimates) == 9
    starts = pd.read_csv(tmp_path / "starts.tsv", sep="\t")
    assert len(starts) >= 1
