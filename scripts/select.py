"""Rank the calibrated models by AICc and BIC and name the best (checkpoint `select`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.select(summaries=dict(snakemake.input.items()), ranking=snakemake.output.ranking,
                 best=snakemake.output.best)
