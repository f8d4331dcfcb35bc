"""Rule ingest_shard: validate one shard of a dataset."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.config import DatasetSpec
from allianceanalysis.pipeline import ingest_shard_step

with workflow_step(snakemake):
    ingest_shard_step(
        DatasetSpec.from_mapping(snakemake.wildcards.dataset, snakemake.params.spec),
        snakemake.input.parts,
        int(snakemake.wildcards.shard),
        snakemake.input.split,
        dict(snakemake.output.items()),
    )
