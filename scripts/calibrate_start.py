"""One local start of one model's calibration: Pyomo solve, verified by simulation (rule `calibrate_start`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.calibrate_start(problem=snakemake.input.problem, global_starts=snakemake.input.global_starts,
                          start=int(snakemake.wildcards.start), result=snakemake.output.result,
                          threads=snakemake.threads, **snakemake.params.options)
