"""One local start of one model's calibration: Pyomo solve, verified by simulation (rule `calibrate_start`)."""
from qspflow.calibrate import run_start
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    run_start(snakemake.input.problem, snakemake.input.starts, int(snakemake.wildcards.start),
              snakemake.output[0], threads=snakemake.threads, **snakemake.params.options)
