"""Infer a ranked ensemble of Boolean networks from the prepared data and the PKN (checkpoint `infer`)."""
from qspflow.infer import infer_files, write_networks
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    options = snakemake.params.options
    result = infer_files(
        snakemake.input.pkn,
        snakemake.input.binarized,
        snakemake.input.experiments,
        method=options["method"],
        time=options["time"],
        max_inputs=options["max_inputs"],
        size_penalty=options["size_penalty"],
        tolerance=options["tolerance"],
        respect_signs=options["respect_signs"],
        max_models=options["max_models"],
        drug_target=snakemake.params.drug_target or None,
        inhibiting_dose=options["inhibiting_dose"],
    )
    write_networks(result, snakemake.output[0], options["max_networks"])
