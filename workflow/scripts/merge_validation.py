"""Rule merge_validation: the shards' validation files merged into the dataset's."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.config import DatasetSpec
from allianceanalysis.pipeline import merge_validation_step

with workflow_step(snakemake):
    merge_validation_step(
        DatasetSpec.from_mapping(snakemake.wildcards.dataset, snakemake.params.spec),
        snakemake.input.split,
        snakemake.input.aside,
        list(snakemake.input.shards),
        dict(snakemake.output.items()),
    )
