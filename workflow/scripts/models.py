"""Rule models: fit every catalogue model to one dataset's derived tables."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import models_step

with workflow_step(snakemake):
    models_step(
        dict(snakemake.input.items()),
        tables=snakemake.output.tables,
        combined=snakemake.output.combined,
        options=snakemake.params.options,
    )
