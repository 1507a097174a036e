"""The Workflow Run RO-Crate: Snakemake's job records read back, the crate's structure, its determinism,
and its validity by roc-validator (offline) for the Workflow Run Crate and Provenance Run Crate profiles."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from checks import HAS_VALIDATOR, validate_crate

from qspflow.provenance.crate import PROFILES, crate_json
from qspflow.provenance.jobs import METADATA, Job, snakemake_jobs

LONG = "results/" + "n" * 200 + ".tsv"  # its record's name is longer than a file name may be
FILES = {
    "Snakefile": "include: 'rules/steps.smk'\n",
    "rules/steps.smk": "rule prepare:\n    output: 'results/prepared.tsv'\n",
    "resources/data.tsv": "x\ty\n1\t2\n",
    "study.yaml": "study: toy\n",
    "results/check.txt": "ok\n",
    "results/prepared.tsv": "x\ty\n0\t1\n",
    LONG: "long\n",
    "results/models/m1.txt": "m1\n",
    "results/models/m2.txt": "m2\n",
    "results/report/index.html": "<p>report</p>\n",
    "results/report/fig.png": "png\n",
}
OUTPUTS = sorted(path for path in FILES if path.startswith("results/"))
#: (output as Snakemake records it, rule, job_hash, inputs, params): a job's outputs share rule and job_hash
RECORDS = [
    ("results/prepared.tsv", "prepare", 101, ["/opt/reference/genome.fa", "resources/data.tsv"], ["'auto'", "{'k': 1}"]),
    (LONG, "prepare", 101, ["/opt/reference/genome.fa", "resources/data.tsv"], ["'auto'", "{'k': 1}"]),
    ("results/check.txt", "check", 102, ["resources/data.tsv"], []),
    ("results/models/m2.txt", "fit", 103, ["results/prepared.tsv"], ["'m2'", "2"]),
    ("results/models/m1.txt", "fit", 104, ["results/prepared.tsv"], ["'m1'", "1"]),
    ("results/report", "report", 105, ["results/models/m1.txt", "results/models/m2.txt"], []),  # a folder output
    ("results/old.tsv", "prepare", 106, ["resources/data.tsv"], []),  # an earlier run's output, not this one's
]
SOFTWARE = {"snakemake": "9.27.1", "python": "3.11.7", "numpy": "2.4.6"}


def _write_record(workdir: Path, output: str, rule: str, job_hash: int, inputs: list[str], params: list[str]) -> None:
    """A record as Snakemake 9 writes it: its own record model, at its own path for `output`."""
    from snakemake.persistence import RECORD_FORMAT_VERSION, MetadataRecord
    from snakemake.persistence.file import FilePersistence

    record = MetadataRecord(rule=rule, input=inputs, log=[f"logs/{rule}.log"], params=params, code="script",
                            record_format_version=RECORD_FORMAT_VERSION, job_hash=job_hash, starttime=1.5e9,
                            endtime=1.5e9 + job_hash, incomplete=False, input_checksums={})
    snakemake_fs = SimpleNamespace(_fetch_max_len=lambda subject: 255)  # NAME_MAX of Linux file systems
    path = Path(FilePersistence._record_path(snakemake_fs, str(workdir / METADATA), output))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(record.items())), encoding="utf-8")


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """The working folder of a finished toy run: its files and Snakemake's records of its jobs."""
    for path, text in FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    for record in RECORDS:
        _write_record(tmp_path, *record)
    return tmp_path


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _crate(run: Path, reverse: bool = False) -> str:
    def order(items):  # the arguments' order must not matter
        return list(reversed(items)) if reverse else list(items)

    hashes = {path: _sha256(FILES[path]) for path in order(sorted(FILES))}
    return crate_json(study="toy", workflow_files=order(["Snakefile", "rules/steps.smk"]),
                      inputs={"resources/data.tsv": hashes["resources/data.tsv"]},
                      outputs={path: hashes[path] for path in hashes if path in OUTPUTS},
                      jobs=snakemake_jobs(run, OUTPUTS), software=dict(order(list(SOFTWARE.items()))),
                      config_file="study.yaml", license="https://spdx.org/licenses/MIT", date_published="2026-11-28")


