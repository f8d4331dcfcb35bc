"""Rule split: one dataset's session file into shards by therapist or site."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.config import DatasetSpec
from allianceanalysis.pipeline import split_step

with workflow_step(snakemake):
    split_step(
        DatasetSpec.from_mapping(snakemake.wildcards.dataset, snakemake.params.spec),
        snakemake.params.spec["shards"],
        parts=snakemake.output.parts,
        split=snakemake.output.split,
        aside=snakemake.output.aside,
    )
