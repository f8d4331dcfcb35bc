"""Rule merge_derived: the shards' derived tables as the dataset's."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import merge_derived_step

with workflow_step(snakemake):
    merge_derived_step(
        list(snakemake.input.shards),
        dict(snakemake.output.items()),
        key=snakemake.input.key,
        early_session=snakemake.params.early_session,
        adjustment=snakemake.params.adjustment,
    )
