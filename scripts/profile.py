"""Profile likelihoods and 95% intervals of the selected model's parameters (rule `profile`)."""
from pathlib import Path

from qspflow.calibrate import run_profiles
from qspflow.logs import to_rule_log

# The guard keeps the profile workers (spawned processes, which re-import this script) from re-running it.
if __name__ == "__main__":
    with to_rule_log(snakemake.log[0]):
        best = Path(snakemake.input.best).read_text(encoding="utf-8").strip()
        k = snakemake.params.models.index(best)
        run_profiles(snakemake.input.problems[k], [snakemake.input.starts[k]], Path(snakemake.output.estimates).parent,
                     threads=snakemake.threads, **snakemake.params.options)
