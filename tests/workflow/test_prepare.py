"""`snakemake` runs the prepare step on the example study: real outputs, byte-stable, clean failures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from .conftest import run_snakemake

PREPARED = Path("results/example/prepared")
FILES = ("measurements.tsv", "binarized.tsv", "thresholds.tsv", "experiments.tsv", "qc.png")


@pytest.mark.slow
def test_prepare_runs_and_is_byte_identical_across_core_counts(workflow_copy: Path) -> None:
    targets = [str(PREPARED / name) for name in FILES]
    run_snakemake(workflow_copy, "--cores", "1", *targets)
    first = {name: (workflow_copy / PREPARED / name).read_bytes() for name in FILES}
    run_snakemake(workflow_copy, "--cores", "2", "--forceall", *targets)
    second = {name: (workflow_copy / PREPARED / name).read_bytes() for name in FILES}
    assert first == second

    measured = pd.read_csv(workflow_copy / PREPARED / "measurements.tsv", sep="\t")
    source = pd.read_csv(workflow_copy / "resources/example/measurements.tsv", sep="\t")
    assert len(measured) == len(source)
    assert measured["normalized"].min() == 0.0 and measured["normalized"].max() == 1.0
    binarized = pd.read_csv(workflow_copy / PREPARED / "binarized.tsv", sep="\t")
    assert set(binarized["state"]) == {0, 1}
    assert len(binarized) == source["value"].notna().sum()
    log = (workflow_copy / "logs/prepare/example.log").read_text()
    assert "Traceback" not in log
    assert str(workflow_copy) not in "".join(p.decode(errors="replace") for p in first.values() if p[:4] != b"\x89PNG")


@pytest.mark.slow
def test_bad_measurements_fail_with_the_error_in_the_log_and_no_outputs(workflow_copy: Path) -> None:
    data = workflow_copy / "resources/example/measurements.tsv"
    lines = data.read_text().splitlines()
    fields = lines[5].split("\t")
    fields[1] = "-1"
    lines[5] = "\t".join(fields)
    data.write_text("\n".join(lines) + "\n")
    proc = run_snakemake(workflow_copy, "--cores", "1", str(PREPARED / "measurements.tsv"), check=False)
    assert proc.returncode != 0
    log = (workflow_copy / "logs/prepare/example.log").read_text()
    assert "measurements.tsv" in log and "row 6" in log and "time" in log
    assert "Traceback" not in log
    assert not any((workflow_copy / PREPARED / name).exists() for name in FILES)
