"""The `qspflow` command: user errors on one line with exit status 2."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qspflow.cli", *args], capture_output=True, text=True, timeout=300)


def test_console_script_is_installed() -> None:
    bindir = Path(sys.executable).parent
    proc = subprocess.run([str(bindir / "qspflow"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "prepare" in proc.stdout and "example" in proc.stdout


def test_user_error_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("experiment,time,observable,value\ne1,-1,ERK,0.5\n")
    proc = _run("prepare", "--data", str(bad), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bad.csv" in lines[0] and "row 2" in lines[0] and "time" in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_prepare_cli_writes_the_rule_outputs(tmp_path: Path, cases: Path) -> None:
    proc = _run("prepare", "--data", str(cases / "cellnopt_toy" / "ToyDataMMB.csv"), "--format", "midas",
                "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in tmp_path.iterdir()} == {"measurements.tsv", "binarized.tsv", "thresholds.tsv",
                                                    "experiments.tsv", "qc.png", ".qspflow-output"}
    assert len((tmp_path / "measurements.tsv").read_text().splitlines()) == 127


def test_attractors_cli_prints_the_cell_cycle_attractors(cases: Path) -> None:
    proc = _run("attractors", str(cases / "boolnet_cellcycle" / "cellcycle.bnet"))
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert rows[0] == ["attractor", "type", "size", "basin", "states", "nodes"]
    assert [(r[1], r[2], r[3]) for r in rows[1:]] == [("steady", "1", "512"), ("cycle", "7", "512")]
    assert len(rows[2][4].split(";")) == 7


def test_petab_llh_cli_gives_the_published_values(cases: Path) -> None:
    for problem, expected in (("Boehm_JProteomeRes2014", -138.22199693517703), ("Fujita_SciSignal2010", 53.08377736998929)):
        proc = _run("petab-llh", str(cases / "petab" / problem / f"{problem}.yaml"))
        assert proc.returncode == 0, proc.stderr
        assert abs(float(proc.stdout.splitlines()[-1]) - expected) <= 1e-3


def test_petab_simulate_cli_matches_the_published_simulation(cases: Path, tmp_path: Path) -> None:
    import pandas as pd

    folder = cases / "petab" / "Boehm_JProteomeRes2014"
    proc = _run("petab-simulate", str(folder / "Boehm_JProteomeRes2014.yaml"), "--out", str(tmp_path / "sim.tsv"))
    assert proc.returncode == 0, proc.stderr
    ours = pd.read_csv(tmp_path / "sim.tsv", sep="\t")
    reference = pd.read_csv(folder / "simulatedData_Boehm_JProteomeRes2014.tsv", sep="\t")
    keys = ["observableId", "simulationConditionId", "time"]
    merged = ours.merge(reference, on=keys, suffixes=("", "_ref"))
    assert len(merged) == len(reference) == 48
    rel = (merged["simulation"] - merged["simulation_ref"]).abs() / merged["simulation_ref"].abs().clip(lower=1e-12)
    assert rel.max() <= 1e-5


def test_infer_cli_writes_the_ranked_ensemble(tmp_path: Path, cases: Path) -> None:
    proc = _run("infer", "--pkn", str(cases / "cellnopt_toy" / "ToyPKNMMB.sif"),
                "--data", str(cases / "cellnopt_toy" / "ToyDataMMB.csv"), "--out", str(tmp_path / "nets"))
    assert proc.returncode == 0, proc.stderr
    index = (tmp_path / "nets" / "index.tsv").read_text().splitlines()
    assert index[0] == "network\tscore\tmismatches\tsize\tmissed"
    assert index[1].split("\t")[2] == "2"
    assert (tmp_path / "nets" / "net_1.bnet").exists() and (tmp_path / "nets" / "net_1.sbml").exists()


def test_every_option_of_every_command_explains_itself() -> None:
    from qspflow.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert len(commands) >= 8
    silent = [f"{name} {'/'.join(action.option_strings) or action.dest}"
              for name, sub in commands.items() for action in sub._actions
              if not isinstance(action, argparse._HelpAction) and not action.help]
    assert silent == []


def test_logging_flags_work_after_the_command(cases: Path) -> None:
    proc = _run("attractors", str(cases / "boolnet_cellcycle" / "cellcycle.bnet"), "-v")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("attractor\t")
