# Global sensitivity analysis of the selected model at its estimates, scatter–gather: one job samples,
# `sensitivity.chunks` jobs simulate a chunk of the samples each (a cluster spreads them), one analyses.


rule sensitivity_sample:
    input:
        unpack(selected_model),
    output:
        samples="results/{study}/sensitivity/samples.tsv",
    params:
        options=config["sensitivity"],
        seed=seed_for("sensitivity"),
    log:
        "logs/sensitivity_sample/{study}.log",
    benchmark:
        "benchmarks/sensitivity_sample/{study}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(1000),
    conda:
        "../envs/sensitivity.yaml"
    script:
        "../scripts/sensitivity_sample.py"


rule sensitivity_simulate:
    input:
        unpack(selected_model),
        samples="results/{study}/sensitivity/samples.tsv",
    output:
        result="results/{study}/sensitivity/chunks/{chunk}.tsv",
    wildcard_constraints:
        chunk=r"\d+",
    params:
        options=config["sensitivity"],
        n_chunks=config["sensitivity"]["chunks"],
    log:
        "logs/sensitivity_simulate/{study}/{chunk}.log",
    benchmark:
        "benchmarks/sensitivity_simulate/{study}/{chunk}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(30),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/sensitivity.yaml"
    script:
        "../scripts/sensitivity_simulate.py"


rule sensitivity:
    input:
        samples="results/{study}/sensitivity/samples.tsv",
        results=sensitivity_chunks,
    output:
        morris="results/{study}/sensitivity/morris.tsv",
        sobol="results/{study}/sensitivity/sobol.tsv",
        summary="results/{study}/sensitivity/summary.tsv",
        sobol_plot=report(
            "results/{study}/sensitivity/sobol.png",
            caption="../report/sensitivity_sobol.rst",
            category="5. sensitivity",
        ),
        morris_plot=report(
            "results/{study}/sensitivity/morris.png",
            caption="../report/sensitivity_morris.rst",
            category="5. sensitivity",
        ),
    params:
        options=config["sensitivity"],
        seed=seed_for("sensitivity"),
    log:
        "logs/sensitivity/{study}.log",
    benchmark:
        "benchmarks/sensitivity/{study}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/sensitivity.yaml"
    script:
        "../scripts/sensitivity.py"
