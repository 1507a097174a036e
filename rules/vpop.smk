# Virtual population of the selected model matched to the study's clinical cohort: `vpop.chunks` jobs
# generate plausible patients from a chunk of the candidates each, one job selects the population.


rule vpop_candidates:
    input:
        unpack(selected_model),
        target=config["vpop"]["target"],
    output:
        result="results/{study}/vpop/chunks/{chunk}.tsv",
    wildcard_constraints:
        chunk=r"\d+",
    params:
        options=vpop_options(),
        n_chunks=config["vpop"]["chunks"],
        seed=seed_for("vpop"),
    log:
        "logs/vpop_candidates/{study}/{chunk}.log",
    benchmark:
        "benchmarks/vpop_candidates/{study}/{chunk}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(30),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/vpop.yaml"
    script:
        "../scripts/vpop_candidates.py"


rule vpop:
    input:
        candidates=vpop_chunks,
        target=config["vpop"]["target"],
    output:
        plausible="results/{study}/vpop/plausible.tsv",
        vpop="results/{study}/vpop/vpop.tsv",
        fit="results/{study}/vpop/fit.tsv",
        plot=report(
            "results/{study}/vpop/vpop.png",
            caption="../report/vpop.rst",
            category="6. vpop",
        ),
    params:
        options=vpop_options(),
        seed=seed_for("vpop"),
    log:
        "logs/vpop/{study}.log",
    benchmark:
        "benchmarks/vpop/{study}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/vpop.yaml"
    script:
        "../scripts/vpop.py"
