"""The study's Workflow Run RO-Crate (`ro-crate-metadata.json`): the workflow, what it read and made,
and which Snakemake job made what, with which parameters and software.

The crate conforms to Workflow Run Crate 0.5 and Provenance Run Crate 0.5, and so to Process Run Crate
0.5 and Workflow RO-Crate 1.0, on RO-Crate 1.1: the newest set that is released together and that
roc-validator checks (Workflow Run Crate 0.6 moved to RO-Crate 1.3 and changed the IRIs of
`ComputationalWorkflow`, `input` and `output`). In its terms:

* the main entity `Snakefile` is the `ComputationalWorkflow` (and a `HowTo` whose steps are its rules);
* `#run` is the workflow run, a `CreateAction` from the inputs and the study config to the outputs;
* each job is a `CreateAction` `#job-RULE-K` (the K-th job of RULE in execution order) whose instrument
  is the rule, a `SoftwareApplication` `#rule-RULE`, and whose parameters are `PropertyValue`s;
* `#engine-run` (an `OrganizeAction` of the engine, Snakemake) links the run and, through one
  `ControlAction` per job, each job to its workflow step `#step-RULE`;
* each software package is a `SoftwareApplication` `#software-NAME` with its version, required by every
  rule (all rules run in the one workflow environment).

The text is deterministic: stable `#` ids, entities sorted by id, no times and no absolute paths, so a
re-run gives the same bytes. Files carry their SHA-256 where it is given.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence

from rocrate.model import ContextEntity, File
from rocrate.rocrate import ROCrate

from qspflow.errors import QspflowError
from qspflow.provenance.jobs import Job

RO_CRATE = "1.1"
#: the profiles the root dataset conforms to: permalink → (name, version)
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
MAIN_WORKFLOW = "Snakefile"
ENGINE = "snakemake"  # the key of the workflow engine in `software`
#: schema.org's sha256 came after RO-Crate 1.1's context (schema.org 10): declared as RO-Crate 1.1 allows
EXTRA_TERMS = {"sha256": "http://schema.org/sha256"}


def crate_json(*, study: str, workflow_files: Sequence[str], inputs: Mapping[str, str],
               outputs: Mapping[str, str], jobs: Sequence[Job], software: Mapping[str, str],
               config_file: str, license: str, date_published: str) -> str:
    """The `ro-crate-metadata.json` text of a study's run (see the module docstring).

    Paths are relative POSIX paths inside the crate's folder: `workflow_files` (with `Snakefile`, the
    main workflow), `inputs` and `outputs` (path → SHA-256) and the study's `config_file`. `jobs` come
    in execution order (`snakemake_jobs`); `software` maps package name → version and must name the
    engine, `snakemake`. `license` (a URL or text) and `date_published` (ISO 8601) are the crate's own,
    which RO-Crate requires: give fixed values to keep the text the same on a re-run.
    """
    if MAIN_WORKFLOW not in workflow_files:
        raise ValueError(f"workflow_files must include the main workflow, {MAIN_WORKFLOW}")
    if ENGINE not in software:
        raise ValueError(f"software must include the workflow engine, {ENGINE}")
    if not jobs:
        raise QspflowError(None, expected="the record of at least one Snakemake job",
                           message="describe a run of the workflow (not one with --drop-metadata)")
    crate = ROCrate(version=RO_CRATE)
    crate.metadata.extra_terms.update(EXTRA_TERMS)
    crate.name = f"qspflow study {study}: a workflow run"
    crate.description = (f"The run of the qspflow Snakemake workflow for the study {study}: the workflow, its "
                         "inputs and outputs, and for each job its rule, files and parameters.")
    crate.license = license
    crate.datePublished = date_published
    for profile, (name, version) in PROFILES.items():
        crate.root_dataset.append_to("conformsTo", crate.add(ContextEntity(
            crate, profile, properties={"@type": "CreativeWork", "name": name, "version": version})))

    workflow = crate.add_workflow(
        dest_path=MAIN_WORKFLOW, main=True, lang="snakemake", lang_version=software[ENGINE],
        properties={"@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                    "name": f"qspflow workflow ({MAIN_WORKFLOW})"})
    files = {MAIN_WORKFLOW: workflow}
    for path in sorted(set(workflow_files) - {MAIN_WORKFLOW}):
        files[path] = crate.add_file(dest_path=path)
    for path, digest in sorted({**inputs, **outputs}.items()):
        files[path] = crate.add_file(dest_path=path, properties={"sha256": digest})

    def file(path: str) -> File:
        """The crate's entity of `path`, added if it is a job's file that the crate does not hold."""
        if path not in files:
            files[path] = crate.add_file(dest_path=path)
        return files[path]

    packages = {name: crate.add(ContextEntity(crate, f"#software-{name}", properties={
        "@type": "SoftwareApplication", "name": name, "softwareVersion": version}))
        for name, version in sorted(software.items())}
    run = crate.add_action(workflow, identifier="#run", properties={
        "name": f"Run of the qspflow workflow for the study {study}",
        "description": f"Snakemake ran the workflow with the study config {config_file}"})
    run["object"] = _refs([file(p) for p in sorted({*inputs, config_file})])
    run["result"] = _refs([file(p) for p in sorted(outputs)])

    tools, steps, controls, actions = {}, {}, [], [run]
    count = defaultdict(int)
    for job in jobs:
        if job.rule not in tools:
            tools[job.rule] = crate.add(ContextEntity(crate, f"#rule-{job.rule}", properties={
                "@type": "SoftwareApplication", "name": f"rule {job.rule}",
                "softwareRequirements": _refs(list(packages.values()))}))
            steps[job.rule] = crate.add(ContextEntity(crate, f"#step-{job.rule}", properties={
                "@type": "HowToStep", "name": job.rule, "position": len(steps) + 1,
                "workExample": tools[job.rule]}))
        count[job.rule] += 1
        name = f"{job.rule}-{count[job.rule]}"
        params = [crate.add(ContextEntity(crate, f"#job-{name}-param-{i}", properties={
            "@type": "PropertyValue", "name": f"parameter {i} of rule {job.rule}", "value": value}))
            for i, value in enumerate(job.params, start=1)]
        action = crate.add_action(tools[job.rule], identifier=f"#job-{name}", properties={
            "name": f"Job {count[job.rule]} of rule {job.rule}",
            "description": f"Snakemake job of rule {job.rule} making {len(job.outputs)} file(s)"})
        action["object"] = _refs([file(p) for p in job.inputs] + params)
        action["result"] = _refs([file(p) for p in job.outputs])
        actions.append(action)
        controls.append(crate.add(ContextEntity(crate, f"#control-{name}", properties={
            "@type": "ControlAction", "name": f"Orchestration of job {name}",
            "instrument": steps[job.rule], "object": action})))
    workflow["hasPart"] = _refs(list(tools.values()))
    workflow["step"] = _refs(list(steps.values()))
    crate.add(ContextEntity(crate, "#engine-run", properties={
        "@type": "OrganizeAction", "name": f"Snakemake orchestration of the run for the study {study}",
        "instrument": packages[ENGINE], "object": _refs(controls), "result": run}))
    crate.root_dataset["mentions"] = _refs(actions)

    metadata = crate.metadata.generate()
    metadata["@graph"].sort(key=lambda entity: entity["@id"])
    return json.dumps(metadata, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _refs(entities: list) -> object:
    """One entity as itself, several as a list: RO-Crate 1.1 asks for no one-element arrays."""
    return entities[0] if len(entities) == 1 else entities
