"""One chunk of virtual-population candidates: its plausible patients (rule `vpop_candidates`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.vpop_candidates(problem=snakemake.input.problem, estimates=snakemake.input.estimates,
                          target=snakemake.input.target, chunk=int(snakemake.wildcards.chunk),
                          n_chunks=snakemake.params.n_chunks, result=snakemake.output.result,
                          seed=snakemake.params.seed, threads=snakemake.threads, **snakemake.params.options)
