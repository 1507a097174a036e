"""Checkpoint `infer`: a ranked ensemble of Boolean networks from the prepared data and the PKN."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.infer(**snakemake.input, networks=snakemake.output.networks,
                drug_target=snakemake.params.drug_target or None, **snakemake.params.options)
