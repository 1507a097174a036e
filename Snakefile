# qspflow: a QSP study from measurements to a rebuildable submission package.
# The rule graph lives in rules/*.smk (one file per step); all logic is in src/qspflow/.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/prepare.smk"
include: "rules/infer.smk"
include: "rules/convert.smk"
include: "rules/calibrate.smk"


rule all:
    default_target: True
    input:
        final_targets(),
        inferred_bnets,
        converted_problems,


rule models:
    # The Boolean route up to the converted models, without calibration: `snakemake models`.
    input:
        inferred_bnets,
        converted_problems,