def test_jobs_are_read_grouped_and_in_execution_order(run):
    assert snakemake_jobs(run, OUTPUTS) == [
        Job("check", ("resources/data.tsv",), ("results/check.txt",), ()),
        Job("prepare", ("resources/data.tsv",), (LONG, "results/prepared.tsv"), ("'auto'", "{'k': 1}")),
        Job("fit", ("results/prepared.tsv",), ("results/models/m1.txt",), ("'m1'", "1")),
        Job("fit", ("results/prepared.tsv",), ("results/models/m2.txt",), ("'m2'", "2")),
        Job("report", ("results/models/m1.txt", "results/models/m2.txt"),
            ("results/report/fig.png", "results/report/index.html"), ()),
    ]


def test_jobs_keep_only_the_given_outputs(run):
    assert snakemake_jobs(run, ["results/models/m2.txt"]) == [
        Job("fit", ("results/prepared.tsv",), ("results/models/m2.txt",), ("'m2'", "2"))]
    assert snakemake_jobs(run / "elsewhere", OUTPUTS) == []  # no records at all


def test_crate_describes_the_workflow_run_and_every_job(run):
    text = _crate(run)
    crate = json.loads(text)
    graph = {entity["@id"]: entity for entity in crate["@graph"]}

    def ids(value) -> set[str]:
        return {ref["@id"] for ref in (value if isinstance(value, list) else [value])}

    root = graph["./"]
    assert root["mainEntity"] == {"@id": "Snakefile"}
    assert ids(root["conformsTo"]) == set(PROFILES)
    assert ids(graph["ro-crate-metadata.json"]["conformsTo"]) == {
        "https://w3id.org/ro/crate/1.1", "https://w3id.org/workflowhub/workflow-ro-crate/1.0"}
    assert {"ComputationalWorkflow", "HowTo"} <= set(graph["Snakefile"]["@type"])
    assert graph[graph["Snakefile"]["programmingLanguage"]["@id"]]["name"] == "Snakemake"

    run_action = graph["#run"]
    assert run_action["instrument"] == {"@id": "Snakefile"}
    assert ids(run_action["object"]) == {"resources/data.tsv", "study.yaml"}
    assert ids(run_action["result"]) == set(OUTPUTS)

    jobs = snakemake_jobs(run, OUTPUTS)
    actions = [e for e in crate["@graph"] if e["@type"] == "CreateAction" and e["@id"] != "#run"]
    assert len(actions) == len(jobs)
    for action_id, job in zip(["#job-check-1", "#job-prepare-1", "#job-fit-1", "#job-fit-2", "#job-report-1"], jobs):
        action = graph[action_id]
        objects = ids(action.get("object", []))
        assert action["instrument"] == {"@id": f"#rule-{job.rule}"}
        assert {i for i in objects if not i.startswith("#")} == set(job.inputs)
        assert sorted(graph[i]["value"] for i in objects if i.startswith("#")) == sorted(job.params)
        assert ids(action["result"]) == set(job.outputs)
    assert ids(root["mentions"]) == {"#run", *(e["@id"] for e in actions)}

    assert {graph[f"#software-{name}"]["softwareVersion"] for name in SOFTWARE} == set(SOFTWARE.values())
    assert graph["#engine-run"]["instrument"] == {"@id": "#software-snakemake"}
    assert graph["results/prepared.tsv"]["sha256"] == _sha256(FILES["results/prepared.tsv"])

    references = {ref["@id"] for entity in crate["@graph"] for key, value in entity.items() if key != "@id"
                  for ref in (value if isinstance(value, list) else [value]) if isinstance(ref, dict)}
    assert {ref for ref in references if "://" not in ref} <= set(graph)  # no dangling reference
    assert str(run) not in text and "1500000" not in text  # no absolute path, no time


def test_crate_text_is_the_same_on_every_build(run):
    assert _crate(run) == _crate(run) == _crate(run, reverse=True)


@pytest.mark.skipif(not HAS_VALIDATOR, reason="roc-validator is not installed")
@pytest.mark.parametrize("profile", ["workflow-run-crate-0.5", "provenance-run-crate-0.5"])
def test_crate_passes_rocrate_validator_offline(run, tmp_path_factory, profile):
    (run / "ro-crate-metadata.json").write_text(_crate(run), encoding="utf-8")
    validate_crate(run, tmp_path_factory.mktemp("validator"), profile)
