"""Morris trajectories and the Saltelli matrix around the selected model's estimates (rule `sensitivity_sample`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.sensitivity_sample(problem=snakemake.input.problem, estimates=snakemake.input.estimates,
                             samples=snakemake.output.samples, seed=snakemake.params.seed, **snakemake.params.options)
