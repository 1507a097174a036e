"""The virtual population selected from the gathered plausible patients against the cohort (rule `vpop`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.vpop_select(candidates=snakemake.input.candidates, target=snakemake.input.target,
                      plausible=snakemake.output.plausible, vpop=snakemake.output.vpop, fit=snakemake.output.fit,
                      plot=snakemake.output.plot, seed=snakemake.params.seed, **snakemake.params.options)
