"""The jobs of a Snakemake run, read back from Snakemake's own records, for the Workflow Run RO-Crate.

Snakemake 9 (snakemake/persistence/file.py) keeps one JSON record per output file in
`.snakemake/metadata/`, named by the output's path in URL-safe base64; a name longer than the file
system allows is cut into folders whose names start with `@`. The records of one job's outputs share
its `rule` and `job_hash`. Only what a re-run reproduces is kept: no times, hosts, conda environments,
commands or absolute paths, so the same run always gives the same jobs.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from qspflow.errors import QspflowError

METADATA = Path(".snakemake") / "metadata"


@dataclass(frozen=True)
class Job:
    """One Snakemake job: its rule, its input and output files (relative POSIX paths, sorted; a folder is
    given as the known files under it) and its parameters as Snakemake recorded them (`repr` of each
    value, sorted; Snakemake keeps no names)."""

    rule: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[str, ...]


def _records(folder: Path) -> Iterator[tuple[str, Path]]:
    """(output path, record file) for every record under `folder`."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            name = "".join(part.removeprefix("@") for part in path.relative_to(folder).parts)
            try:
                yield base64.urlsafe_b64decode(name).decode("utf-8"), path
            except (binascii.Error, UnicodeDecodeError):
                raise QspflowError(path, expected="a Snakemake metadata record, named by its output in "
                                   "URL-safe base64") from None


def _read(path: Path) -> Mapping[str, object]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # Snakemake itself skips a record it is still writing
        raise QspflowError(path, expected="a Snakemake metadata record (JSON)",
                           message=f"{exc} (is Snakemake still running?)") from None


def _files_under(outputs: Collection[str]) -> dict[str, list[str]]:
    """Each output and each folder above it → the outputs it stands for (a folder output covers its files)."""
    covered = defaultdict(list)
    for output in sorted(outputs):
        covered[output].append(output)
        for folder in PurePosixPath(output).parents[:-1]:
            covered[folder.as_posix()].append(output)
    return dict(covered)


def snakemake_jobs(workdir: Path, outputs: Collection[str]) -> list[Job]:
    """The jobs that made `outputs` (paths relative to `workdir`), in execution order: a job comes after
    the jobs that made its inputs, ties broken by rule name and first output.

    A record whose output is a folder stands for the `outputs` under it; absolute input paths are left
    out. Outputs without a record (not made by a job, or Snakemake ran with `--drop-metadata`) are skipped.
    """
    covered = _files_under(outputs)
    found: dict[tuple, tuple[list[str], Mapping[str, object]]] = {}
    for output, path in _records(Path(workdir) / METADATA):
        if output not in covered:
            continue
        record = _read(path)
        # job_hash is hash() of the job object, unique only within its run: rule, inputs and params
        # keep the jobs of two runs apart
        key = (record["rule"], record["job_hash"], tuple(record["input"]), tuple(record["params"]))
        found.setdefault(key, ([], record))[0].extend(covered[output])
    jobs = [Job(rule=record["rule"],
                inputs=tuple(sorted({f for i in record["input"] if not PurePosixPath(i).is_absolute()
                                     for f in covered.get(i, [i])})),
                outputs=tuple(sorted(set(made))), params=tuple(record["params"]))
            for made, record in found.values()]
    return _execution_order(jobs)


def _execution_order(jobs: list[Job]) -> list[Job]:
    """`jobs` sorted topologically by their files (Kahn's algorithm), ties by rule name and first output."""
    maker = {output: job for job in jobs for output in job.outputs}
    after = {job: {maker[i] for i in job.inputs if i in maker} - {job} for job in jobs}
    waiting = {job: len(before) for job, before in after.items()}
    unblocks = defaultdict(list)
    for job, before in after.items():
        for earlier in before:
            unblocks[earlier].append(job)
    ready = [(job.rule, job.outputs, job) for job in jobs if not waiting[job]]
    heapq.heapify(ready)
    order = []
    while ready:
        job = heapq.heappop(ready)[2]
        order.append(job)
        for later in unblocks[job]:
            waiting[later] -= 1
            if not waiting[later]:
                heapq.heappush(ready, (later.rule, later.outputs, later))
    if len(order) < len(jobs):
        stuck = sorted(job.outputs[0] for job in jobs if waiting[job])
        raise QspflowError(METADATA, expected="records of one acyclic run",
                           message=f"jobs depend on each other in a cycle (outputs {', '.join(stuck[:3])}); "
                                   "records of an older run may be left: re-run the workflow")
    return order
