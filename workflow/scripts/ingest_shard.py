"""Rule ingest_shard: validate one shard of a dataset."""

from pathlib import Path

from allianceanalysis.cli import workflow_step
from allianceanalysis.config import DatasetSpec
from allianceanalysis.shards import part_path, validate_shard

with workflow_step(snakemake):
    validate_shard(
        DatasetSpec.from_mapping(snakemake.wildcards.dataset, snakemake.params.spec),
        part_path(Path(snakemake.input.parts), int(snakemake.wildcards.shard)),
        snakemake.input.split,
        dict(snakemake.output.items()),
    )
