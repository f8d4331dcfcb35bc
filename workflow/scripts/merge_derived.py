"""Rule merge_derived: the shards' derived tables as the dataset's."""

from allianceanalysis.cli import workflow_step
from allianceanalysis.pipeline import DERIVED_SHARD_FILES, merge_derived_step

files = list(snakemake.input.shards)
n = len(DERIVED_SHARD_FILES)
with workflow_step(snakemake):
    merge_derived_step(
        [dict(zip(DERIVED_SHARD_FILES, files[i : i + n], strict=True))
         for i in range(0, len(files), n)],
        dict(snakemake.output.items()),
        key=snakemake.input.key,
        early_session=snakemake.params.early_session,
    )
