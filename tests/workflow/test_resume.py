"""Crash and resume: the small example is killed with SIGKILL (snakemake and every job process at once) in the
middle of a calibration start and again in the middle of a chunked step; `snakemake --rerun-incomplete`
completes it, and every output is byte-identical to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import run_snakemake
from .small import differences, reference_run, small_workflow

pytestmark = pytest.mark.slow

RESULTS = Path("results/example")


def _kill_during(workdir: Path, log: Path, output: Path, *, seconds_in: float) -> None:
    """Run the workflow and SIGKILL its whole process group `seconds_in` after the job writing `log` has
    started, while `output` is not yet written."""
    with (workdir / "snakemake.out").open("a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--cores", "2"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 1200
            while not (workdir / log).is_file():
                assert proc.poll() is None, f"the workflow ended before {log} was written"
                assert time.monotonic() < deadline, f"{log} not written in 20 min"
                time.sleep(0.2)
            time.sleep(seconds_in)
            assert not (workdir / output).exists(), f"{output} was written before the kill: choose a later point"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert not (workdir / output).exists()


def test_a_run_killed_in_a_calibration_start_and_in_a_chunked_step_resumes_into_the_same_bytes(
    tmp_path_factory,
) -> None:
    reference = reference_run(tmp_path_factory)
    workdir = small_workflow(tmp_path_factory.mktemp("resume") / "wf")

    _kill_during(
        workdir,
        Path("logs/calibrate_start/example/net_1/0.log"),
        RESULTS / "calibration/net_1/starts/0.tsv",
        seconds_in=10,
    )
    # A killed Snakemake leaves its lock: --unlock is the documented first step after a crash.
    run_snakemake(workdir, "--unlock")
    _kill_during(
        workdir, Path("logs/sensitivity_simulate/example/0.log"), RESULTS / "sensitivity/chunks/0.tsv", seconds_in=1
    )
    run_snakemake(workdir, "--unlock")
    resumed = run_snakemake(workdir, "--cores", "2", "--rerun-incomplete")
    said = resumed.stdout + resumed.stderr
    # The last run redoes the killed chunk, not what finished before the crashes.
    assert "rule sensitivity_simulate:" in said and "rule calibrate_global:" not in said, said[-3000:]

    assert differences(reference, workdir) == []
