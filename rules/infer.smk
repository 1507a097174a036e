checkpoint infer:
    input:
        binarized="results/{study}/prepared/binarized.tsv",
        experiments="results/{study}/prepared/experiments.tsv",
        pkn=config["data"]["pkn"],
    output:
        networks=directory("results/{study}/networks"),
    params:
        options=config["infer"],
        drug_target=config["drug"]["target"],
    log:
        "logs/infer/{study}.log",
    benchmark:
        "benchmarks/infer/{study}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(60),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/infer.yaml"
    script:
        "../scripts/infer.py"
