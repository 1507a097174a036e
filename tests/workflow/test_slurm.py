"""The cluster profile on a real SLURM cluster: bin/slurm-cluster starts a single-node cluster on 127.0.0.1
from Debian's packages, `snakemake --profile profiles/slurm` runs the small example through it, SLURM's own
job-completion records show every job ran there, and the outputs are byte-identical to a local run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT
from .small import differences, installed, reference_run, small_workflow

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

CLUSTER = ROOT / "bin" / "slurm-cluster"
SLURM_PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")


def _daemons(folder: Path) -> list[str]:
    """The munged/slurmctld/slurmd processes whose command line names the cluster's folder."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(folder) in cmdline and re.match(r"\S*(munged|slurmctld|slurmd)\b", cmdline):
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.fixture
def cluster(tmp_path: Path):
    """A running cluster (its folder and the environment to reach it); stopped afterwards, whatever happens."""
    reason = installed(*SLURM_PACKAGES)
    if reason:
        pytest.skip(reason)
    folder = tmp_path / "slurm"
    start = subprocess.run([str(CLUSTER), "start", str(folder)], capture_output=True, text=True, timeout=180)
    try:
        assert start.returncode == 0, start.stderr
        env = dict(
            os.environ,
            SLURM_CONF=str(folder / "slurm.conf"),
            PATH=f"{folder / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        )
        yield folder, env
    finally:
        stop = subprocess.run([str(CLUSTER), "stop", str(folder)], capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert not _daemons(folder), _daemons(folder)


def test_the_slurm_profile_runs_every_job_on_the_cluster_into_the_same_bytes_as_a_local_run(
    cluster, tmp_path_factory
) -> None:
    folder, env = cluster
    reference = reference_run(tmp_path_factory)
    workdir = small_workflow(tmp_path_factory.mktemp("slurm") / "wf")
    # The loopback cluster has no accounting: squeue sees finished jobs (MinJobAge 600 s) and is polled
    # every few seconds; its one shared folder needs no latency wait.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "profiles/slurm",
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "5",
            "--latency-wait",
            "5",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said[-5000:]

    # Snakemake's word: every job but `all` went to SLURM, each job alone ...
    assert re.findall(r"^local(?:rule|checkpoint) (\w+):", said, re.M) == ["all"]
    rules = re.findall(r"^(?:rule|checkpoint) (\w+):", said, re.M)
    assert set(rules) == {
        "prepare",
        "infer",
        "convert",
        "calibrate_global",
        "calibrate_start",
        "calibrate",
        "select",
        "profile",
        "sensitivity_sample",
        "sensitivity_simulate",
        "sensitivity",
        "vpop_candidates",
        "vpop",
        "report",
        "package",
    }, rules
    # Alone or as a job array (the profile's slurm-array-jobs): one SLURM job, or array task, per Snakemake job.
    single = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S+/slurm_logs/(\w+)/", said)
    arrays = re.findall(r"Submitted array job with Snakemake IDs ([\d,]+) and SLURM job ID (\d+)\. "
                        r"The individual task IDs are (\d+)-(\d+)\.", said)
    tasks = {(array_id, str(task)) for _, array_id, first, last in arrays for task in range(int(first), int(last) + 1)}
    assert sum(len(ids.split(",")) for ids, *_ in arrays) == len(tasks)
    assert len(single) + len(tasks) == len(rules), (single, arrays)
    assert arrays, "the chunk, start, profile and report jobs were not submitted as job arrays"
    # ... and SLURM's own: a completion record of each job, on the node, in the workflow's folder.
    records = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in (folder / "jobcomp.log").read_text().splitlines()]
    assert sorted(r["JobId"] for r in records if "ArrayJobId" not in r) == sorted(slurm_id for slurm_id, _ in single)
    assert {(r["ArrayJobId"], r["ArrayTaskId"]) for r in records if "ArrayJobId" in r} == tasks
    assert len(records) == len(rules)
    for record in records:
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        assert record["NodeList"] == "localhost" and record["WorkDir"] == str(workdir), record

    assert differences(reference, workdir) == []
