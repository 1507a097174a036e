"""Morris and Sobol indices with their intervals from the gathered chunks, and figures (rule `sensitivity`)."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.sensitivity_analyze(samples=snakemake.input.samples, results=snakemake.input.results,
                              morris=snakemake.output.morris, sobol=snakemake.output.sobol,
                              summary=snakemake.output.summary, sobol_plot=snakemake.output.sobol_plot,
                              morris_plot=snakemake.output.morris_plot, seed=snakemake.params.seed,
                              **snakemake.params.options)
