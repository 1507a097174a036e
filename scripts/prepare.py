"""Validate, normalize and binarize the study's measurements (rule `prepare`)."""
from pathlib import Path

from qspflow.boolean import read_sif
from qspflow.data import prepare, write_prepared
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    options = snakemake.params.options
    known = read_sif(snakemake.input.pkn).nodes if "pkn" in snakemake.input.keys() else None
    prepared = prepare(
        snakemake.input.data,
        fmt=snakemake.params.fmt,
        experiments_path=snakemake.input.get("experiments"),
        known_nodes=known,
        unknown_observables=options["unknown_observables"],
        normalization=options["normalization"],
        controls=options["controls"] or None,
        binarization=options["binarization"],
        threshold=options["threshold"],
    )
    write_prepared(prepared, Path(snakemake.output.measurements).parent)
