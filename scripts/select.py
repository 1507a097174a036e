"""Rank the calibrated models by AICc and BIC and name the best (rule `select`)."""
from pathlib import Path

from qspflow.calibrate import select_models
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    select_models(dict(zip(snakemake.params.models, snakemake.input.summaries)), Path(snakemake.output.ranking).parent)
