# The submission package: every input, workflow file and output hashed into MANIFEST.sha256, described by a
# Workflow Run RO-Crate, and bundled into one deterministic archive that `qspflow audit` rebuilds.


rule package:
    input:
        outputs=study_outputs,
    output:
        manifest="package/MANIFEST.sha256",
        crate="package/ro-crate-metadata.json",
        bundle=f"package/{STUDY}-submission.tar.gz",
    params:
        study=STUDY,
        config=config,
    log:
        "logs/package.log",
    benchmark:
        "benchmarks/package.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/package.yaml"
    script:
        "../scripts/package.py"
