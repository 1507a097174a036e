"""The package step and `verify`/`audit` on a toy workflow run by real Snakemake: the bundle holds the workflow,
the inputs the config names, the resolved config and every output; it verifies, re-packaging gives the same
bytes, and the audit re-runs the toy from the bundle alone — identical, or naming the output that differs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qspflow import steps
from qspflow.errors import AuditError
from qspflow.provenance.bundle import safe_extract, write_bundle
from qspflow.provenance.manifest import manifest_text, read_manifest
from qspflow.steps.submission import library_files, study_inputs, workflow_files

ROOT = Path(__file__).resolve().parents[2]
TOY_SNAKEFILE = '''
rule all:
    input: "package/toy-submission.tar.gz"

rule double:
    input: config["data"]["measurements"]
    output: "results/toy/out.tsv"
    shell: "sed 's/1/2/' {input} > {output}"

rule package:
    input: outputs=["results/toy/out.tsv"]
    output: manifest="package/MANIFEST.sha256", crate="package/ro-crate-metadata.json",
            bundle="package/toy-submission.tar.gz"
    run:
        from qspflow import steps
        steps.package(study="toy", config=config, outputs=input.outputs, manifest=output.manifest,
                      crate=output.crate, bundle=output.bundle)
'''
CONFIG = {"study": "toy", "data": {"measurements": "resources/toy/in.tsv", "petab": ""},
          "package": {"license": "https://spdx.org/licenses/CC-BY-4.0", "date_published": "2026-11-28"}}


def _snakemake(workdir: Path, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workdir,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """A finished toy run: Snakefile, config, an input, its output and the package."""
    workdir = tmp_path / "toy"
    for name, text in {"Snakefile": TOY_SNAKEFILE, "config/config.yaml": yaml.safe_dump(CONFIG),
                       "envs/requirements.in": "snakemake\n", "resources/toy/in.tsv": "a\t1\nb\t11\n",
                       "resources/toy/unused.tsv": "not named by the config\n"}.items():
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).write_text(text, encoding="utf-8")
    _snakemake(workdir, "--configfile", "config/config.yaml")
    return workdir


@pytest.mark.slow
def test_the_bundle_holds_workflow_inputs_config_and_outputs_and_verifies(toy: Path, tmp_path: Path) -> None:
    assert (toy / "results/toy/out.tsv").read_text() == "a\t2\nb\t21\n"
    top = safe_extract(toy / "package/toy-submission.tar.gz", tmp_path / "x")
    assert top.name == "toy-submission"
    entries = read_manifest(top / "MANIFEST.sha256")
    assert sorted(p for p in entries if not p.startswith("src/")) == [
        "Snakefile", "config/config.yaml", "envs/requirements.in", "resources/toy/in.tsv", "results/toy/out.tsv",
        "ro-crate-metadata.json", "study.yaml"]
    # the library that ran (the toy folder has none of its own), file for file
    assert {p for p in entries if p.startswith("src/")} == set(library_files())
    assert entries["src/qspflow/cli.py"] == hashlib.sha256((ROOT / "src/qspflow/cli.py").read_bytes()).hexdigest()
    assert (top / "MANIFEST.sha256").read_bytes() == (toy / "package/MANIFEST.sha256").read_bytes()
    assert yaml.safe_load((top / "study.yaml").read_text()) == CONFIG
    crate = json.loads((top / "ro-crate-metadata.json").read_text())
    assert [e["name"] for e in crate["@graph"] if e.get("@type") == "CreateAction" and "rule" in e["name"]] \
        == ["Job 1 of rule double"]
    assert all(check.status == "identical" for check in steps.verify_bundle(toy / "package/toy-submission.tar.gz"))

    first = (toy / "package/toy-submission.tar.gz").read_bytes()
    _snakemake(toy, "--configfile", "config/config.yaml", "--forcerun", "package")
    assert (toy / "package/toy-submission.tar.gz").read_bytes() == first


@pytest.mark.slow
def test_the_audit_rebuilds_the_toy_bit_for_bit(toy: Path, tmp_path: Path) -> None:
    assert steps.audit(bundle=toy / "package/toy-submission.tar.gz", out=tmp_path / "audit", cores=1)
    report = json.loads((tmp_path / "audit/audit.json").read_text())
    assert report["passed"] and [f["path"] for f in report["files"]] == [
        "package/MANIFEST.sha256", "package/ro-crate-metadata.json", "package/toy-submission.tar.gz",
        "results/toy/out.tsv"]
    assert (tmp_path / "audit/audit.md").read_text().startswith("# Reproducibility audit: PASSED")


@pytest.mark.slow
def test_an_output_changed_with_its_manifest_line_verifies_but_fails_the_audit_by_name(toy: Path,
                                                                                        tmp_path: Path) -> None:
    # A forger who also rewrites the manifest passes `verify`; the re-run is what catches them.
    top = safe_extract(toy / "package/toy-submission.tar.gz", tmp_path / "x")
    (top / "results/toy/out.tsv").write_text("a\t2\nb\t23\n")
    members = sorted(p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_file())
    members.remove("MANIFEST.sha256")
    (top / "MANIFEST.sha256").write_text(manifest_text(top, members))
    forged = tmp_path / "toy-submission.tar.gz"
    write_bundle(top, [*members, "MANIFEST.sha256"], forged, top.name)
    assert all(check.status == "identical" for check in steps.verify_bundle(forged))
    assert not steps.audit(bundle=forged, out=tmp_path / "audit", cores=1)
    report = json.loads((tmp_path / "audit/audit.json").read_text())
    assert sorted(f["path"] for f in report["files"] if f["status"] != "identical") == [
        "package/MANIFEST.sha256", "package/toy-submission.tar.gz", "results/toy/out.tsv"]


def test_study_inputs_are_the_files_the_config_names_and_a_petab_problem_with_all_its_files(tmp_path: Path) -> None:
    example = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert study_inputs(example, ROOT) == ["resources/example/experiments.tsv", "resources/example/measurements.tsv",
                                           "resources/example/pkn.sif", "resources/example/vpop_target.tsv"]
    problem = tmp_path / "resources/p"
    problem.mkdir(parents=True)
    (problem / "p.yaml").write_text("format_version: 1\nparameter_file: par.tsv\nproblems:\n- sbml_files: [m.xml]\n"
                                    "  condition_files: [c.tsv]\n  measurement_files: [m.tsv]\n"
                                    "  observable_files: [o.tsv]\n")
    inputs = study_inputs({"data": {"petab": "resources/p/p.yaml"}}, tmp_path)
    assert inputs == [f"resources/p/{name}" for name in ("c.tsv", "m.tsv", "m.xml", "o.tsv", "p.yaml", "par.tsv")]


def test_an_input_outside_the_workflow_folder_is_refused_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "wf").mkdir()
    with pytest.raises(AuditError, match=r"\.\./elsewhere\.tsv, key 'vpop.target': expected an input inside"):
        study_inputs({"vpop": {"target": "../elsewhere.tsv"}}, tmp_path / "wf")


def test_the_workflow_files_are_the_code_configs_and_environments_without_caches() -> None:
    files = [*workflow_files(ROOT), *library_files()]
    for name in ("Snakefile", "rules/package.smk", "scripts/report.py", "notebooks/summary.ipynb",
                 "src/qspflow/cli.py", "src/qspflow/report/templates/qspflow/index.html.j2", "envs/requirements.lock",
                 "config/schema.yaml", "profiles/default/config.yaml", "bin/setup", "pyproject.toml"):
        assert name in files, name
    assert not any("__pycache__" in f or f.endswith(".pyc") or f.startswith(("tests/", "results/", ".venv/"))
                   for f in files)
