"""The `qspflow` command: user errors on one line with exit status 2."""

from __future__ import annotations

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
                                                    "experiments.tsv", "qc.png"}
    assert len((tmp_path / "measurements.tsv").read_text().splitlines()) == 127
