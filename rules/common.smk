# Input functions, seeds and target lists shared by the rules; no logic beyond naming files.
import csv
import re
from pathlib import Path
from types import SimpleNamespace as Namespace

from snakemake.logging import logger

from qspflow.errors import AuditError
from qspflow.seeds import derive_seed
from qspflow.steps.submission import study_inputs

STUDY = config["study"]
SENSITIVITY_FILES = ("morris.tsv", "sobol.tsv", "summary.tsv", "sobol.png", "morris.png")

# One study per config: {study} matches only the configured study's name, whose inputs the rules read.
wildcard_constraints:
    study=re.escape(STUDY),
    net=r"[A-Za-z0-9_-]+",


def seed_for(step):
    """An input function giving the rule's seed, derived from the study seed, the step and its wildcards."""

    def seed(wildcards):
        return derive_seed(config["seed"], step, *(f"{k}={v}" for k, v in sorted(wildcards.items())))

    return seed


def attempt_scaled(base):
    """A resource (memory, runtime) of `base` at a job's first attempt, growing with each retry (`retries`)."""

    def scaled(wildcards, attempt):
        return base * attempt

    return scaled


def prepare_inputs(wildcards):
    """The measurement file, and the experiment table and PKN when the study has them."""
    data = config["data"]
    inputs = {"data": data["measurements"]}
    for key in ("experiments", "pkn"):
        if data.get(key):
            inputs[key] = data[key]
    return inputs


def network_ids(study):
    """The ids of the networks the `infer` checkpoint of `study` wrote, best first (at most infer.max_networks)."""
    index = Path(checkpoints.infer.get(study=study).output[0]) / "index.tsv"
    with index.open(encoding="utf-8") as handle:
        ids = [row["network"] for row in csv.DictReader(handle, delimiter="\t")]
    return ids[: config["infer"]["max_networks"]]


def inferred_bnets(wildcards):
    """Every inferred network's .bnet: `rule all` depends on them, so the graph fans out after the checkpoint."""
    if not config["data"]["pkn"] or config["data"]["petab"]:
        return []
    return [f"results/{STUDY}/networks/{net}.bnet" for net in network_ids(STUDY)]


def final_targets():
    """What `rule all` builds for the configured study, before the checkpoint's fan-out."""
    targets = [f"results/{STUDY}/selection/{name}" for name in ("ranking.tsv", "best.txt")]
    if config["calibrate"]["profile"]:
        targets += [f"results/{STUDY}/selection/{name}" for name in ("estimates.tsv", "profiles.tsv", "profiles.png")]
    if config["sensitivity"]["outputs"]:
        targets += [f"results/{STUDY}/sensitivity/{name}" for name in SENSITIVITY_FILES]
    if config["vpop"]["target"]:
        targets += [f"results/{STUDY}/vpop/{name}" for name in ("plausible.tsv", "vpop.tsv", "fit.tsv", "vpop.png")]
    if not config["data"]["petab"]:
        prepared = f"results/{STUDY}/prepared"
        targets += [f"{prepared}/{name}" for name in ("measurements.tsv", "binarized.tsv", "thresholds.tsv", "experiments.tsv", "qc.png")]
    return targets


def model_ids(study):
    """The models a study calibrates: its own PEtab problem (`model`), or every inferred network."""
    if config["data"]["petab"]:
        return ["model"]
    return network_ids(study)


def calibration_problem(wildcards):
    """The PEtab problem of one model: the study's own (data.petab) or a converted network's."""
    if config["data"]["petab"]:
        return config["data"]["petab"]
    return f"results/{wildcards['study']}/models/{wildcards['net']}/petab/problem.yaml"


def local_starts():
    """The local starts of each model: the global search's, then the Latin-hypercube ones."""
    return range(config["calibrate"]["starts"] + config["calibrate"]["random_starts"])


def start_tables(wildcards):
    """One table per local start of a model's calibration (rule `calibrate_start`)."""
    folder = f"results/{wildcards['study']}/calibration/{wildcards['net']}/starts"
    return [f"{folder}/{k}.tsv" for k in local_starts()]


def calibrate_options(profile):
    """The `calibrate:` section as keyword options of qspflow.calibrate (the seed is a rule param)."""
    return {**config["calibrate"], "profile": profile}


