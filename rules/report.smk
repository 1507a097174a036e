# One parameterized notebook per step (notebooks/{step}.ipynb), executed with papermill into a byte-stable
# notebook and a self-contained HTML page; the summary links the others.


rule report:
    input:
        unpack(report_inputs),
    output:
        notebook="results/{study}/reports/{step}.ipynb",
        html=report(
            "results/{study}/reports/{step}.html",
            caption="../report/report_notebook.rst",
            category="7. reports",
            labels={"report": "{step}"},
        ),
    wildcard_constraints:
        step="|".join(report_steps()),
    params:
        parameters=report_parameters,
    log:
        "logs/report/{study}/{step}.log",
    benchmark:
        "benchmarks/report/{study}/{step}.tsv"
    threads: 1
    resources:
        runtime=attempt_scaled(10),
        mem_mb=attempt_scaled(2000),
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report.py"
