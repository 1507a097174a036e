"""Rule `prepare`: the study's measurements validated, normalized and binarized."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.prepare(**snakemake.input, **snakemake.output, fmt=snakemake.params.fmt, **snakemake.params.options)
