rule convert:
    input:
        network="results/{study}/networks/{net}.bnet",
        measurements="results/{study}/prepared/measurements.tsv",
        experiments="results/{study}/prepared/experiments.tsv",
    output:
        pysb="results/{study}/models/{net}/model.py",
        sbml="results/{study}/models/{net}/model.sbml",
        equations="results/{study}/models/{net}/equations.md",
        problem="results/{study}/models/{net}/petab/problem.yaml",
        petab_model="results/{study}/models/{net}/petab/model.sbml",
        conditions="results/{study}/models/{net}/petab/conditions.tsv",
        petab_measurements="results/{study}/models/{net}/petab/measurements.tsv",
        observables="results/{study}/models/{net}/petab/observables.tsv",
        parameters="results/{study}/models/{net}/petab/parameters.tsv",
    params:
        options=config["convert"],
        drug=config["drug"],
    log:
        "logs/convert/{study}/{net}.log",
    benchmark:
        "benchmarks/convert/{study}/{net}.tsv"
    # As `calibrate_global`'s: a model's global search waits for its conversion, and the searches are the
    # longest chain of the calibration; local starts of other models can wait.
    priority: 1
    threads: 1
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(1000),
    conda:
        "../envs/convert.yaml"
    script:
        "../scripts/convert.py"
