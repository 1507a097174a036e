rule prepare:
    input:
        unpack(prepare_inputs),
    output:
        measurements="results/{study}/prepared/measurements.tsv",
        binarized="results/{study}/prepared/binarized.tsv",
        thresholds="results/{study}/prepared/thresholds.tsv",
        design="results/{study}/prepared/experiments.tsv",
        qc=report(
            "results/{study}/prepared/qc.png",
            caption="../report/prepare_qc.rst",
            category="1. prepare",
        ),
    params:
        fmt=config["data"]["format"],
        options=config["prepare"],
    log:
        "logs/prepare/{study}.log",
    benchmark:
        "benchmarks/prepare/{study}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(1000),
    conda:
        "../envs/prepare.yaml"
    script:
        "../scripts/prepare.py"
