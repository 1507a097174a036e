"""Global search of one model's calibration: the initial points of its local starts (rule `calibrate_global`)."""
from qspflow.calibrate import run_global
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    run_global(snakemake.input.problem, snakemake.output[0], seed=snakemake.params.seed,
               threads=snakemake.threads, **snakemake.params.options)
