# Calibration in three kinds of jobs, so a cluster can spread the local starts: a global search per
# model, one job per local start, then one that keeps the best verified optimum. The `select`
# checkpoint ranks the models; `profile` computes profile likelihoods of the one it selected.


rule calibrate_global:
    input:
        problem=calibration_problem,
        candidates=profile_candidates,
    output:
        global_starts="results/{study}/calibration/{net}/global.tsv",
    params:
        options=calibrate_options(profile=False),
        seed=seed_for("calibrate"),
    log:
        "logs/calibrate_global/{study}/{net}.log",
    benchmark:
        "benchmarks/calibrate_global/{study}/{net}.tsv"
    # First among ready jobs: it checks the calibration options against every candidate model, so a
    # bad option stops the run before independent jobs (reports) write anything.
    priority: 1
    threads: 1
    resources:
        runtime=attempt_scaled(30),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/calibrate_global.py"


rule calibrate_start:
    input:
        problem=calibration_problem,
        global_starts="results/{study}/calibration/{net}/global.tsv",
    output:
        result="results/{study}/calibration/{net}/starts/{start}.tsv",
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
        runtime=attempt_scaled(60),
        mem_mb=attempt_scaled(4000),
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/calibrate_start.py"


rule calibrate:
    input:
        problem=calibration_problem,
        start_tables=start_tables,
    output:
        estimates="results/{study}/calibration/{net}/estimates.tsv",
        starts_table="results/{study}/calibration/{net}/starts.tsv",
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
        # basin hops and the refinement end at the latest hop_time + refine_time (540 s) into the job
        runtime=attempt_scaled(20),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/calibrate.py"


checkpoint select:
    input:
        unpack(model_summaries),
    output:
        ranking="results/{study}/selection/ranking.tsv",
        best="results/{study}/selection/best.txt",
    log:
        "logs/select/{study}.log",
    benchmark:
        "benchmarks/select/{study}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(5),
        mem_mb=attempt_scaled(500),
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/select.py"


rule profile:
    input:
        unpack(best_model),
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
        options=calibrate_options(profile=True),
    log:
        "logs/profile/{study}.log",
    benchmark:
        "benchmarks/profile/{study}.tsv"
    threads: 2
    resources:
        runtime=attempt_scaled(120),
        mem_mb=attempt_scaled(4000),
    conda:
        "../envs/calibrate.yaml"
    script:
        "../scripts/profile.py"
