"""Crash and resume: Snakemake is killed with SIGKILL (snakemake and every job process at once) in the middle of
a chunk of a scatter-gather step and again in the middle of a calibration start; `snakemake --rerun-incomplete`
completes them, and every output is byte-identical to the uninterrupted run. The run is a copy of the small
example's finished run (its outputs and Snakemake's records) from which the two steps' outputs were deleted,
as if it had not reached them: the steps after them, which a resume runs like any others, cost CI 2 to 11 min
more when the whole run started from nothing (555–1,075 s against 417 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import run_snakemake
from .small import copy_of_reference, differences

pytestmark = pytest.mark.slow

RESULTS = Path("results/example")


def _not_reached(workdir: Path, folder: Path, *, keep: tuple[str, ...]) -> None:
    """Delete the files under `folder` but those named in `keep` (relative to it)."""
    for path in sorted((workdir / folder).rglob("*")):
        if path.is_file() and path.relative_to(workdir / folder).as_posix() not in keep:
            path.unlink()


def _kill_during(workdir: Path, log: Path, output: Path, *, seconds_in: float, target: Path, said: str = "") -> None:
    """Run the workflow for `target` and SIGKILL its whole process group `seconds_in` after the job writing
    `log` has started and written `said` there, while `output` is not yet written."""
    (workdir / log).unlink()
    with (workdir / "snakemake.out").open("a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", str(target), "--cores", "2"],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 1200
            while not ((workdir / log).is_file() and said in (workdir / log).read_text(encoding="utf-8")):
                assert proc.poll() is None, f"the workflow ended before {log} said {said!r}"
                assert time.monotonic() < deadline, f"{log} did not say {said!r} in 20 min"
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
    reference, workdir = copy_of_reference(tmp_path_factory, "resume")
    sobol, calibration = RESULTS / "sensitivity/summary.tsv", RESULTS / "calibration/net_1/summary.tsv"
    # Not reached: the sensitivity analysis but its samples and second chunk, then the calibration but its
    # global stage; each run asks for the step's last output. (Snakemake does not redo a missing output that
    # the outputs after it no longer need.)
    _not_reached(workdir, RESULTS / "sensitivity", keep=("samples.tsv", "chunks/1.tsv"))
    _kill_during(
        workdir,
        Path("logs/sensitivity_simulate/example/0.log"),
        RESULTS / "sensitivity/chunks/0.tsv",
        seconds_in=1,
        target=sobol,
    )
    # A killed Snakemake leaves its lock: --unlock is the documented first step after a crash.
    run_snakemake(workdir, "--unlock")
    _not_reached(workdir, RESULTS / "calibration/net_1", keep=("global.tsv",))
    _kill_during(
        workdir,
        Path("logs/calibrate_start/example/net_1/0.log"),
        RESULTS / "calibration/net_1/starts/0.tsv",
        seconds_in=2,
        target=calibration,
        said="calibrating",  # imported and loaded: in its solve (5 s of a job of 10-20 s, most of it start-up)
    )
    run_snakemake(workdir, "--unlock")
    resumed = run_snakemake(workdir, str(calibration), str(sobol), "--cores", "2", "--rerun-incomplete")
    said = resumed.stdout + resumed.stderr
    # The last run redoes the killed start and chunk, not what finished before the crashes.
    assert "rule calibrate_start:" in said and "rule sensitivity_simulate:" in said, said[-3000:]
    assert "rule calibrate_global:" not in said and "rule convert:" not in said, said[-3000:]

    assert differences(reference, workdir) == []
