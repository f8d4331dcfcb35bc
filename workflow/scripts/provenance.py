"""Rule provenance: the provenance record of one dataset's results."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import provenance_step

with workflow_step(snakemake):
    provenance_step(
        snakemake.wildcards.dataset,
        snakemake.params.settings,
        [snakemake.input.data],
        snakemake.input.outputs,
        snakemake.output[0],
    )
