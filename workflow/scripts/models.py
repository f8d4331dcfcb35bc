"""Rule models: fit every catalogue model to one dataset's derived tables."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import models_step

name = snakemake.wildcards.dataset
with report_user_errors(snakemake.log[0], context=f"dataset '{name}'"):
    models_step(
        dict(snakemake.input.items()),
        tables=snakemake.output.tables,
        combined=snakemake.output.combined,
        codes=snakemake.output.codes,
        options=snakemake.params.options,
    )
