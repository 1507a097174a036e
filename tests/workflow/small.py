"""A small run of the example study through the whole workflow graph, made once per test session on this
machine (`--cores 2`, shared by pytest-xdist's workers): the reference that the SLURM, container (its audit) and
crash-and-resume tests compare with, byte for byte. And the Debian packages those tests install when they are missing."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .conftest import configure, copy_workflow, run_snakemake

# Every step of the example (prepare, infer, convert, calibrate_global/_start, calibrate, select, profile,
# sensitivity_sample/_simulate, sensitivity, vpop_candidates, vpop, report, package) at a size that
# takes a few minutes: one network, one local start, one profiled parameter, small samples, two chunks.
SMALL = {
    "infer": {"max_networks": 1},
    "calibrate": {
        "starts": 1,
        "global_evaluations": 5000,
        "polish": False,
        "profile_parameters": ["pd_ec50"],
        "profile_max_steps": 2,
        "profile_step": 0.2,
    },
    "sensitivity": {"morris_trajectories": 4, "sobol_n": 8, "bootstrap": 10, "chunks": 2},
    "vpop": {"n_candidates": 200, "chunks": 2, "n_vps": 20, "alpha_repeats": 2},
}
# What a run writes that two runs must have byte-identical (logs and benchmarks hold times).
COMPARED = ("results", "package")


def small_workflow(dest: Path) -> Path:
    """A copy of the workflow whose example config is the small one."""
    workdir = copy_workflow(dest)
    configure(workdir, "config.yaml", **SMALL)
    return workdir


def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small example run with `--cores 2` once per test session: by the first test to ask, in whichever
    pytest-xdist worker; the others wait for it (a lock file in the folder the workers share)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    workdir, done = base / "reference", base / "reference.done"
    with open(base / "reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            # 19 min in CI beside the other tests (5 min idle).
            run_snakemake(small_workflow(workdir), "--cores", "2", timeout=3600)
            done.touch()
    return workdir


def copy_of_reference(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, Path]:
    """(the reference run, a copy of it in a new folder `name`/wf): its outputs with Snakemake's records
    (.snakemake), so that in the copy only what a test forces or deletes runs again."""
    reference = reference_run(tmp_path_factory)
    workdir = tmp_path_factory.mktemp(name) / "wf"
    shutil.copytree(reference, workdir, symlinks=True)
    return reference, workdir


def output_files(workdir: Path) -> dict[str, bytes]:
    """Every file under the compared folders of a run: relative path → content."""
    return {
        path.relative_to(workdir).as_posix(): path.read_bytes()
        for part in COMPARED
        for path in sorted((workdir / part).rglob("*"))
        if path.is_file()
    }


def differences(reference: Path, workdir: Path) -> list[str]:
    """The compared files that are missing, unexpected or different in `workdir`."""
    want, got = output_files(reference), output_files(workdir)
    assert want, f"no outputs in the reference run {reference}"
    return sorted(
        f"{path}: {'missing' if path not in got else 'unexpected' if path not in want else 'different'}"
        for path in want.keys() | got.keys()
        if want.get(path) != got.get(path)
    )


@functools.cache
def installed(*packages: str) -> str | None:
    """Install the Debian `packages` that are missing (apt-get, as root); None when all are there, else why not."""
    missing = [p for p in packages if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"needs the Debian packages {' '.join(missing)} (apt-get as root is not available here)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # One apt-get at a time across pytest-xdist's workers: a second one would fail on dpkg's lock.
    with open(Path(tempfile.gettempdir()) / "qspflow-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        ):
            proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
            if proc.returncode != 0:
                return f"apt-get could not install {' '.join(missing)}: {proc.stderr.strip()[-300:]}"
    return None
