"""Rule provenance: the provenance record of one dataset's results."""

from allianceanalysis.cli import report_user_errors
from allianceanalysis.pipeline import provenance_step

with report_user_errors(snakemake.log[0], context=f"dataset '{snakemake.wildcards.dataset}'"):
    provenance_step(
        snakemake.wildcards.dataset,
        snakemake.params.settings,
        [snakemake.input.data],
        snakemake.input.outputs,
        snakemake.output[0],
    )
