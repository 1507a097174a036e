"""The cluster profile on a real SLURM cluster: bin/slurm-cluster starts a single-node cluster on 127.0.0.1
from Debian's packages, and `snakemake --profile profiles/slurm` reruns parts of the small example's finished
run through it: the head of the graph (its checkpoint included, after which Snakemake re-evaluates the graph
on the cluster's word) and a scatter-gather step (its chunks as one job array). SLURM's own job-completion
records show every job ran there, and every output is byte-identical to the local run. Not the whole graph:
on a 2-core machine each SLURM job costs half a minute or more of start-up and status polling, and the whole
graph took CI 48 min."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT
from .small import copy_of_reference, differences, installed

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


def _on_cluster(workdir: Path, env: dict[str, str], *args: str) -> str:
    """`snakemake --profile profiles/slurm ARGS` in `workdir`; what it said. The loopback cluster has no
    accounting: squeue sees finished jobs (MinJobAge 600 s) and is polled every few seconds; its one shared
    folder needs no latency wait."""
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
            *args,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said[-5000:]
    return said


def test_the_slurm_profile_runs_every_job_on_the_cluster_into_the_same_bytes_as_a_local_run(
    cluster, tmp_path_factory
) -> None:
    folder, env = cluster
    reference, workdir = copy_of_reference(tmp_path_factory, "slurm")
    # The scatter-gather step first: rerunning the head later makes everything after it out of date.
    said = _on_cluster(workdir, env, "--forcerun", "sensitivity_simulate", "--until", "sensitivity")
    # The head: its models' report asks for prepare, the checkpoint infer and convert. Each rule forced: with
    # only prepare forced, Snakemake did not redo convert after the checkpoint.
    said += _on_cluster(workdir, env, "results/example/reports/models.html", "--forcerun", "prepare", "infer", "convert",
                        "report")

    # Snakemake's word: every job went to SLURM, each job alone ...
    assert re.findall(r"^local(?:rule|checkpoint) (\w+):", said, re.M) == []
    rules = re.findall(r"^(?:rule|checkpoint) (\w+):", said, re.M)
    assert sorted(rules) == ["convert", "infer", "prepare", "report", "sensitivity", *["sensitivity_simulate"] * 2], rules
    # Alone or as a job array (the profile's slurm-array-jobs): one SLURM job, or array task, per Snakemake job.
    single = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S+/slurm_logs/(\w+)/", said)
    arrays = re.findall(r"Submitted array job with Snakemake IDs ([\d,]+) and SLURM job ID (\d+)\. "
                        r"The individual task IDs are (\d+)-(\d+)\.", said)
    tasks = {(array_id, str(task)) for _, array_id, first, last in arrays for task in range(int(first), int(last) + 1)}
    assert sum(len(ids.split(",")) for ids, *_ in arrays) == len(tasks)
    assert len(single) + len(tasks) == len(rules), (single, arrays)
    assert arrays, "the chunks were not submitted as a job array"
    # ... and SLURM's own: a completion record of each job, on the node, in the workflow's folder.
    records = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in (folder / "jobcomp.log").read_text().splitlines()]
    assert sorted(r["JobId"] for r in records if "ArrayJobId" not in r) == sorted(slurm_id for slurm_id, _ in single)
    assert {(r["ArrayJobId"], r["ArrayTaskId"]) for r in records if "ArrayJobId" in r} == tasks
    assert len(records) == len(rules)
    for record in records:
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", record
        assert record["NodeList"] == "localhost" and record["WorkDir"] == str(workdir), record

    assert differences(reference, workdir) == []