def converted_problems(wildcards):
    """Every inferred network's PEtab problem: `rule all` converts each network the `infer` checkpoint wrote."""
    if not config["data"]["pkn"] or config["data"]["petab"]:
        return []
    return [f"results/{STUDY}/models/{net}/petab/problem.yaml" for net in network_ids(STUDY)]


def model_summaries(wildcards):
    """{model: its calibration summary} for every model of the study: the `select` checkpoint's inputs."""
    return {net: f"results/{wildcards.study}/calibration/{net}/summary.tsv" for net in model_ids(wildcards.study)}


def best_model(wildcards):
    """The PEtab problem and calibrated starts table of the model the `select` checkpoint named in best.txt."""
    best_txt = checkpoints.select.get(study=wildcards.study).output.best
    net = Path(best_txt).read_text(encoding="utf-8").strip()
    return {
        "problem": calibration_problem({"study": wildcards.study, "net": net}),
        "starts_table": f"results/{wildcards.study}/calibration/{net}/starts.tsv",
    }


def profile_candidates(wildcards):
    """When the study profiles chosen parameters: the PEtab problem of every model it may select (and so
    profile), for `calibrate_global` to check that each parameter is estimated in one of them."""
    options = config["calibrate"]
    if not options["profile"] or not options["profile_parameters"]:
        return []
    return [calibration_problem({"study": wildcards.study, "net": net}) for net in model_ids(wildcards.study)]


def selected_model(wildcards):
    """The selected model's PEtab problem and estimates (with the profile's intervals when profiled): what
    the sensitivity and vpop steps analyse."""
    chosen = best_model(wildcards)
    net = Path(chosen["starts_table"]).parent.name
    if config["calibrate"]["profile"]:
        estimates = f"results/{wildcards.study}/selection/estimates.tsv"
    else:
        estimates = f"results/{wildcards.study}/calibration/{net}/estimates.tsv"
    return {"problem": chosen["problem"], "estimates": estimates}


def sensitivity_chunks(wildcards):
    """The simulated chunks of the sensitivity samples (rule `sensitivity_simulate`, one job each)."""
    folder = f"results/{wildcards.study}/sensitivity/chunks"
    return [f"{folder}/{k}.tsv" for k in range(config["sensitivity"]["chunks"])]


def vpop_chunks(wildcards):
    """The candidate chunks of the virtual population (rule `vpop_candidates`, one job each)."""
    folder = f"results/{wildcards.study}/vpop/chunks"
    return [f"{folder}/{k}.tsv" for k in range(config["vpop"]["chunks"])]


def vpop_options():
    """The `vpop:` section without `target`, which the rules give as an input file."""
    return {key: value for key, value in config["vpop"].items() if key != "target"}


def report_steps():
    """The report notebooks the study gets: one per step it runs, and the summary last."""
    names = [] if config["data"]["petab"] else ["data", "networks"]
    names += ["models", "calibration"]
    names += ["sensitivity"] if config["sensitivity"]["outputs"] else []
    names += ["vpop"] if config["vpop"]["target"] else []
    return names + ["summary"]


def report_targets(wildcards):
    """Every report notebook and its HTML: `rule all` asks for them."""
    return [f"results/{STUDY}/reports/{step}.{ext}" for step in report_steps() for ext in ("ipynb", "html")]


