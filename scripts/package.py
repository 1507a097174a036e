"""Rule `package`: the manifest, the RO-Crate and the submission bundle; prints the bundle's SHA-256."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]) as log:
    digest = steps.package(study=snakemake.params.study, config=snakemake.params.config,
                           outputs=snakemake.input.outputs, manifest=snakemake.output.manifest,
                           crate=snakemake.output.crate, bundle=snakemake.output.bundle)
    log.info("%s sha256 %s", snakemake.output.bundle, digest)
    print(f"qspflow: submission bundle {snakemake.output.bundle} sha256 {digest}")
