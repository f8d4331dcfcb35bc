"""Rule model: fit one catalogue model to one dataset's derived tables."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import model_step

name = snakemake.wildcards.dataset
with report_user_errors(snakemake.log[0], context=f"dataset '{name}'"):
    model_step(
        snakemake.wildcards.model,
        dict(snakemake.input.items()),
        snakemake.output[0],
        snakemake.params.options,
    )
