"""One chunk of the sensitivity samples simulated: the outputs of each parameter set (rule `sensitivity_simulate`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.sensitivity_simulate(problem=snakemake.input.problem, estimates=snakemake.input.estimates,
                               samples=snakemake.input.samples, chunk=int(snakemake.wildcards.chunk),
                               n_chunks=snakemake.params.n_chunks, result=snakemake.output.result,
                               threads=snakemake.threads, **snakemake.params.options)
