# Input functions, seeds and target lists shared by the rules; no logic beyond naming files.
import csv
import re
from pathlib import Path

from qspflow.seeds import derive_seed

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


def start_tables(wildcards):
    """One table per local start of a model's calibration (rule `calibrate_start`)."""
    folder = f"results/{wildcards['study']}/calibration/{wildcards['net']}/starts"
    return [f"{folder}/{k}.tsv" for k in range(config["calibrate"]["starts"])]


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
