"""Rule `report`: one step's notebook executed into results/{study}/reports/{step}.ipynb and .html."""
from qspflow import steps
from qspflow.logs import to_rule_log

with to_rule_log(snakemake.log[0]):
    steps.report(step=snakemake.wildcards.step, notebook=snakemake.input.notebook,
                 parameters=snakemake.params.parameters, ipynb=snakemake.output.notebook,
                 html=snakemake.output.html)
