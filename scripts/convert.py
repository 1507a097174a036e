"""Rule `convert`: one inferred network to its ODE model (PySB, SBML, equations) and PEtab problem."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.convert(**snakemake.input, **snakemake.output, drug=snakemake.params.drug, **snakemake.params.options)