def report_files(study, step):
    """The files one report notebook shows, named as its `files` parameter expects (nested by model)."""
    r = f"results/{study}"
    prepared = {name: f"{r}/prepared/{name}.tsv" for name in ("measurements", "binarized", "thresholds", "experiments")}
    if step == "data":
        return prepared
    if step == "networks":
        return {"index": f"{r}/networks/index.tsv", "pkn": config["data"]["pkn"],
                "networks": {net: f"{r}/networks/{net}.bnet" for net in network_ids(study)},
                "binarized": prepared["binarized"], "experiments": prepared["experiments"]}
    if step == "models":
        if config["data"]["petab"]:
            return {"models": {"model": {"problem": config["data"]["petab"]}}}
        return {"models": {net: {"equations": f"{r}/models/{net}/equations.md", "sbml": f"{r}/models/{net}/model.sbml",
                                 "problem": f"{r}/models/{net}/petab/problem.yaml"} for net in network_ids(study)}}
    selection = {"ranking": f"{r}/selection/ranking.tsv", "best": f"{r}/selection/best.txt"}
    if step == "calibration":
        models = {net: {**{name: f"{r}/calibration/{net}/{name}.tsv" for name in ("summary", "starts", "estimates",
                                                                                  "simulation")},
                        "problem": calibration_problem({"study": study, "net": net})} for net in model_ids(study)}
        files = {**selection, "models": models}
        if config["calibrate"]["profile"]:
            files["selected"] = {name: f"{r}/selection/{name}.tsv" for name in ("estimates", "profiles")}
        return files
    if step == "sensitivity":
        return {name: f"{r}/sensitivity/{name}.tsv" for name in ("morris", "sobol", "summary")}
    if step == "vpop":
        return {**{name: f"{r}/vpop/{name}.tsv" for name in ("plausible", "vpop", "fit")},
                "target": config["vpop"]["target"]}
    files = {**selection, "estimates": selected_model(Namespace(study=study))["estimates"],
             "reports": {other: f"{r}/reports/{other}.html" for other in report_steps() if other != "summary"}}
    if not config["data"]["petab"]:
        files["measurements"] = prepared["measurements"]
    if config["sensitivity"]["outputs"]:
        files |= {"sobol": f"{r}/sensitivity/sobol.tsv", "sensitivity_summary": f"{r}/sensitivity/summary.tsv"}
    if config["vpop"]["target"]:
        files["vpop_fit"] = f"{r}/vpop/fit.tsv"
    return files


def _paths(files):
    """The paths of a nested `files` mapping, flat."""
    if isinstance(files, dict):
        return [path for value in files.values() for path in _paths(value)]
    return [files]


def report_inputs(wildcards):
    """A report's notebook and every file it shows (flat, for Snakemake)."""
    return {"notebook": f"notebooks/{wildcards.step}.ipynb", "files": _paths(report_files(wildcards.study, wildcards.step))}


def report_parameters(wildcards):
    """The papermill parameters of a report notebook: the study, its files and the config sections it explains."""
    sections = {"data": ["prepare"], "networks": ["infer", "drug"], "models": ["convert", "drug"], "calibration": ["calibrate"],
                "sensitivity": ["sensitivity"], "vpop": ["vpop"], "summary": list(config)}[wildcards.step]
    return {"study": wildcards.study, "files": report_files(wildcards.study, wildcards.step),
            "options": {section: config[section] for section in sections}}


MODEL_FILES = ("model.py", "model.sbml", "equations.md", "petab/problem.yaml", "petab/model.sbml", "petab/conditions.tsv",
               "petab/measurements.tsv", "petab/observables.tsv", "petab/parameters.tsv")
CALIBRATION_FILES = ("global.tsv", "estimates.tsv", "starts.tsv", "simulation.tsv", "summary.tsv", "waterfall.png", "fit.png")


def study_outputs(wildcards):
    """Every file the study's jobs write under results/ (the infer checkpoint's folder as a folder): what the
    package hashes and bundles. Snakemake checks each name against the rules, so none can be misspelt."""
    r = f"results/{STUDY}"
    files = [*final_targets(), *report_targets(wildcards)]
    if not config["data"]["petab"]:
        files.append(f"{r}/networks")
        files += [f"{r}/models/{net}/{name}" for net in network_ids(STUDY) for name in MODEL_FILES]
    for net in model_ids(STUDY):
        files += [f"{r}/calibration/{net}/{name}" for name in CALIBRATION_FILES]
        files += [f"{r}/calibration/{net}/starts/{k}.tsv" for k in local_starts()]
    if config["sensitivity"]["outputs"]:
        files.append(f"{r}/sensitivity/samples.tsv")
        files += [f"{r}/sensitivity/chunks/{k}.tsv" for k in range(config["sensitivity"]["chunks"])]
    if config["vpop"]["target"]:
        files += [f"{r}/vpop/chunks/{k}.tsv" for k in range(config["vpop"]["chunks"])]
    return sorted(set(files))


def package_targets():
    """The submission package's files; none, with a warning, when an input lies outside the workflow folder
    (a bundle re-runs with the same paths, so it can hold only inputs under the folder)."""
    try:
        study_inputs(config, Path.cwd())
    except AuditError as err:
        logger.warning(f"qspflow: no submission package for this study: {err}")
        return []
    return [f"package/{name}" for name in ("MANIFEST.sha256", "ro-crate-metadata.json", f"{STUDY}-submission.tar.gz")]
