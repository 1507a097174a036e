"""The best verified optimum of one model's local starts, its fit and waterfall (rule `calibrate`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

out = snakemake.output
with to_rule_log(snakemake.log[0]):
    steps.calibrate(problem=snakemake.input.problem, start_tables=list(snakemake.input.start_tables),
                    estimates=out.estimates, starts_table=out.starts_table, simulation=out.simulation,
                    summary=out.summary, waterfall=out.waterfall, fit=out.fit, seed=snakemake.params.seed,
                    threads=snakemake.threads, **snakemake.params.options)
