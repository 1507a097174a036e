# qspflow: a QSP study from measurements to a rebuildable submission package.
# The rule graph lives in rules/*.smk (one file per step); all logic is in src/qspflow/.
# A study is one config file: `snakemake --configfile STUDY.yaml` (config/config.yaml is the bundled
# example). Every key not given takes the default of config/schema.yaml, never the example's value.
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from qspflow.errors import QspflowError
from qspflow.steps.study import study_config

min_version("9.0")

# The project image (envs/Containerfile, built by bin/container-build) for `--sdm apptainer`: every rule
# runs in it. The README ("The container") says how to turn the podman image into this file.
container: "qspflow.sif"

if not config:
    raise WorkflowError("qspflow: no study config: run `snakemake --configfile STUDY.yaml` "
                        "(config/config.yaml is the bundled example study)")
try:
    _validated = study_config(config, yaml.safe_load(Path(workflow.basedir, "config/schema.yaml").read_text()),
                              ", ".join(str(p) for p in workflow.overwrite_configfiles) or "study config")
except QspflowError as err:
    raise WorkflowError(f"qspflow: {err}") from None
config.clear()
config.update(_validated)


include: "rules/common.smk"


# The Boolean route's steps exist only in its studies: a mechanistic-route study starts at calibrate.
if not config["data"]["petab"]:

    include: "rules/prepare.smk"
    include: "rules/infer.smk"
    include: "rules/convert.smk"


include: "rules/calibrate.smk"


if config["sensitivity"]["outputs"]:

    include: "rules/sensitivity.smk"


if config["vpop"]["target"]:

    include: "rules/vpop.smk"


include: "rules/report.smk"
include: "rules/package.smk"


rule all:
    # Everything, ending with the reports and the submission package (whose SHA-256 the package job prints).
    default_target: True
    input:
        final_targets(),
        inferred_bnets,
        converted_problems,
        report_targets,
        package_targets(),


rule models:
    # The Boolean route up to the converted models, without calibration: `snakemake models`.
    input:
        inferred_bnets,
        converted_problems,
