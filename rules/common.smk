# Input functions, seeds and target lists shared by the rules; no logic beyond naming files.
from qspflow.seeds import derive_seed

STUDY = config["study"]


wildcard_constraints:
    study=r"[A-Za-z0-9_-]+",
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


def final_targets():
    """What `rule all` builds for the configured study."""
    prepared = f"results/{STUDY}/prepared"
    return [f"{prepared}/{name}" for name in ("measurements.tsv", "binarized.tsv", "thresholds.tsv", "experiments.tsv", "qc.png")]
