"""The best verified optimum of one model's local starts, its fit and waterfall (rule `calibrate`)."""
from pathlib import Path

from qspflow.calibrate import run_conclude
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    run_conclude(snakemake.input.problem, snakemake.input.starts, Path(snakemake.output.summary).parent,
                 seed=snakemake.params.seed, threads=snakemake.threads, **snakemake.params.options)
