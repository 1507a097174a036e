"""Profile likelihoods and 95% intervals of the selected model's parameters (rule `profile`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

# The guard keeps the profile workers (processes that re-import this script) from re-running it.
if __name__ == "__main__":
    steps.start_workers(snakemake.threads)
    with to_rule_log(snakemake.log[0]):
        steps.profile(problem=snakemake.input.problem, starts_table=snakemake.input.starts_table,
                      estimates=snakemake.output.estimates, profiles=snakemake.output.profiles,
                      plot=snakemake.output.plot, threads=snakemake.threads, **snakemake.params.options)
