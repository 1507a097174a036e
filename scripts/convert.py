"""Convert one inferred network into its ODE model: PySB, SBML, equations and PEtab problem (rule `convert`)."""
from pathlib import Path

from qspflow.convert import convert_network, write_converted
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    converted = convert_network(
        snakemake.input.network,
        measurements=snakemake.input.measurements,
        experiments=snakemake.input.experiments,
        drug=snakemake.params.drug,
        **snakemake.params.options,
    )
    write_converted(converted, Path(snakemake.output.pysb).parent)
