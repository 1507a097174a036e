# Calibration in three kinds of jobs, so a cluster can spread the local starts: a global search per
# model, one job per local start, then one that keeps the best verified optimum. `select` ranks the
# models; `profile` computes profile likelihoods of the selected one.


rule calibrate_global:
    input:
        problem=calibration_problem,
    output:
        "results/{study}/calibration/{net}/global.tsv",
    params:
        options=calibrate_options(profile=False),
        seed=seed_for("calibrate"),
    log:
        "logs/calibrate_global/{study}/{net}.log",
    benchmark:
        "benchmarks/calibrate_global/{study}/{net}.tsv"
    threads: 2
    resources:
        runtime=30,
        mem_mb=2000,
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/calibrate_global.py"


rule calibrate_start:
    input:
        problem=calibration_problem,
        starts="results/{study}/calibration/{net}/global.tsv",
    output:
        "results/{study}/calibration/{net}/starts/{start}.tsv",
    wildcard_constraints:
        start=r"\d+",
    params:
        options=calibrate_options(profile=False),
    log:
        "logs/calibrate_start/{study}/{net}/{start}.log",
    benchmark:
        "benchmarks/calibrate_start/{study}/{net}/{start}.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/calibrate_start.py"


rule calibrate:
    input:
        problem=calibration_problem,
        starts=start_tables,
    output:
        estimates="results/{study}/calibration/{net}/estimates.tsv",
        starts="results/{study}/calibration/{net}/starts.tsv",
        simulation="results/{study}/calibration/{net}/simulation.tsv",
        summary="results/{study}/calibration/{net}/summary.tsv",
        waterfall=report(
            "results/{study}/calibration/{net}/waterfall.png",
            caption="../report/calibrate_waterfall.rst",
            category="4. calibrate",
            subcategory="{net}",
        ),
        fit=report(
            "results/{study}/calibration/{net}/fit.png",
            caption="../report/calibrate_fit.rst",
            category="4. calibrate",
            subcategory="{net}",
        ),
    params:
        options=calibrate_options(profile=False),
        seed=seed_for("calibrate"),
    log:
        "logs/calibrate/{study}/{net}.log",
    benchmark:
        "benchmarks/calibrate/{study}/{net}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=2000,
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/calibrate.py"


rule select:
    input:
        summaries=lambda wildcards: [f"results/{wildcards.study}/calibration/{net}/summary.tsv" for net in model_ids(wildcards.study)],
    output:
        ranking="results/{study}/selection/ranking.tsv",
        best="results/{study}/selection/best.txt",
    params:
        models=lambda wildcards: model_ids(wildcards.study),
    log:
        "logs/select/{study}.log",
    benchmark:
        "benchmarks/select/{study}.tsv"
    threads: 1
    resources:
        runtime=5,
        mem_mb=500,
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/select.py"


rule profile:
    input:
        best="results/{study}/selection/best.txt",
        problems=lambda wildcards: [calibration_problem({"study": wildcards.study, "net": net}) for net in model_ids(wildcards.study)],
        starts=lambda wildcards: [f"results/{wildcards.study}/calibration/{net}/starts.tsv" for net in model_ids(wildcards.study)],
    output:
        estimates="results/{study}/selection/estimates.tsv",
        profiles="results/{study}/selection/profiles.tsv",
        plot=report(
            "results/{study}/selection/profiles.png",
            caption="../report/calibrate_profiles.rst",
            category="4. calibrate",
            subcategory="selected model",
        ),
    params:
        models=lambda wildcards: model_ids(wildcards.study),
        options=calibrate_options(profile=True),
    log:
        "logs/profile/{study}.log",
    benchmark:
        "benchmarks/profile/{study}.tsv"
    threads: 2
    resources:
        runtime=120,
        mem_mb=4000,
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/profile.py"
