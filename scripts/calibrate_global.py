"""Global search of one model's calibration: the initial points of its local starts (rule `calibrate_global`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.calibrate_global(problem=snakemake.input.problem, global_starts=snakemake.output.global_starts,
                           candidates=list(snakemake.input.candidates), seed=snakemake.params.seed,
                           threads=snakemake.threads, **snakemake.params.options)
