"""Rule models_table: every model table of a dataset in one file."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import models_table_step

with report_user_errors(snakemake.log[0]):
    models_table_step(snakemake.input, snakemake.output[0])
